"""``rollguard simulate``: how a policy would behave on many scenarios, before shipping it.

PURE: numpy + rollguard.api and rollguard.core; no I/O, no clock, randomness only from the seeds.
Called by the CLI (and the benchmark). For each scenario, seeds ``seed .. seed + seeds - 1``
run through the operator's own engine and decision rules (``rollguard.simulation.scenario_run``, which
makes the decisions ``simulate --series`` makes on the same samples), in batches of at most
``chunk`` seeds; per-seed outcomes are summarised with bootstrap intervals
(``rollguard.simulation.metrics``). A seed's outcome never depends on the batch it ran in, so
``trace`` can re-run one seed alone to plot it.
"""

from __future__ import annotations

from rollguard.api.policy import EffectivePolicy
from rollguard.core import tiers
from rollguard.simulation.metrics import PerSeed, PolicyInfo, SimulationResult, per_seed, summarize
from rollguard.simulation.scenario_run import Progress, ScenarioRun, run_scenario, timeline
from rollguard.simulation.scenarios import Scenario

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_CHUNK = 1000


def policy_info(policy: EffectivePolicy) -> PolicyInfo:
    return PolicyInfo(
        risk_tier=policy.risk_tier, mode=policy.mode, spec_hash=tiers.spec_hash(policy)
    )


def total_steps(
    policy: EffectivePolicy, scenarios: list[Scenario], *, seeds: int, chunk: int = DEFAULT_CHUNK
) -> int:
    """Engine steps ``simulate`` will take (for a progress bar)."""
    batches = -(-seeds // chunk)
    return sum(timeline(policy, s).eval_times.size for s in scenarios) * batches


def simulate_scenario(
    policy: EffectivePolicy,
    scenario: Scenario,
    *,
    seeds: int,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> PerSeed:
    """Per-seed outcomes of one scenario."""
    if seeds < 1 or chunk < 1:
        raise ValueError("seeds and chunk must be at least 1")
    all_seeds = list(range(seed, seed + seeds))
    parts = [
        per_seed(
            run_scenario(policy, scenario, all_seeds[i : i + chunk], progress=progress), policy
        )
        for i in range(0, seeds, chunk)
    ]
    return PerSeed.concat(parts)


def simulate(
    policy: EffectivePolicy,
    scenarios: list[Scenario],
    *,
    seeds: int,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> SimulationResult:
    """Every scenario over ``seeds`` seeds, with ``confidence`` percentile-bootstrap intervals
    from ``resamples`` resamples (seeded by ``seed``)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    results = [
        (s, simulate_scenario(policy, s, seeds=seeds, seed=seed, chunk=chunk, progress=progress))
        for s in scenarios
    ]
    return summarize(
        policy_info(policy), results, seed=seed, resamples=resamples, confidence=confidence
    )


def trace(policy: EffectivePolicy, scenario: Scenario, *, seed: int) -> ScenarioRun:
    """One seed re-run alone, with its series kept (for plots): identical to its run in the
    batch."""
    return run_scenario(policy, scenario, [seed], keep_series=True)
