"""Throughput of the vectorised simulator against a straightforward per-sample Python loop.

Run: ``.venv/bin/python bench/backtest_throughput.py [--seeds 1000] [--hours 24]``. Prints the
numbers and writes them to ``bench/results/backtest.json``. Not a test: nothing is asserted.

Definition. A *sample-evaluation* is one sample of one signal consumed by one evaluation of
one batch member: an evaluation of S signals over windows of N samples is S x N
sample-evaluations. The vectorised simulator evaluates every seed twice per evaluation time
(the acted copy and the no-action counterfactual), so its count is J x 2B x S x N for J
evaluation times and B seeds; the figure "per seed copy" counts the acted copy only
(J x B x S x N), i.e. what a user would call the simulated work.

Setup: the example policy (``examples/scenarios/policy.yaml``: 30 s interval, 5 min window,
3 signals), the ``error-burst`` scenario stretched to ``--hours`` at 15 s samples (N = 20).
The vectorised time includes generating the series, the time loop with actions, and the
per-seed metrics. The naive loop evaluates the same counterfactual series of a few seeds with
plain Python (for each seed, each evaluation time, each signal, each sample), computing the
same statistics, severities, impact score and dwell-based trigger firing, and its scores are
checked against the engine's. Goals: >= 10 million sample-evaluations/s on one core and >= 50x
the loop.

A month at fleet scale (``--month-deployments``, default 1000; 0 skips it): the same policy
and scenario stretched to ``--month-days`` (30) at 15 s samples, one seed per deployment,
run once through ``simulate_scenario`` in chunks of ``--month-chunk`` (100) deployments, in a
fresh interpreter: wall time, sample-evaluations per second, that interpreter's peak RSS, and
the actions and false rollbacks it made.

Timing: each side runs ``--repeat`` times (default 3) in this process and its median time
counts; every run's time is recorded. The first vectorised run of a fresh process also pays
one-off costs (first touch of a few hundred MB of fresh memory, slow in a VM), so its time is
recorded separately too.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from rollguard.api.base import duration_seconds
from rollguard.api.policy import EffectivePolicy
from rollguard.domain.generate import compose, generate_noise, sample_times, shifts
from rollguard.domain.loading import load_policy
from rollguard.domain.scenarios import Scenario, load_scenario
from rollguard.domain.severity import signal_limit
from rollguard.domain.simrun import run_scenario, timeline
from rollguard.domain.simulate import simulate_scenario
from rollguard.domain.stats import t_two_sided

ROOT = Path(__file__).resolve().parent.parent


def naive_scores(
    policy: EffectivePolicy,
    *,
    values: list[list[list[float]]],
    present: list[list[list[bool]]],
    eval_index: list[int],
    eval_times: list[float],
    window: int,
) -> tuple[list[list[float]], list[list[int]]]:
    """Per seed, per evaluation: the impact score and the trigger fired, one sample at a time."""
    signals = policy.signals
    limits = [signal_limit(s) for s in signals]
    criticals = [s.critical for s in signals]
    is_max = [s.objective.direction == "max" for s in signals]
    names = [s.name for s in signals]
    cats = [
        (c.weight, [(names.index(k), v) for k, v in c.signals.items()])
        for c in policy.impact.categories
    ]
    total_weight = sum(c.weight for c in policy.impact.categories)
    conf, min_samples = policy.evaluation.confidence, policy.evaluation.min_samples
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
                count, total = 0, 0.0
                for n in range(k - window + 1, k + 1):
                    if n >= 0 and present[b][s][n]:
                        count += 1
                        total += values[b][s][n]
                if count < max(min_samples, 1):
                    severity.append(0.0)
                    continue
                conclusive_any = True
                mean = total / count
                squares = 0.0
                for n in range(k - window + 1, k + 1):
                    if n >= 0 and present[b][s][n]:
                        squares += (values[b][s][n] - mean) ** 2
                half = (
                    t_table[count] * math.sqrt(squares / (count - 1)) / math.sqrt(count)
                    if count > 1
                    else 0.0
                )
                if is_max[s]:
                    sev = (mean - half - limits[s]) / (criticals[s] - limits[s])
                else:
                    sev = (limits[s] - (mean + half)) / (limits[s] - criticals[s])
                severity.append(min(max(sev, 0.0), 1.0))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--naive-seeds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--month-deployments", type=int, default=1000)
    parser.add_argument("--month-days", type=float, default=30.0)
    parser.add_argument("--month-chunk", type=int, default=100, help="deployments at once")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backtest.json")
    args = parser.parse_args()

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

    vec_runs = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        simulate_scenario(policy, scenario, seeds=args.seeds)
        vec_runs.append(time.perf_counter() - start)
    vec_seconds = statistics.median(vec_runs)
    vec_evals = n_j * 2 * args.seeds * n_s * tl.window
    vec_rate = vec_evals / vec_seconds

    seeds = list(range(args.naive_seeds))
    names = [s.name for s in policy.signals]
    gen = generate_noise(scenario, names, seeds)
    t = sample_times(scenario)
    live = np.ones((len(seeds), len(scenario.effects), t.size), dtype=np.bool_)
    frozen = np.full((len(seeds), len(scenario.effects)), np.inf)
    values = compose(scenario, names, gen.noise, shifts(scenario, names, t, live, frozen))
    present = gen.present & np.isfinite(values)
    naive_runs = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        scores, _ = naive_scores(
            policy,
            values=values.tolist(),
            present=present.tolist(),
            eval_index=tl.eval_index.tolist(),
            eval_times=tl.eval_times.tolist(),
            window=tl.window,
        )
        naive_runs.append(time.perf_counter() - start)
    naive_seconds = statistics.median(naive_runs)
    naive_evals = n_j * len(seeds) * n_s * tl.window
    naive_rate = naive_evals / naive_seconds
    engine_scores = run_scenario(policy, scenario, seeds).score_counterfactual.T
    agree = bool(
        np.allclose(np.array(scores), engine_scores, rtol=1e-9, atol=1e-12, equal_nan=True)
    )

    result = {
        "definition": "one sample of one signal consumed by one evaluation of one batch member",
        "seeds": args.seeds,
        "hours": args.hours,
        "signals": n_s,
        "windowSamples": tl.window,
        "evaluationsPerSeed": n_j,
        "repeat": args.repeat,
        "vectorised": {
            "seconds": round(vec_seconds, 3),
            "secondsEachRun": [round(x, 3) for x in vec_runs],
            "millisecondsPerEvaluationTime": round(vec_seconds / n_j * 1e3, 3),
            "sampleEvaluations": vec_evals,
            "sampleEvaluationsPerSecond": round(vec_rate),
            "perSeedCopyPerSecond": round(vec_rate / 2),
        },
        "naiveLoop": {
            "seeds": len(seeds),
            "seconds": round(naive_seconds, 3),
            "secondsEachRun": [round(x, 3) for x in naive_runs],
            "sampleEvaluations": naive_evals,
            "sampleEvaluationsPerSecond": round(naive_rate),
            "scoresMatchEngine": agree,
        },
        "speedup": round(vec_rate / naive_rate, 1),
        "speedupPerSeedCopy": round(vec_rate / 2 / naive_rate, 1),
        "speedupFirstRun": round(vec_evals / vec_runs[0] / naive_rate, 1),
        "month": month(policy, base, args.month_deployments, args.month_days, args.month_chunk),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"vectorised: {vec_evals:,} sample-evaluations in {vec_seconds:.2f}s = "
        f"{vec_rate / 1e6:.1f} M/s ({vec_rate / 2e6:.1f} M/s counting acted copies only); "
        f"{vec_seconds / n_j * 1e3:.2f} ms per evaluation time of {2 * args.seeds} members; "
        f"median of {', '.join(f'{x:.2f}' for x in vec_runs)} s"
    )
    print(
        f"naive loop: {naive_evals:,} sample-evaluations in {naive_seconds:.2f}s = "
        f"{naive_rate / 1e6:.3f} M/s (scores match the engine: {agree})"
    )
    print(
        f"speedup: {vec_rate / naive_rate:.0f}x ({vec_rate / 2 / naive_rate:.0f}x per seed "
        f"copy; first run alone {vec_evals / vec_runs[0] / naive_rate:.0f}x); wrote {args.out}"
    )
    if result["month"]:
        m = result["month"]
        print(
            f"a month: {m['days']:g} days x {m['deployments']} deployments x 15 s samples = "
            f"{m['sampleEvaluations']:,} sample-evaluations in {m['seconds']:.1f} s "
            f"({m['sampleEvaluationsPerSecond'] / 1e6:.0f} M/s), peak RSS "
            f"{m['peakRssMiB']:.0f} MiB (chunks of {m['chunk']}); {m['actions']:.0f} actions, "
            f"{m['falseRollbacks']:.0f} false rollbacks"
        )


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
    evals = tl.eval_times.size * 2 * deployments * len(policy.signals) * tl.window
    return {
        "days": days,
        "deployments": deployments,
        "chunk": chunk,
        "sampleSeconds": tl.dt,
        "evaluationsPerDeployment": int(tl.eval_times.size),
        "seconds": round(seconds, 2),
        "sampleEvaluations": evals,
        "sampleEvaluationsPerSecond": round(evals / seconds),
        "peakRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "actions": float(outcome.actions.sum()),
        "falseRollbacks": float(outcome.false_rollbacks.sum()),
    }


if __name__ == "__main__":
    main()
