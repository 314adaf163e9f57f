"""Throughput of the batched Monte Carlo simulator, against the same engine run one seed at
a time and against a per-sample Python loop.

Run: ``PYTHONPATH=tools .venv/bin/python bench/backtest_throughput.py [--seeds 1000]
[--hours 24]`` (``make bench`` sets PYTHONPATH). Prints the figures and writes them, with the
commit and the date, to ``bench/results/backtest.json``. Not a test: nothing is asserted.

Unit of work. A *seed* is one simulated deployment: the scenario's series drawn for that seed,
the policy evaluated every interval, and the operator's decisions on it. The simulator holds
every seed twice, an acted copy and a counterfactual copy that never acts (for the impact
avoided); both are part of simulating the seed. A *sample-evaluation* is one sample of one
signal consumed by one evaluation of one seed: J x B x S x N for J evaluation times, B seeds,
S signals and N samples per window. Every rate and goal below counts that way, once per seed.
The count with both copies (2 x J x B x S x N) is written too, only under names ending in
``BothCopies``, and no ratio uses it.

Setup: the example policy (``examples/scenarios/policy.yaml``: 30 s interval, 5 min window,
3 signals), the ``error-burst`` scenario stretched to ``--hours`` at 15 s samples (N = 20).

- Batched: ``simulate_scenario(policy, scenario, seeds=B)``, the B seeds in one batch (B =
  ``--seeds``): generating the series, the time loop with the decisions and actions, and the
  per-seed metrics.
- Baseline, the engine's batch-of-one path: the same call with ``chunk=1``, i.e. the same
  engine given one seed at a time (``--baseline-seeds``): identical work, and identical
  per-seed outcomes (checked against the batched run's). The speed-up is the ratio of seeds
  per second. One seed at a time, most of the time goes to the guard's state machine
  stepping arrays of one seed once per evaluation time.
- Reference, a per-sample Python loop (``--python-loop-seeds``; 0 skips it): for each seed,
  each evaluation time, each signal and each sample, the counterfactual copy's statistics,
  severities, impact score and dwell-based trigger firing, in plain Python over nested lists;
  its scores are checked against the engine's. It does less than a seed's work (one copy's
  scores and firing: no series generation, no acted copy, no decisions, no metrics), so the
  speed-up over it understates the speed-up over a Python loop that did the whole work.

Goals: >= 10 million sample-evaluations/s on one core, and >= 50x the baseline (the engine's
batch-of-one path); the result file says whether each is met, and the speed-up over the Python
loop with it.

A month at fleet scale (``--month-deployments``, default 1000; 0 skips it): the same policy
and scenario stretched to ``--month-days`` (30) at 15 s samples, one seed per deployment,
run once through ``simulate_scenario`` in chunks of ``--month-chunk`` (100) deployments, in a
fresh interpreter: wall time, sample-evaluations per second, that interpreter's peak RSS, and
the actions and false rollbacks it made.

Timing: each of the three runs ``--repeat`` times (default 3) in this process and its median
time counts; every run's time is recorded. The first batched run of a fresh process also pays
one-off costs (first touch of a few hundred MB of fresh memory, slow in a VM); it is among the
recorded runs.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from devenv.testing import write_bench_result
from rollguard.api.base import duration_seconds
from rollguard.api.policy import EffectivePolicy
from rollguard.core.severity import signal_limit
from rollguard.core.statistics.student_t import t_two_sided
from rollguard.files.loading import load_policy
from rollguard.simulation.generate import compose, generate_noise, sample_times, shifts
from rollguard.simulation.metrics import PerSeed
from rollguard.simulation.montecarlo import simulate_scenario
from rollguard.simulation.scenario_run import run_scenario, timeline
from rollguard.simulation.scenarios import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "backtest.json"
GOAL_RATE = 10_000_000  # sample-evaluations per second, counted once per seed
GOAL_SPEEDUP = 50.0  # over the engine's batch-of-one path, in seeds per second


def _bound_severity(
    values: list[float], t_table: list[float], limit: float, critical: float, is_max: bool
) -> float:
    """Severity of the confidence bound of ``values`` (at least one) against ``limit``."""
    count, total = 0, 0.0
    for x in values:
        count += 1
        total += x
    mean = total / count
    squares = 0.0
    for x in values:
        squares += (x - mean) ** 2
    half = (
        t_table[count] * math.sqrt(squares / (count - 1)) / math.sqrt(count) if count > 1 else 0.0
    )
    if is_max:
        severity = (mean - half - limit) / (critical - limit)
    else:
        severity = (limit - (mean + half)) / (limit - critical)
    return min(max(severity, 0.0), 1.0)


def naive_scores(
    policy: EffectivePolicy,
    *,
    values: list[list[list[float]]],
    present: list[list[list[bool]]],
    eval_index: list[int],
    eval_times: list[float],
    window: int,
) -> tuple[list[list[float]], list[list[int]]]:
    """Per seed, per evaluation: the impact score and the trigger fired, one sample at a time,
    by the engine's rules for a policy without key signals or ``onMissingData: Breach`` (the
    example policy): each signal's bound over the whole window (``minSamples``) and, with
    ``recentSamples``, over its newest valid samples, the more severe of the two conclusive
    tests counting, both at the paired confidence; the score NaN when no signal is
    conclusive."""
    signals = policy.signals
    if any(s.key or s.on_missing_data == "Breach" for s in signals):
        raise ValueError("the loop implements policies without key signals or onMissingData Breach")
    limits = [signal_limit(s) for s in signals]
    criticals = [s.critical for s in signals]
    is_max = [s.objective.direction == "max" for s in signals]
    names = [s.name for s in signals]
    cats = [
        (c.weight, [(names.index(k), v) for k, v in c.signals.items()])
        for c in policy.impact.categories
    ]
    total_weight = sum(c.weight for c in policy.impact.categories)
    min_samples = policy.evaluation.min_samples
    recent = policy.evaluation.recent_samples
    conf = policy.evaluation.confidence
    if recent is not None:
        conf = 1.0 - (1.0 - conf) / 2.0  # two tests, one false-alarm budget
    t_table = [0.0, 0.0] + [t_two_sided(conf, n - 1) for n in range(2, window + 1)]
    points = [(t.min_score, duration_seconds(t.sustained_for)) for t in policy.triggers]
    all_scores, all_fired = [], []
    for b in range(len(values)):
        above_since: list[float | None] = [None] * len(points)
        scores, fired_list = [], []
        for k, now in zip(eval_index, eval_times, strict=True):
            severity = []
            conclusive_any = False
            for s in range(len(signals)):
                samples = [
                    values[b][s][n]
                    for n in range(k - window + 1, k + 1)
                    if n >= 0 and present[b][s][n]
                ]
                if len(samples) < max(min_samples, 1):
                    severity.append(0.0)
                    continue
                conclusive_any = True
                sev = _bound_severity(samples, t_table, limits[s], criticals[s], is_max[s])
                if recent is not None and len(samples) >= recent:
                    newest = samples[len(samples) - recent :]
                    sev = max(
                        sev, _bound_severity(newest, t_table, limits[s], criticals[s], is_max[s])
                    )
                severity.append(sev)
            score = (
                sum(w * min(max(sum(v * severity[i] for i, v in sig), 0.0), 1.0) for w, sig in cats)
                / total_weight
            )
            score = min(max(score, 0.0), 1.0) if conclusive_any else math.nan
            fired = -1
            for t, (min_score, sustain) in enumerate(points):
                if score >= min_score:
                    if above_since[t] is None:
                        above_since[t] = now
                    since = above_since[t]
                    if (
                        since is not None
                        and now - since >= sustain
                        and (fired < 0 or min_score > points[fired][0])
                    ):
                        fired = t
                elif score < min_score:
                    above_since[t] = None
            scores.append(score)
            fired_list.append(fired)
        all_scores.append(scores)
        all_fired.append(fired_list)
    return all_scores, all_fired


def timed(repeat: int, run: Any) -> tuple[float, list[float], Any]:
    """``run()`` ``repeat`` times: the median time, every time, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


