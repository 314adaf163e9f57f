"""What a simulation run says about a policy: detection time, false rollbacks, missed
regressions and impact avoided, with percentile-bootstrap confidence intervals over seeds.

PURE. Definitions (also in the Markdown report):

* regression episode: a stretch of time during which a regression event is in force in the
  acted run, from its start (or from GitOps re-applying it) until it ends by itself, is
  cured by a rollback, or the run ends;
* detection time: first Rollback or Pause point that fires (a decision is made, whatever it
  recommends and whether or not it is blocked) during an episode, minus the episode's start;
  undetected episodes have none;
* false-rollback rate: executed Rollbacks (automatically or after an approval) decided at
  evaluations where no regression is in force, per run (seed);
* missed-regression rate: episodes in force for longer than the policy's window during which no
  Rollback or Pause fired, over those episodes plus the detected ones;
* impact avoided: sum over evaluations of (score without acting - score with acting) x
  interval, in score-minutes per run; the no-action run uses the very same series;
* escalations: each time humans were needed: a decision blocked by cooldown waits for an
  approval; a fire beyond the action budget or a failed rollback validation stops automatic
  actions for the rest of the run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from rollguard.api.base import Model
from rollguard.api.policy import ACTIONS, EffectivePolicy
from rollguard.core.statistics import bootstrap
from rollguard.simulation.scenario_run import ScenarioRun
from rollguard.simulation.scenarios import Scenario

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PerSeed:
    """Per-seed outcomes of one scenario, the unit the bootstrap resamples."""

    seeds: I64  # (B,)
    false_rollbacks: F64
    eligible: F64  # episodes in force longer than the window
    missed: F64
    impact: F64  # score-minutes without acting
    impact_avoided: F64
    actions: F64  # executed Rollbacks and Pauses
    escalations: F64  # humans needed: cooldown-blocked decisions, budget, failed validation
    delays: F64  # (K,) detection times of detected episodes, seconds
    owner: I64  # (K,) index of the seed each delay belongs to
    first_delay: F64  # (B,) detection time of the seed's first episode, NaN if none

    @staticmethod
    def concat(parts: list[PerSeed]) -> PerSeed:
        offsets = np.cumsum([0] + [p.seeds.size for p in parts])

        def cat(name: str) -> NDArray[Any]:
            return np.concatenate([getattr(p, name) for p in parts])

        return PerSeed(
            seeds=cat("seeds"),
            false_rollbacks=cat("false_rollbacks"),
            eligible=cat("eligible"),
            missed=cat("missed"),
            impact=cat("impact"),
            impact_avoided=cat("impact_avoided"),
            actions=cat("actions"),
            escalations=cat("escalations"),
            delays=cat("delays"),
            owner=np.concatenate([p.owner + o for p, o in zip(parts, offsets, strict=False)]),
            first_delay=cat("first_delay"),
        )


def _episodes(active: NDArray[np.bool_]) -> tuple[I64, I64, I64]:
    """(seed, start index, end index exclusive) of every run of True along the last axis of
    (B, E, T); runs of different events are listed separately."""
    b_n, e_n, t_n = active.shape
    edges = np.diff(active.reshape(b_n * e_n, t_n).astype(np.int8), axis=1, prepend=0, append=0)
    row_s, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)
    return (row_s // max(e_n, 1)).astype(np.int64), start.astype(np.int64), end.astype(np.int64)


def per_seed(run: ScenarioRun, policy: EffectivePolicy) -> PerSeed:
    """Per-seed outcomes of a run."""
    tl, n_b = run.timeline, len(run.seeds)
    action = np.array([ACTIONS.index(p.action) for p in policy.triggers] or [2])
    kind = np.where(run.fired >= 0, action[np.maximum(run.fired, 0)], -1)  # (J, B)
    responds = (kind == 0) | (kind == 1)
    rollback = run.executed & (run.recommended == ACTIONS.index("Rollback"))
    any_active = np.asarray(run.active.any(axis=1))[:, tl.eval_index].T  # (J, B)
    false_rollbacks = (rollback & ~any_active).sum(axis=0).astype(np.float64)

    seed, start, end = _episodes(run.active)
    t = tl.sample_times
    horizon = run.scenario.duration_s
    t_start = t[start]
    t_end = np.where(end < tl.samples, t[np.minimum(end, tl.samples - 1)], horizon)
    delays = np.full(seed.size, np.nan)
    for i in range(seed.size):
        fires = tl.eval_times[responds[:, seed[i]]]
        k = np.searchsorted(fires, t_start[i])
        if k < fires.size and fires[k] <= t_end[i]:
            delays[i] = fires[k] - t_start[i]
    detected = np.isfinite(delays)
    # A cured episode may end sooner than the window; it still counts as one to detect.
    eligible = ((t_end - t_start) > tl.window_s) | detected
    first_delay = np.full(n_b, np.nan)
    order = np.lexsort((t_start, seed))
    for i in order[::-1]:  # earliest episode of each seed written last
        first_delay[seed[i]] = delays[i]

    minutes = tl.interval / 60.0
    impact = np.nan_to_num(run.score_counterfactual).sum(axis=0) * minutes
    impact_acted = np.nan_to_num(run.score).sum(axis=0) * minutes
    return PerSeed(
        seeds=np.asarray(run.seeds, dtype=np.int64),
        false_rollbacks=false_rollbacks,
        eligible=np.bincount(seed[eligible], minlength=n_b).astype(np.float64),
        missed=np.bincount(seed[eligible & ~detected], minlength=n_b).astype(np.float64),
        impact=impact,
        impact_avoided=impact - impact_acted,
        actions=run.executions.sum(axis=0).astype(np.float64),
        escalations=(run.escalation > 0).sum(axis=0).astype(np.float64),
        delays=delays[detected],
        owner=seed[detected],
        first_delay=first_delay,
    )


class Estimate(Model):
    """A statistic on the simulated seeds and its percentile-bootstrap confidence interval;
    null where undefined (no episode to detect, for instance)."""

    value: float | None = Field(description="On the seeds as simulated.")
    low: float | None = Field(description="Lower bound of the confidence interval.")
    high: float | None = Field(description="Upper bound of the confidence interval.")


class Detection(Model):
    """Detection time of regression episodes, seconds."""

    p50: Estimate
    p90: Estimate
    mean: Estimate


class Metrics(Model):
    """The metrics of one scenario, or of every scenario pooled."""

    seeds: int = Field(description="Runs (seeds).")
    episodes: int = Field(description="Regression episodes in force longer than the window.")
    detected: int = Field(description="Episodes in which a Rollback or Pause fired.")
    detection_seconds: Detection
    false_rollback_rate: Estimate = Field(description="False rollbacks per run.")
    missed_regression_rate: Estimate = Field(description="Missed episodes / episodes.")
    impact_avoided: Estimate = Field(description="Score-minutes avoided per run.")
    impact_avoided_fraction: Estimate = Field(description="Impact avoided / impact without acting.")
    actions_per_run: Estimate = Field(description="Executed Rollbacks and Pauses per run.")
    escalations_per_run: Estimate = Field(
        description="Times humans were needed per run: a decision blocked by cooldown, a fire "
        "beyond the action budget or a failed validation (the last two stop automatic actions)."
    )


class ScenarioResult(Model):
    name: str
    description: str
    representative_seed: int = Field(description="The seed plotted: median detection time.")
    metrics: Metrics


class PolicyInfo(Model):
    risk_tier: str
    mode: str
    spec_hash: str


class SimulationResult(Model):
    """The result of ``rollguard simulate``: what the JSON report holds."""

    schema_version: int = SCHEMA_VERSION
    policy: PolicyInfo
    seed: int = Field(description="First seed; runs use seed, seed + 1, ...")
    seeds: int
    resamples: int = Field(description="Bootstrap resamples.")
    confidence: float = Field(description="Level of every confidence interval.")
    scenarios: list[ScenarioResult]
    overall: Metrics = Field(description="Every scenario pooled (resampled within scenarios).")


def _estimate(e: bootstrap.Estimate) -> Estimate:
    value, low, high = (None if not np.isfinite(x) else float(x) for x in e)
    return Estimate(value=value, low=low, high=high)


def metrics(data: PerSeed, counts: I64, confidence: float) -> Metrics:
    """Metrics of per-seed data under bootstrap resample ``counts`` (R, B)."""
    p50, p90 = bootstrap.quantiles(data.delays, data.owner, counts, [0.5, 0.9], confidence)
    return Metrics(
        seeds=int(data.seeds.size),
        episodes=int(data.eligible.sum()),
        detected=int(data.delays.size),
        detection_seconds=Detection(
            p50=_estimate(p50),
            p90=_estimate(p90),
            mean=_estimate(bootstrap.weighted_mean(data.delays, data.owner, counts, confidence)),
        ),
        false_rollback_rate=_estimate(bootstrap.mean(data.false_rollbacks, counts, confidence)),
        missed_regression_rate=_estimate(
            bootstrap.ratio(data.missed, data.eligible, counts, confidence)
        ),
        impact_avoided=_estimate(bootstrap.mean(data.impact_avoided, counts, confidence)),
        impact_avoided_fraction=_estimate(
            bootstrap.ratio(data.impact_avoided, data.impact, counts, confidence)
        ),
        actions_per_run=_estimate(bootstrap.mean(data.actions, counts, confidence)),
        escalations_per_run=_estimate(bootstrap.mean(data.escalations, counts, confidence)),
    )


def representative(data: PerSeed) -> int:
    """The seed whose first detection time is closest to the median (the first seed when
    nothing was detected)."""
    first = data.first_delay
    if not np.isfinite(first).any():
        return int(data.seeds[0])
    median = np.nanquantile(first, 0.5, method="inverted_cdf")
    return int(data.seeds[int(np.nanargmin(np.abs(first - median)))])


def resample_rng(seed: int, name: str) -> np.random.Generator:
    """The bootstrap stream of one scenario: fixed by the run seed and the scenario's name, so
    adding a scenario changes no other scenario's intervals."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))
    )


def summarize(
    policy_info: PolicyInfo,
    results: list[tuple[Scenario, PerSeed]],
    *,
    seed: int,
    resamples: int,
    confidence: float,
) -> SimulationResult:
    """The simulation result of every scenario's per-seed data, with intervals."""
    scenarios: list[ScenarioResult] = []
    all_counts: list[I64] = []
    for scenario, data in results:
        rng = resample_rng(seed, scenario.name)
        counts = bootstrap.resample_counts(rng, data.seeds.size, resamples)
        all_counts.append(counts)
        scenarios.append(
            ScenarioResult(
                name=scenario.name,
                description=scenario.description,
                representative_seed=representative(data),
                metrics=metrics(data, counts, confidence),
            )
        )
    pooled = PerSeed.concat([d for _, d in results])
    overall = metrics(pooled, np.concatenate(all_counts, axis=1), confidence)
    return SimulationResult(
        policy=policy_info,
        seed=seed,
        seeds=int(results[0][1].seeds.size) if results else 0,
        resamples=resamples,
        confidence=confidence,
        scenarios=scenarios,
        overall=overall,
    )
