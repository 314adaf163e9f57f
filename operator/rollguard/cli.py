"""The ``rollguard`` command line (also installed as the kubectl plugin ``kubectl-rollguard``).

Thin by design: parse arguments, call the packages below (core, simulation, governance, kube), print, return an exit
code. Each subcommand is a pair of small functions registered in ``COMMANDS``; add one by
writing ``_NAME_args(parser)`` and ``_NAME(args) -> int`` and a registry entry.

Exit codes: 0 success; 1 the command ran and found a problem (``simulate --check``: the
policy got worse); 2 bad input or usage. Bad input gets a message on stderr naming the file,
the field and the problem (a file with several problems: one indented line for each), never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TextIO

from rollguard import __version__, commands
from rollguard.api.base import duration_seconds
from rollguard.api.crd import write_crds
from rollguard.api.policy import EffectivePolicy
from rollguard.control import lint
from rollguard.control.settings import SettingsError
from rollguard.core.replay import replay
from rollguard.files.loading import (
    InputError,
    load_decision_spec,
    load_policy,
    one_line,
    read_text,
    read_yaml,
)
from rollguard.files.png import PlotUnavailableError
from rollguard.files.series import load_series, parse_timestamp, to_csv
from rollguard.governance import calibration, inventory, journal
from rollguard.governance.playbook import playbook_of
from rollguard.governance.plot import render_calibration_png
from rollguard.signals.backtest import fetch
from rollguard.signals.prometheus import MonitoringError, PrometheusSource
from rollguard.signals.promql import lookback_seconds
from rollguard.simulation import report
from rollguard.simulation.montecarlo import simulate, total_steps, trace
from rollguard.simulation.plot import render_png
from rollguard.simulation.recorded import run_recorded
from rollguard.simulation.scenarios import load_scenarios
from rollguard.simulation.virtual import Setting

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """argparse refused the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


MAX_SEEDS = 100_000


def _seeds(text: str) -> int:
    value = _positive(text)
    if value > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS:,} runs per scenario, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text}")
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


# --- simulate ---------------------------------------------------------------------------


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
    p.add_argument("--resamples", type=_positive, default=1000, help="bootstrap resamples")
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
        type=_positive,
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


def _simulate(args: argparse.Namespace) -> int:
    policy = load_policy(path=args.policy)
    if args.series is not None:
        series = load_series(path=args.series, signals=[s.name for s in policy.signals])
        recorded = run_recorded(
            policy, series, setting=_operator_setting(args, policy, series.step)
        )
        text = report.to_json(recorded)
        if args.out is not None:
            _write(args.out / "recorded.json", text)
        print(text if args.json else report.recorded_text(recorded), end="")
        return EXIT_OK
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
        _write(args.out / "simulate.json", report.to_json(result))
        _write(args.out / "simulate.md", report.simulation_markdown(result))
        if args.png:
            for scenario, summary in zip(scenarios, result.scenarios, strict=True):
                seed = summary.representative_seed
                png = render_png(
                    policy, trace(policy, scenario, seed=seed), seed_label=f" (seed {seed})"
                )
                (args.out / f"{scenario.name}.png").write_bytes(png)
    if args.json:
        print(report.to_json(result), end="")
    else:
        print(report.simulation_markdown(result).split("\n## ")[0].rstrip())
        if args.out is not None:
            print(
                f"\nWrote {args.out}/simulate.json and simulate.md"
                + (" and one PNG per scenario" if args.png else "")
            )
    if baseline is not None:
        worse = report.check(result, baseline)
        for line in worse:
            print(f"check: {line}", file=sys.stderr)
        if worse:
            print(f"check: the policy does worse than {args.check}", file=sys.stderr)
            return EXIT_FOUND
        print(f"check: not worse than {args.check}", file=sys.stderr)
    return EXIT_OK


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- lint -------------------------------------------------------------------------------


def _lint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "policies", type=Path, nargs="+", metavar="POLICY", help="RollbackPolicy file, YAML or JSON"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _lint(args: argparse.Namespace) -> int:
    reports = {str(path): lint.lint_file(path=path) for path in dict.fromkeys(args.policies)}
    if args.json:
        print(lint.to_json(reports), end="")
    else:
        for i, (source, found) in enumerate(reports.items()):
            if found.parsed:
                print(("\n" if i else "") + lint.render(found, source=source))
            else:
                print(f"error: {found.problems[0]}", file=sys.stderr)
    return EXIT_OK if all(found.valid for found in reports.values()) else EXIT_USAGE


# --- crds -------------------------------------------------------------------------------


def _crds_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("crds"), help="directory (crds/)")