_PER_SEED_FIELDS = (
    "seeds",
    "false_rollbacks",
    "eligible",
    "missed",
    "impact",
    "impact_avoided",
    "actions",
    "escalations",
    "first_delay",
)


def same_outcomes(batched: PerSeed, alone: PerSeed) -> bool:
    """Whether the seeds run alone had the outcomes they had in the batch (the batch's first
    seeds are the same seeds)."""
    k = alone.seeds.size
    for name in _PER_SEED_FIELDS:
        a, b = getattr(batched, name)[:k], getattr(alone, name)
        if not np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True):
            return False
    kept = batched.owner < k
    return bool(
        np.array_equal(batched.owner[kept], alone.owner)
        and np.allclose(batched.delays[kept], alone.delays, rtol=1e-9, equal_nan=True)
    )


def python_loop(
    policy: EffectivePolicy, scenario: Scenario, seeds: int, repeat: int
) -> dict[str, Any]:
    """The per-sample Python loop over the counterfactual series of ``seeds`` seeds."""
    tl = timeline(policy, scenario)
    chosen = list(range(seeds))
    names = [s.name for s in policy.signals]
    gen = generate_noise(scenario, names, chosen)
    t = sample_times(scenario)
    live = np.ones((seeds, len(scenario.effects), t.size), dtype=np.bool_)
    frozen = np.full((seeds, len(scenario.effects)), np.inf)
    values = compose(scenario, names, gen.noise, shifts(scenario, names, t, live, frozen))
    present = gen.present & np.isfinite(values)
    lists = values.tolist(), present.tolist()
    seconds, runs, (scores, _) = timed(
        repeat,
        lambda: naive_scores(
            policy,
            values=lists[0],
            present=lists[1],
            eval_index=tl.eval_index.tolist(),
            eval_times=tl.eval_times.tolist(),
            window=tl.window,
        ),
    )
    engine_scores = run_scenario(policy, scenario, chosen).score_counterfactual.T
    agree = bool(
        np.allclose(np.array(scores), engine_scores, rtol=1e-9, atol=1e-12, equal_nan=True)
    )
    evals = tl.eval_times.size * seeds * len(policy.signals) * tl.window
    return {
        "what": "per-sample Python loop over nested lists: the counterfactual copy's scores "
        "and trigger firing only (no series generation, no acted copy, no decisions, no "
        "metrics)",
        "seeds": seeds,
        "seconds": round(seconds, 3),
        "secondsEachRun": [round(x, 3) for x in runs],
        "seedsPerSecond": round(seeds / seconds, 2),
        "sampleEvaluations": evals,
        "sampleEvaluationsPerSecond": round(evals / seconds),
        "scoresMatchEngine": agree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1000, help="seeds in the batch (1000)")
    parser.add_argument("--hours", type=float, default=24.0, help="scenario length (24)")
    parser.add_argument(
        "--baseline-seeds", type=int, default=20, help="seeds run one at a time (20)"
    )
    parser.add_argument(
        "--python-loop-seeds", type=int, default=10, help="seeds of the Python loop (10; 0 skips)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, median (3)")
    parser.add_argument("--month-deployments", type=int, default=1000, help="0 skips (1000)")
    parser.add_argument("--month-days", type=float, default=30.0)
    parser.add_argument("--month-chunk", type=int, default=100, help="deployments at once")
    parser.add_argument("--out", type=Path, default=OUT, help=f"result file ({OUT.name})")
    args = parser.parse_args()
    if args.baseline_seeds > args.seeds:
        parser.error("--baseline-seeds must not exceed --seeds (their outcomes are compared)")

    policy = load_policy(path=ROOT / "examples" / "scenarios" / "policy.yaml")
    base = load_scenario(path=ROOT / "examples" / "scenarios" / "error-burst.yaml", policy=policy)
    scenario = Scenario.model_validate(
        {
            **base.model_dump(by_alias=True, exclude_none=True),
            "duration": f"{int(args.hours * 3600)}s",
        }
    )
    tl = timeline(policy, scenario)
    n_s, n_j = len(policy.signals), tl.eval_times.size
    per_seed = n_j * n_s * tl.window  # sample-evaluations of one seed

    batch_s, batch_runs, batched = timed(
        args.repeat, lambda: simulate_scenario(policy, scenario, seeds=args.seeds)
    )
    one_s, one_runs, alone = timed(
        args.repeat,
        lambda: simulate_scenario(policy, scenario, seeds=args.baseline_seeds, chunk=1),
    )
    batch_seeds_per_s = args.seeds / batch_s
    one_seeds_per_s = args.baseline_seeds / one_s
    rate = per_seed * batch_seeds_per_s
    speedup = batch_seeds_per_s / one_seeds_per_s
    loop = (
        python_loop(policy, scenario, args.python_loop_seeds, args.repeat)
        if args.python_loop_seeds > 0
        else None
    )
    loop_speedup = batch_seeds_per_s / loop["seedsPerSecond"] if loop else None

    result: dict[str, Any] = {
        "definition": "a sample-evaluation is one sample of one signal consumed by one "
        "evaluation of one seed; each seed is counted once (its acted and counterfactual "
        "copies together); rates and speed-ups count that way",
        "hours": args.hours,
        "signals": n_s,
        "windowSamples": tl.window,
        "evaluationsPerSeed": n_j,
        "sampleEvaluationsPerSeed": per_seed,
        "repeat": args.repeat,
        "batched": {
            "seeds": args.seeds,
            "seconds": round(batch_s, 3),
            "secondsEachRun": [round(x, 3) for x in batch_runs],
            "seedsPerSecond": round(batch_seeds_per_s, 1),
            "sampleEvaluations": per_seed * args.seeds,
            "sampleEvaluationsPerSecond": round(rate),
            "sampleEvaluationsBothCopies": 2 * per_seed * args.seeds,
            "sampleEvaluationsPerSecondBothCopies": round(2 * rate),
            "millisecondsPerEvaluationTime": round(batch_s / n_j * 1e3, 3),
        },
        "baselineBatchOfOne": {
            "what": "the same engine (simulate_scenario, chunk=1): one seed at a time, the "
            "same work as the batch",
            "seeds": args.baseline_seeds,
            "seconds": round(one_s, 3),
            "secondsEachRun": [round(x, 3) for x in one_runs],
            "seedsPerSecond": round(one_seeds_per_s, 2),
            "sampleEvaluationsPerSecond": round(per_seed * one_seeds_per_s),
            "outcomesMatchBatched": same_outcomes(batched, alone),
        },
        "speedupOverBatchOfOne": round(speedup, 1),
        "pythonLoop": loop,
        "speedupOverPythonLoop": None if loop_speedup is None else round(loop_speedup, 1),
        "goals": {
            "sampleEvaluationsPerSecond": {
                "goal": GOAL_RATE,
                "measured": round(rate),
                "met": rate >= GOAL_RATE,
            },
            "speedupOverBatchOfOne": {
                "goal": GOAL_SPEEDUP,
                "measured": round(speedup, 1),
                "met": speedup >= GOAL_SPEEDUP,
            },
            "speedupOverPythonLoop": None
            if loop_speedup is None
            else {
                "goal": GOAL_SPEEDUP,
                "measured": round(loop_speedup, 1),
                "met": loop_speedup >= GOAL_SPEEDUP,
                "note": "the loop does less than a seed's work (one copy's scores and firing)",
            },
        },
        "month": month(policy, base, args.month_deployments, args.month_days, args.month_chunk),
        "numpy": np.__version__,
    }
    write_bench_result(args.out, result)

    def verdict(met: bool) -> str:
        return "met" if met else "MISSED"

    print(
        f"batched: {args.seeds} seeds x {args.hours:g} h in {batch_s:.2f} s "
        f"(median of {', '.join(f'{x:.2f}' for x in batch_runs)} s) = "
        f"{batch_seeds_per_s:.0f} seeds/s = {rate / 1e6:.1f} M sample-evaluations/s counting "
        f"each seed once ({2 * rate / 1e6:.1f} M/s counting its acted and counterfactual "
        f"copies separately); goal >= {GOAL_RATE / 1e6:.0f} M/s: "
        f"{verdict(rate >= GOAL_RATE)}"
    )
    print(
        f"baseline, the same engine one seed at a time: {args.baseline_seeds} seeds in "
        f"{one_s:.2f} s = {one_seeds_per_s:.2f} seeds/s (outcomes match the batch: "
        f"{result['baselineBatchOfOne']['outcomesMatchBatched']}); batched is {speedup:.0f}x "
        f"faster; goal >= {GOAL_SPEEDUP:.0f}x: {verdict(speedup >= GOAL_SPEEDUP)}"
    )
    if loop is not None and loop_speedup is not None:
        print(
            f"reference, per-sample Python loop (one copy's scores and firing only): "
            f"{loop['seeds']} seeds in {loop['seconds']:.2f} s = {loop['seedsPerSecond']:.2f} "
            f"seeds/s (scores match the engine: {loop['scoresMatchEngine']}); batched is "
            f"{loop_speedup:.0f}x faster per seed ({verdict(loop_speedup >= GOAL_SPEEDUP)} "
            f"against {GOAL_SPEEDUP:.0f}x)"
        )
    if result["month"]:
        m = result["month"]
        print(
            f"a month: {m['days']:g} days x {m['deployments']} deployments x "
            f"{m['sampleSeconds']:g} s samples = {m['sampleEvaluations']:,} sample-evaluations "
            f"in {m['seconds']:.1f} s ({m['sampleEvaluationsPerSecond'] / 1e6:.0f} M/s counting "
            f"each deployment once), peak RSS {m['peakRssMiB']:.0f} MiB (chunks of "
            f"{m['chunk']}); {m['actions']:.0f} actions, {m['falseRollbacks']:.0f} false "
            f"rollbacks"
        )
    print(f"wrote {args.out}")


