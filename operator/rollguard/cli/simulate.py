"""``rollguard simulate`` and ``rollguard backtest``: how a policy would behave, on generated
scenarios, on a recorded series, or on a deployment's history fetched from Prometheus.

Parses, calls ``rollguard.simulation`` (and ``rollguard.signals`` for the fetch), prints and
writes the reports. Registered in ``rollguard.cli``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from rollguard.api.base import duration_seconds
from rollguard.api.policy import EffectivePolicy
from rollguard.cli.base import EXIT_FOUND, EXIT_OK, Command, positive
from rollguard.core.times import parse_timestamp
from rollguard.files.loading import InputError, load_policy, load_subscriptions
from rollguard.files.series import load_series, to_csv
from rollguard.signals.backtest import fetch
from rollguard.signals.prometheus import MonitoringError, PrometheusSource
from rollguard.signals.promql import lookback_seconds
from rollguard.simulation import report
from rollguard.simulation.metrics import SimulationResult
from rollguard.simulation.montecarlo import simulate, total_steps, trace
from rollguard.simulation.plot import render_png
from rollguard.simulation.recorded import run_recorded
from rollguard.simulation.scenarios import Scenario, load_scenarios
from rollguard.simulation.virtual import Setting

MAX_SEEDS = 100_000


def _seeds(text: str) -> int:
    value = positive(text)
    if value > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS:,} runs per scenario, got {value}")
    return value


class Progress:
    """A plain-text progress bar on ``stream``, drawn only when it is a terminal."""

    def __init__(self, total: int, stream: TextIO, label: str) -> None:
        self.total, self.stream, self.label = max(total, 1), stream, label
        self.done, self.shown = 0, -1
        self.enabled = stream.isatty()

    def __call__(self, steps: int) -> None:
        self.done += steps
        percent = min(100, self.done * 100 // self.total)
        if self.enabled and percent != self.shown:
            self.shown = percent
            bar = "#" * (percent // 4)
            self.stream.write(f"\r{self.label} [{bar:<25}] {percent:3d}%")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.shown >= 0:
            self.stream.write("\n")
            self.stream.flush()


# --- what a run over recorded data assumes ------------------------------------------------


def _operator_setting_args(p: argparse.ArgumentParser) -> None:
    """What a run over recorded data assumes about people and the Deployment (--series and
    backtest): the operator's cycle and decision lifecycle run in memory on it."""
    g = p.add_argument_group("recorded data (--series, backtest)")
    g.add_argument(
        "--approve-after",
        type=_approval_delay,
        default=None,
        metavar="DURATION|never",
        help="a human approves a decision that needs one this long after it is made "
        "(never: nobody does, so it expires or onTimeout decides) (never)",
    )
    g.add_argument(
        "--revisions",
        type=positive,
        default=2,
        help="revisions the Deployment has, the newest current and the others approved (2)",
    )
    g.add_argument(
        "--rollout-in-progress",
        action="store_true",
        help="the current revision is still rolling out (a Pause can act on it)",
    )


def _approval_delay(text: str) -> float | None:
    if text == "never":
        return None
    try:
        return duration_seconds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"a duration such as 90s or 5m, or never: {err}") from err


def _operator_setting(args: argparse.Namespace, policy: EffectivePolicy, step: float) -> Setting:
    return Setting(
        revisions=max(2, args.revisions),
        rollout_in_progress=args.rollout_in_progress,
        approve_after=args.approve_after,
        settle=max((lookback_seconds(s.query) for s in policy.signals), default=0.0),
        scrape_interval=step,
    )


# --- simulate -----------------------------------------------------------------------------


def _simulate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", type=Path, required=True, help="RollbackPolicy YAML file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--scenarios",
        type=Path,
        nargs="+",
        metavar="DIR_OR_FILE",
        help="scenario files or directories of them",
    )
    source.add_argument(
        "--series",
        type=Path,
        metavar="FILE",
        help="recorded series (CSV or .json) instead of scenarios",
    )
    p.add_argument("--seeds", type=_seeds, default=200, help="runs per scenario (200)")
    p.add_argument("--seed", type=int, default=0, help="first seed (0)")
    p.add_argument("--resamples", type=positive, default=1000, help="bootstrap resamples")
    p.add_argument("--out", type=Path, help="directory for simulate.json, simulate.md, PNGs")
    p.add_argument("--png", action="store_true", help="also plot one seed per scenario")
    p.add_argument(
        "--check",
        type=Path,
        metavar="BASELINE.json",
        help="exit 1 when the policy does worse than this earlier report",
    )
    p.add_argument("--json", action="store_true", help="print the JSON result to stdout")
    _operator_setting_args(p)


def _simulate(args: argparse.Namespace) -> int:
    policy = load_policy(path=args.policy)
    if args.series is not None:
        return _simulate_series(args, policy)
    return _simulate_scenarios(args, policy)