def _crds(args: argparse.Namespace) -> int:
    for path in write_crds(args.out):
        print(f"Wrote {path}")
    return EXIT_OK


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
    recorded = run_recorded(policy, series, setting=_operator_setting(args, policy, series.step))
    print(report.to_json(recorded) if args.json else report.recorded_text(recorded), end="")
    return EXIT_OK


# --- replay -----------------------------------------------------------------------------


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "decision",
        help="a RollbackDecision as YAML or JSON (for example `kubectl get rbd NAME -o yaml`), "
        "or - for standard input",
    )


def _replay(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.decision == "-" else args.decision
    if args.decision == "-":
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as err:
            raise InputError("<stdin>: not UTF-8 text") from err
    else:
        text = read_text(Path(args.decision))
    spec = load_decision_spec(text, source=source)
    result = replay(spec)
    rec = spec.recommended
    target = f" to revision {rec.to_revision}" if rec.to_revision is not None else ""
    if result.same:
        print(
            f"Replayed {source}: same recommendation, bit for bit ({rec.action}{target}, "
            f"score {spec.impact.score:.4f})"
        )
        return EXIT_OK
    print(f"Replayed {source}: the recorded decision is NOT reproduced")
    for difference in result.differences:
        print(f"  - {difference}")
    return EXIT_FOUND


# --- cluster commands ---------------------------------------------------------------------


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"ROLLGUARD_{name}", default)


def _priority(value: str) -> int:
    """A peering priority: an integer, or ``auto`` for a random one in [1, 2**31)."""
    if value == "auto":
        return secrets.randbelow(2**31 - 1) + 1
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither an integer nor 'auto'") from None


def _kube_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: KUBECONFIG)")
    p.add_argument("--context", default=None, help="kubeconfig context")


def _decision_args(
    p: argparse.ArgumentParser, *, reason: bool, kind: str = "RollbackDecision"
) -> None:
    p.add_argument("name", help=f"{kind} name")
    p.add_argument("-n", "--namespace", default="default", help="its namespace")
    if reason:
        p.add_argument("--reason", required=True, help="why (recorded in the decision)")
    _kube_args(p)


def _approve(args: argparse.Namespace) -> int:
    user = commands.set_approval(args, "Approve")
    print(f"Approved RollbackDecision {args.namespace}/{args.name} as {user}")
    return EXIT_OK


def _reject(args: argparse.Namespace) -> int:
    user = commands.set_approval(args, "Reject")
    print(f"Rejected RollbackDecision {args.namespace}/{args.name} as {user}")
    return EXIT_OK


def _review_args(p: argparse.ArgumentParser) -> None:
    _decision_args(p, reason=False)
    p.add_argument(
        "--verdict",
        required=True,
        choices=sorted(commands.REVIEW_VERDICTS),
        help="did the decision achieve what it expected",
    )
    p.add_argument(
        "--regression",
        default="unclear",
        choices=sorted(commands.REGRESSION_FINDINGS),
        help="was the regression real, or a false alarm (default: unclear); calibration counts "
        "false rollbacks and missed regressions from this",
    )
    p.add_argument("--notes", required=True, help="what the review found (recorded)")


def _review(args: argparse.Namespace) -> int:
    if not args.notes.strip():
        raise UsageError("--notes: say what the review found")
    user = commands.set_review(args, now=datetime.now(tz=UTC))
    print(f"Reviewed RollbackDecision {args.namespace}/{args.name} as {user}")
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    print(commands.explain(args))
    return EXIT_OK


def _clear(args: argparse.Namespace) -> int:
    commands.clear_escalation(args)
    print(f"Cleared the escalation of ModelDeployment {args.namespace}/{args.name}")
    return EXIT_OK


def _playbook_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "policy",
        help="a RollbackPolicy YAML file, or the name of a RollbackPolicy in the cluster",
    )
    p.add_argument("-n", "--namespace", default="default", help="its namespace (cluster object)")
    p.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    _kube_args(p)


def _playbook(args: argparse.Namespace) -> int:
    path = Path(args.policy)
    if path.is_file():
        doc = read_yaml(path=path)
        source = path.name
    else:
        doc = commands.get_policy(args)
        source = f"RollbackPolicy {args.namespace}/{args.policy}"
    text = playbook_of(doc, source=source)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return EXIT_OK


def _inventory_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", default=None, help="only this namespace (default: all)")
    p.add_argument(
        "--format", choices=sorted(inventory.RENDERERS), default="markdown", help="output format"
    )
    _kube_args(p)


def _inventory(args: argparse.Namespace) -> int:
    mdeps, policies = commands.list_for_inventory(args)
    print(inventory.RENDERERS[args.format](inventory.inventory(mdeps, policies)), end="")
    return EXIT_OK