def month(
    policy: EffectivePolicy, base: Scenario, deployments: int, days: float, chunk: int
) -> dict[str, float]:
    """One seed per deployment over ``days``: the fleet-month replay, in a fresh interpreter
    so that its peak RSS is its own."""
    if deployments < 1:
        return {}
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        figures: dict[str, float] = pool.apply(_month, (policy, base, deployments, days, chunk))
    return figures


def _month(
    policy: EffectivePolicy, base: Scenario, deployments: int, days: float, chunk: int
) -> dict[str, float]:
    scenario = Scenario.model_validate(
        {**base.model_dump(by_alias=True, exclude_none=True), "duration": f"{int(days * 86400)}s"}
    )
    tl = timeline(policy, scenario)
    start = time.perf_counter()
    outcome = simulate_scenario(policy, scenario, seeds=deployments, chunk=chunk)
    seconds = time.perf_counter() - start
    evals = tl.eval_times.size * deployments * len(policy.signals) * tl.window
    return {
        "days": days,
        "deployments": deployments,
        "chunk": chunk,
        "sampleSeconds": tl.dt,
        "evaluationsPerDeployment": int(tl.eval_times.size),
        "seconds": round(seconds, 2),
        "sampleEvaluations": evals,
        "sampleEvaluationsPerSecond": round(evals / seconds),
        "sampleEvaluationsBothCopies": 2 * evals,
        "peakRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "actions": float(outcome.actions.sum()),
        "falseRollbacks": float(outcome.false_rollbacks.sum()),
    }


if __name__ == "__main__":
    main()