def _simulate_series(args: argparse.Namespace, policy: EffectivePolicy) -> int:
    series = load_series(path=args.series, signals=[s.name for s in policy.signals])
    recorded = run_recorded(
        policy,
        series,
        setting=_operator_setting(args, policy, series.step),
        notify=load_subscriptions(path=args.policy),
    )
    text = report.to_json(recorded)
    if args.out is not None:
        _write(args.out / "recorded.json", text)
    print(text if args.json else report.recorded_text(recorded), end="")
    return EXIT_OK


def _simulate_scenarios(args: argparse.Namespace, policy: EffectivePolicy) -> int:
    if args.png and args.out is None:
        raise InputError("--png: needs --out DIR to write the images to")
    scenarios = load_scenarios(paths=args.scenarios, policy=policy)
    baseline = report.load_baseline(path=args.check) if args.check is not None else None
    bar = Progress(total_steps(policy, scenarios, seeds=args.seeds), sys.stderr, "simulate")
    try:
        result = simulate(
            policy,
            scenarios,
            seeds=args.seeds,
            seed=args.seed,
            resamples=args.resamples,
            progress=bar,
        )
    finally:
        bar.close()
    if args.out is not None:
        _write_reports(args.out, policy, scenarios, result, png=args.png)
    if args.json:
        print(report.to_json(result), end="")
    else:
        print(report.simulation_markdown(result).split("\n## ")[0].rstrip())
        if args.out is not None:
            print(
                f"\nWrote {args.out}/simulate.json and simulate.md"
                + (" and one PNG per scenario" if args.png else "")
            )
    if baseline is None:
        return EXIT_OK
    return _check(result, baseline, source=args.check)


def _write_reports(
    out: Path,
    policy: EffectivePolicy,
    scenarios: list[Scenario],
    result: SimulationResult,
    *,
    png: bool,
) -> None:
    _write(out / "simulate.json", report.to_json(result))
    _write(out / "simulate.md", report.simulation_markdown(result))
    if png:
        for scenario, summary in zip(scenarios, result.scenarios, strict=True):
            seed = summary.representative_seed
            image = render_png(
                policy, trace(policy, scenario, seed=seed), seed_label=f" (seed {seed})"
            )
            (out / f"{scenario.name}.png").write_bytes(image)


def _check(result: SimulationResult, baseline: SimulationResult, *, source: Path) -> int:
    """``--check``: each way the policy does worse than the baseline on stderr; exit 1 if any."""
    worse = report.check(result, baseline)
    for line in worse:
        print(f"check: {line}", file=sys.stderr)
    if worse:
        print(f"check: the policy does worse than {source}", file=sys.stderr)
        return EXIT_FOUND
    print(f"check: not worse than {source}", file=sys.stderr)
    return EXIT_OK


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


SIMULATE = Command(
    "how a policy would behave on scenarios or recorded data", _simulate_args, _simulate
)


# --- backtest -----------------------------------------------------------------------------


def _backtest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", type=Path, required=True, help="RollbackPolicy YAML")
    p.add_argument("--prometheus", required=True, help="Prometheus base URL")
    p.add_argument("--namespace", required=True, help="namespace of the deployment")
    p.add_argument("--deployment", required=True, help="Deployment name")
    p.add_argument(
        "--revision", default="", help="fills $revision in the policy's queries, if they use it"
    )
    p.add_argument("--from", dest="start", required=True, help="start: Unix seconds or RFC 3339")
    p.add_argument("--to", dest="end", required=True, help="end: Unix seconds or RFC 3339")
    p.add_argument("--step", type=float, default=15.0, help="seconds between samples (15)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--save-series",
        type=Path,
        metavar="FILE",
        help="also write the fetched samples as a CSV series, for `rollguard simulate --series`",
    )
    p.add_argument(
        "--regression-from",
        metavar="TIME",
        help="with --save-series: mark samples from TIME on as a known regression (ground truth)",
    )
    _operator_setting_args(p)


def _backtest(args: argparse.Namespace) -> int:
    policy = load_policy(path=args.policy)
    try:
        start, end = parse_timestamp(args.start), parse_timestamp(args.end)
    except ValueError as err:
        raise InputError(f"--from/--to: {err}") from err
    source = PrometheusSource(url=args.prometheus)
    try:
        series = fetch(
            source=source,
            policy=policy,
            namespace=args.namespace,
            deployment=args.deployment,
            revision=args.revision,
            start=start,
            end=end,
            step=args.step,
        )
    except MonitoringError as err:
        raise InputError(f"{args.prometheus}: {err}") from err
    if args.save_series:
        try:
            regression = parse_timestamp(args.regression_from) if args.regression_from else None
        except ValueError as err:
            raise InputError(f"--regression-from: {err}") from err
        args.save_series.write_text(to_csv(series, regression_from=regression))
    recorded = run_recorded(
        policy,
        series,
        setting=_operator_setting(args, policy, series.step),
        notify=load_subscriptions(path=args.policy),
    )
    print(report.to_json(recorded) if args.json else report.recorded_text(recorded), end="")
    return EXIT_OK


BACKTEST = Command(
    "run a policy over a deployment's history in Prometheus", _backtest_args, _backtest
)