def _journal_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", default=None, help="only this namespace (default: all)")
    p.add_argument(
        "--since",
        default=None,
        help="only decisions since: a span (30m, 12h, 7d) or an RFC 3339 time",
    )
    p.add_argument(
        "--audit-log",
        type=Path,
        default=None,
        help="read the operator's exported audit log (JSON lines) instead of the cluster; it "
        "keeps decisions that were garbage-collected",
    )
    _kube_args(p)


def _read_journal(args: argparse.Namespace) -> tuple[journal.Journal, str]:
    if args.audit_log is not None:
        with args.audit_log.open(encoding="utf-8", errors="replace") as lines:
            book = journal.from_audit_log(lines, source=args.audit_log.name)
        if args.namespace:
            book = journal.Journal(
                [e for e in book.entries if e.namespace == args.namespace], book.skipped
            )
        source = f"audit log {args.audit_log.name}"
    else:
        book = journal.from_objects(commands.list_decisions(args))
        source = f"namespace {args.namespace}" if args.namespace else "all namespaces"
    if args.since:
        start = journal.parse_since(args.since, now=datetime.now(tz=UTC).timestamp())
        book = journal.since(book, start)
        source += f", since {args.since}"
    return book, source


def _journal_args(p: argparse.ArgumentParser) -> None:
    _journal_source_args(p)
    p.add_argument(
        "--format", choices=sorted(journal.RENDERERS), default="text", help="output format"
    )


def _journal(args: argparse.Namespace) -> int:
    book, _ = _read_journal(args)
    print(journal.RENDERERS[args.format](book), end="")
    return EXIT_OK


def _calibrate_args(p: argparse.ArgumentParser) -> None:
    _journal_source_args(p)
    p.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    p.add_argument(
        "--png", action="store_true", help="also plot the report, next to --out (needs matplotlib)"
    )
    p.add_argument(
        "--target-false-rollbacks",
        type=_rate,
        default=0.1,
        help="tolerated false-rollback rate (0.1)",
    )
    p.add_argument(
        "--target-missed", type=_rate, default=0.1, help="tolerated missed-regression rate (0.1)"
    )
    p.add_argument(
        "--min-reviews",
        type=_positive,
        default=5,
        help="reviews a policy needs before its margins are judged (5)",
    )


def _calibrate(args: argparse.Namespace) -> int:
    if args.png and args.out is None:
        raise InputError("--png: needs --out FILE; the image is written next to it")
    book, source = _read_journal(args)
    targets = calibration.Targets(
        false_rollback_rate=args.target_false_rollbacks,
        missed_regression_rate=args.target_missed,
        min_reviews=args.min_reviews,
    )
    image = None
    if args.png:
        png = render_calibration_png(
            calibration.impact_points(book.entries),
            calibration.readings(book.entries, targets),
        )
        image = args.out.with_suffix(".png")
        image.write_bytes(png)
    text = calibration.render(
        book, source=source, targets=targets, image=image.name if image else None
    )
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}" + (f" and {image}" if image else ""))
    else:
        print(text, end="")
    return EXIT_OK


def _audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["verify"], help="verify: walk the hash chains")
    p.add_argument("-n", "--namespace", default=None, help="one namespace (default: all)")
    _kube_args(p)


def _audit(args: argparse.Namespace) -> int:
    report, intact = commands.audit_verify(args)
    print(report)
    return EXIT_OK if intact else EXIT_FOUND


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prometheus-url",
        default=_env("PROMETHEUS_URL"),
        help="Prometheus base URL [ROLLGUARD_PROMETHEUS_URL] (required)",
    )
    p.add_argument(
        "--namespace",
        action="append",
        default=[n for n in (_env("NAMESPACES") or "").split(",") if n] or None,
        help="watch only this namespace; repeatable [ROLLGUARD_NAMESPACES, comma-separated]; cluster-wide when absent",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=_env("METRICS_PORT", "8080"),
        help="port of /metrics (0 disables); liveness is served on the next port [ROLLGUARD_METRICS_PORT]",
    )
    p.add_argument(
        "--audit-log",
        default=_env("AUDIT_LOG", "-"),
        help="file for JSON audit lines, - for stdout [ROLLGUARD_AUDIT_LOG]",
    )
    p.add_argument(
        "--keep-decisions",
        type=int,
        default=_env("KEEP_DECISIONS", "20"),
        help="decisions kept per ModelDeployment after export [ROLLGUARD_KEEP_DECISIONS]",
    )
    p.add_argument(
        "--scrape-interval",
        type=float,
        default=_env("SCRAPE_INTERVAL", "15"),
        help="Prometheus scrape interval in seconds: the finest query step [ROLLGUARD_SCRAPE_INTERVAL]",
    )
    p.add_argument(
        "--query-timeout",
        type=float,
        default=_env("QUERY_TIMEOUT", "5"),
        help="seconds per Prometheus request [ROLLGUARD_QUERY_TIMEOUT]",
    )
    p.add_argument(
        "--query-offset",
        type=float,
        default=_env("QUERY_OFFSET", "1"),
        help="seconds after an evaluation instant before it is evaluated, for Prometheus to "
        "ingest the samples up to it: above your slowest scrape, backtests reproduce every "
        "evaluation exactly [ROLLGUARD_QUERY_OFFSET]",
    )
    p.add_argument(
        "--decision-poll",
        type=float,
        default=_env("DECISION_POLL", "2"),
        help="seconds between lifecycle steps of an open decision [ROLLGUARD_DECISION_POLL]",
    )
    p.add_argument(
        "--peering",
        default=_env("PEERING", "rollguard"),
        help="Kopf peering name: of several replicas only one acts [ROLLGUARD_PEERING]",
    )
    p.add_argument(
        "--priority",
        type=_priority,
        default=_env("PRIORITY", "auto"),
        help="peering priority: the replica with the highest acts, the others stand by; 'auto' "
        "(default) draws a random one so that replicas never tie (tied replicas all freeze) "
        "[ROLLGUARD_PRIORITY]",
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        default=_env("STANDALONE", "") == "true",
        help="no peering (one replica only) [ROLLGUARD_STANDALONE=true]",
    )
    p.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        help="debug, info, warning or error; debug adds Kopf's own [ROLLGUARD_LOG_LEVEL]",
    )


