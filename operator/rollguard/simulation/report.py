"""Reports of ``rollguard simulate``: JSON, Markdown, and the ``--check`` comparison.

PURE except ``load_baseline`` (reads a file; keyword-only). Renders strings; the CLI writes
them.

JSON keeps the models' field order and rounds every float to 6 significant digits, so the
same run gives byte-identical files and golden files stay stable across platforms.

The ``--check`` rule: a new result is worse than a baseline when, for any scenario in both,
* the false-rollback rate is above the baseline's confidence-interval upper bound, or
* the missed-regression rate is above the baseline's confidence-interval upper bound, or
* the median detection time is more than 20% above the baseline's (or nothing is detected
  any more where the baseline detected something), or
* a baseline scenario is missing from the new run.
The upper bound (not the point estimate) is the bar, so seed noise alone does not fail a
check; use the same seeds and seed count as the baseline to compare like with like.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rollguard.files.loading import InputError, format_validation_error
from rollguard.simulation.metrics import Estimate, Metrics, SimulationResult
from rollguard.simulation.recorded import RecordedResult

SLACK = 0.2
SIGNIFICANT_DIGITS = 6


def round_floats(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """Every float in a JSON-like structure rounded to ``digits`` significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [round_floats(v, digits) for v in value]
    return value


def to_json(model: BaseModel) -> str:
    """A result model as stable, rounded JSON (camelCase keys in model order)."""
    data = round_floats(model.model_dump(mode="json", by_alias=True))
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if abs(x) >= 10**digits:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def _est(e: Estimate, digits: int = 3) -> str:
    if e.value is None:
        return "-"
    if e.low is None or e.high is None:
        return _num(e.value, digits)
    return f"{_num(e.value, digits)} [{_num(e.low, digits)}, {_num(e.high, digits)}]"


_ROWS: tuple[tuple[str, str], ...] = (
    ("detection time p50 (s)", "detection_seconds.p50"),
    ("detection time p90 (s)", "detection_seconds.p90"),
    ("detection time mean (s)", "detection_seconds.mean"),
    ("false rollbacks per run", "false_rollback_rate"),
    ("missed-regression rate", "missed_regression_rate"),
    ("impact avoided (score·min per run)", "impact_avoided"),
    ("impact avoided (fraction)", "impact_avoided_fraction"),
    ("actions per run", "actions_per_run"),
    ("escalations per run", "escalations_per_run"),
)


def _get(m: Metrics, path: str) -> Estimate:
    obj: Any = m
    for part in path.split("."):
        obj = getattr(obj, part)
    assert isinstance(obj, Estimate)
    return obj


def _metrics_table(m: Metrics, confidence: float) -> list[str]:
    pct = f"{confidence:.0%}"
    lines = [f"| metric | value [{pct} CI] |", "|---|---|"]
    lines.append(f"| runs (seeds) | {m.seeds} |")
    lines.append(f"| regression episodes (detected) | {m.episodes} ({m.detected}) |")
    lines += [f"| {label} | {_est(_get(m, path))} |" for label, path in _ROWS]
    return lines


DEFINITIONS = """\
- **Episode**: a regression in force, from its start (or GitOps re-applying it) until it ends by
  itself, a rollback cures it, or the run ends. Episodes shorter than the policy window that
  were never detected are not counted.
- **Detection time**: first Rollback or Pause fired during the episode (a decision made, blocked
  or not) minus the episode start.
- **False rollbacks per run**: executed Rollbacks (automatic or approved) decided while no
  regression is in force.
- **Missed-regression rate**: episodes in which no Rollback or Pause fired, over all episodes.
- **Impact avoided**: sum of (score without acting - score with acting) x interval, same series.
- **Actions**: executed Rollbacks and Pauses, as the operator runs them: one open decision at a
  time, a Pause only during a rollout, a Rollback only to an approved older revision, actions
  outside autoApprove after a human's approval (the scenario's approvalDelay) or onTimeout.
- **Escalations**: each time humans were needed. A decision blocked by cooldown waits for a
  human's approval; a fire beyond the action budget or a failed rollback validation stops
  automatic actions for the rest of the run.
- Intervals: percentile bootstrap over seeds (resampled within each scenario)."""