def _run(args: argparse.Namespace) -> int:
    try:
        settings = commands.settings_from(args)
    except SettingsError as err:
        raise UsageError(f"rollguard run: {err}") from err
    from rollguard import handlers  # noqa: PLC0415 - importing Kopf is only needed here

    try:
        handlers.run(settings)
    except handlers.StartupError as err:
        print(f"rollguard run: {err}", file=sys.stderr)
        return EXIT_USAGE
    except handlers.WatchFailedError as err:
        print(f"rollguard run: {err}", file=sys.stderr)
        return EXIT_FOUND
    return EXIT_OK


# --- registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "simulate": Command(
        "how a policy would behave on scenarios or recorded data", _simulate_args, _simulate
    ),
    "backtest": Command(
        "run a policy over a deployment's history in Prometheus", _backtest_args, _backtest
    ),
    "replay": Command(
        "re-evaluate a recorded decision from its own evidence", _replay_args, _replay
    ),
    "lint": Command(
        "check policy files offline: schema, tier defaults, queries and how they run",
        _lint_args,
        _lint,
    ),
    "crds": Command("write the CustomResourceDefinitions", _crds_args, _crds),
    "run": Command("run the operator", _run_args, _run),
    "approve": Command(
        "approve a pending decision, as yourself",
        lambda p: _decision_args(p, reason=True),
        _approve,
    ),
    "reject": Command(
        "reject a pending decision, as yourself", lambda p: _decision_args(p, reason=True), _reject
    ),
    "review": Command(
        "record a post-decision review of an ended decision, as yourself",
        _review_args,
        _review,
    ),
    "explain": Command(
        "why a decision was made, in plain words",
        lambda p: _decision_args(p, reason=False),
        _explain,
    ),
    "journal": Command(
        "decisions with expected vs observed impact, validation and review",
        _journal_args,
        _journal,
    ),
    "calibrate": Command(
        "how well expectations matched outcomes; margins too tight or too loose (Markdown)",
        _calibrate_args,
        _calibrate,
    ),
    "audit": Command("verify the decision hash chains", _audit_args, _audit),
    "inventory": Command(
        "list every ModelDeployment with owners, tier, figures, signals, revisions, phase",
        _inventory_args,
        _inventory,
    ),
    "playbook": Command(
        "render a policy's rollback playbook as Markdown (tier defaults applied)",
        _playbook_args,
        _playbook,
    ),
    "clear": Command(
        "let automatic actions resume on an Escalated ModelDeployment",
        lambda p: _decision_args(p, reason=False, kind="ModelDeployment"),
        _clear,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rollguard",
        description="Decides when a model deployment must be rolled back, and does it.",
    )
    parser.add_argument("--version", action="version", version=f"rollguard {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for name, command in COMMANDS.items():
        command.configure(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def _problem_lines(message: str) -> str:
    """An input error as printed: each line's whitespace tidied, the lines after the first (the
    problems listed under a file's name) indented under it."""
    lines = [one_line(line) for line in message.splitlines()]
    return "\n  ".join(line for line in lines if line)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command].run(args)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    except InputError as err:
        print(f"error: {_problem_lines(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, PlotUnavailableError, commands.CommandError) as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {one_line(where + str(err.strerror or err))}", file=sys.stderr)
        return EXIT_FOUND
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