def simulation_markdown(result: SimulationResult) -> str:
    """The Markdown report: a summary table, then a table per scenario and overall."""
    pct = f"{result.confidence:.0%}"
    p = result.policy
    out = [
        "# rollguard simulate",
        "",
        f"Policy: tier `{p.risk_tier}`, mode `{p.mode}`, `{p.spec_hash[:19]}…` · "
        f"{result.seeds} seeds from {result.seed} · {pct} confidence intervals from "
        f"{result.resamples} bootstrap resamples.",
        "",
        "| scenario | detection p50 (s) | false rollbacks / run | missed | impact avoided "
        "(score·min / run) |",
        "|---|---|---|---|---|",
    ]
    rows = [(s.name, s.metrics) for s in result.scenarios] + [("**overall**", result.overall)]
    for name, m in rows:
        out.append(
            f"| {name} | {_est(m.detection_seconds.p50)} | {_est(m.false_rollback_rate)} | "
            f"{_est(m.missed_regression_rate)} | {_est(m.impact_avoided)} |"
        )
    for s in result.scenarios:
        out += ["", f"## {s.name}", ""]
        if s.description:
            out += [s.description, ""]
        out += _metrics_table(s.metrics, result.confidence)
        out += ["", f"Representative seed (plotted with `--png`): {s.representative_seed}."]
    out += ["", "## overall", "", *_metrics_table(result.overall, result.confidence)]
    out += ["", "## Definitions", "", DEFINITIONS]
    return "\n".join(out) + "\n"


def recorded_text(result: RecordedResult) -> str:
    """A plain-text listing of what the operator would have done on recorded data: every
    decision and escalation in time order, as in the JSON."""
    human = (
        "nobody approves"
        if result.approve_after_seconds is None
        else f"a human approves {result.approve_after_seconds:g}s after a decision needs one"
    )
    lines = [
        f"{result.evaluations} evaluations from {result.start} to {result.end} "
        f"(grid step {result.step_seconds:g}s; {human})"
    ]
    lines += [f"warning: {w}" for w in result.warnings]
    if not result.actions and not result.escalations:
        lines.append("No decision: the policy would not have fired.")
    rows: list[tuple[str, int, str]] = []
    for a in result.actions:
        what = a.action if a.action == a.wanted else f"{a.action} ({a.wanted} wanted)"
        approval = "needs approval" if a.requires_approval else "automatic"
        if a.blocked:
            approval += f" ({a.blocked})"
        done = f"executed {a.executed_at}" if a.executed else "not executed"
        flag = "  FALSE ROLLBACK" if a.false_rollback else ""
        told = ", ".join(f"{t.receiver} ({t.event})" for t in a.notifications)
        rows.append(
            (
                a.time,
                0,
                f"{a.time}  {what:<8} score {_num(a.score)}, {approval}, {done}, "
                f"ends {a.phase}{flag}" + (f"; tells {told}" if told else ""),
            )
        )
    for e in result.escalations:
        rows.append(
            (e.time, 1, f"{e.time}  escalated ({e.reason}): {e.action} score {_num(e.score)}")
        )
    lines += [text for _, _, text in sorted(rows, key=lambda r: (r[0], r[1]))]
    if result.regression_start is not None:
        delay = result.detection_delay_seconds
        lines.append(
            f"Regression from {result.regression_start}: "
            + ("not detected" if delay is None else f"detected after {delay:g}s")
            + f"; false rollbacks: {result.false_rollbacks}"
        )
    return "\n".join(lines) + "\n"


def load_baseline(*, path: Path) -> SimulationResult:
    """A JSON report written by an earlier ``rollguard simulate``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path.name}: not a JSON report: {err}") from err
    try:
        return SimulationResult.model_validate(doc)
    except ValidationError as err:
        raise InputError(format_validation_error(path.name, err)) from err


def check(result: SimulationResult, baseline: SimulationResult) -> list[str]:
    """Human-readable ways in which ``result`` is worse than ``baseline`` (empty: not worse)."""
    found: list[str] = []
    new = {s.name: s.metrics for s in result.scenarios}
    for scenario in baseline.scenarios:
        name, old = scenario.name, scenario.metrics
        if name not in new:
            found.append(f"{name}: scenario missing from the new run")
            continue
        m = new[name]
        for label, now, before in (
            ("false-rollback rate", m.false_rollback_rate, old.false_rollback_rate),
            ("missed-regression rate", m.missed_regression_rate, old.missed_regression_rate),
        ):
            bar = before.high if before.high is not None else before.value
            if now.value is not None and bar is not None and now.value > bar:
                found.append(
                    f"{name}: {label} rose to {_num(now.value)} "
                    f"(baseline {_num(before.value)}, CI upper bound {_num(bar)})"
                )
        now_p50, old_p50 = m.detection_seconds.p50.value, old.detection_seconds.p50.value
        if old_p50 is not None and now_p50 is None:
            found.append(f"{name}: nothing detected any more (baseline median {_num(old_p50)}s)")
        elif old_p50 is not None and now_p50 is not None and now_p50 > old_p50 * (1 + SLACK):
            found.append(
                f"{name}: median detection time rose to {_num(now_p50)}s "
                f"(baseline {_num(old_p50)}s, more than +{SLACK:.0%})"
            )
    return found
