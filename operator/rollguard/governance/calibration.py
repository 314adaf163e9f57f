"""Calibration: how well the journal's expectations matched what was observed, and whether
each policy's margins look too tight or too loose. The input of a calibration meeting.

From the journal (``rollguard.governance.journal``):
- expected vs observed impact of executed decisions: the loss each expected to avoid against
  the loss it did avoid (impact-hours), and the score expected after it against the score
  observed; mean errors with bootstrap confidence intervals;
- from reviews: false rollbacks (rolled back, the review found no real regression) and missed
  regressions (not rolled back, the review found it real), as rates with Wilson intervals;
- per policy, a reading of its margins: too tight when the false-rollback rate is above its
  target with confidence, too loose when the missed-regression rate is; and per signal, how
  far beyond its limit the false alarms and the real regressions were, which says how much a
  margin could move before it stops a false alarm or misses a real regression (``margins``).

Intervals come from ``intervals``. PURE and deterministic (the bootstrap uses a fixed seed):
the same journal renders the same report. Called by ``rollguard calibrate`` (``Targets``,
``readings``, ``impact_points``, ``render``) and by ``plot``, which draws the readings."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rollguard.core.times import format_time
from rollguard.governance.intervals import Interval, bootstrap_mean, wilson
from rollguard.governance.journal import Entry, Journal
from rollguard.governance.margins import SignalReading, signal_readings

MIN_FOR_INTERVAL = 3


@dataclass(frozen=True)
class Targets:
    """What the calibration meeting agreed to tolerate."""

    false_rollback_rate: float = 0.1
    missed_regression_rate: float = 0.1
    min_reviews: int = 5


# --- per policy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyReading:
    policy: str
    decisions: int
    rolled_back: int
    reviewed: int
    reviewed_rollbacks: int
    false_rollbacks: int
    real_regressions: int
    missed: int
    false_rate: Interval | None
    missed_rate: Interval | None
    verdict: str
    signals: list[SignalReading]


def _verdict(
    reviewed: int, false_rate: Interval | None, missed_rate: Interval | None, targets: Targets
) -> str:
    if reviewed < targets.min_reviews:
        return f"too few reviews to judge ({reviewed} of the {targets.min_reviews} needed)"
    tight = false_rate is not None and false_rate.low > targets.false_rollback_rate
    loose = missed_rate is not None and missed_rate.low > targets.missed_regression_rate
    if tight and loose:
        return (
            "both too tight and too loose: the signals do not separate real regressions "
            "from noise; change the signals, not only the margins"
        )
    if tight:
        return (
            f"too tight: false rollbacks above the {targets.false_rollback_rate:.0%} target "
            "with 95% confidence; widen the margins (see the signals)"
        )
    if loose:
        return (
            f"too loose: missed regressions above the {targets.missed_regression_rate:.0%} "
            "target with 95% confidence; narrow the margins (see the signals)"
        )
    return "consistent with the targets"


def read_policy(policy: str, entries: Sequence[Entry], targets: Targets) -> PolicyReading:
    reviewed = [e for e in entries if e.review is not None]
    reviewed_rollbacks = [e for e in reviewed if e.rolled_back]
    false = [e for e in reviewed_rollbacks if e.false_rollback]
    real = [e for e in reviewed if e.review is not None and e.review.regression == "Real"]
    missed = [e for e in real if e.missed_regression]
    false_rate = wilson(len(false), len(reviewed_rollbacks))
    missed_rate = wilson(len(missed), len(real))
    return PolicyReading(
        policy=policy,
        decisions=len(entries),
        rolled_back=sum(1 for e in entries if e.rolled_back),
        reviewed=len(reviewed),
        reviewed_rollbacks=len(reviewed_rollbacks),
        false_rollbacks=len(false),
        real_regressions=len(real),
        missed=len(missed),
        false_rate=false_rate,
        missed_rate=missed_rate,
        verdict=_verdict(len(reviewed), false_rate, missed_rate, targets),
        signals=signal_readings(entries),
    )


def readings(entries: Sequence[Entry], targets: Targets) -> list[PolicyReading]:
    """One reading per policy, in name order."""
    by_policy: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_policy[e.policy].append(e)
    return [read_policy(name, by_policy[name], targets) for name in sorted(by_policy)]


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactPoint:
    decision: str
    policy: str
    expected: float
    observed: float


def impact_points(entries: Sequence[Entry]) -> list[ImpactPoint]:
    """Executed decisions with both an expected and an observed avoided loss."""
    points = []
    for e in entries:
        outcome = e.status.outcome
        if outcome is None:
            continue
        exp, obs = outcome.expected_loss_avoided, outcome.observed_loss_avoided
        if exp is None or obs is None or not (math.isfinite(exp) and math.isfinite(obs)):
            continue
        points.append(ImpactPoint(f"{e.namespace}/{e.name}", e.policy, exp, obs))
    return points


def scatter(points: Sequence[ImpactPoint], *, width: int = 40, height: int = 12) -> list[str]:
    """Expected (across) against observed (up) as text; ``.`` marks observed = expected."""
    if not points:
        return ["(no executed decisions with an observed outcome)"]
    top = max(*(p.expected for p in points), *(p.observed for p in points), 1e-9)
    low = min(*(p.expected for p in points), *(p.observed for p in points), 0.0)
    span = top - low
    grid = [[" "] * (width + 1) for _ in range(height + 1)]
    for c in range(width + 1):
        r = height - round(c / width * height)
        grid[r][c] = "."
    for p in points:
        c = round((p.expected - low) / span * width)
        r = height - round((p.observed - low) / span * height)
        grid[r][c] = "o" if grid[r][c] in (" ", ".") else "O"
    lines = []
    for r, cells in enumerate(grid):
        value = top - r / height * span
        label = f"{value:8.3g} |" if r % 3 == 0 else "         |"
        lines.append(label + "".join(cells).rstrip())
    lines.append("         +" + "-" * (width + 1))
    lines.append(f"          {low:<8.3g}{' ' * (width - 16)}{top:>8.3g}  expected")
    lines.append("          (observed up, expected across, impact-hours; O = several)")
    return lines


def _rate(k: int, n: int, interval: Interval | None) -> str:
    return f"{k} of {n}: {interval.text(percent=True)}" if interval else f"{k} of {n}"


def render(
    journal: Journal,
    *,
    source: str,
    targets: Targets = Targets(),
    image: str | None = None,
) -> str:
    """The calibration report as Markdown."""
    entries = journal.entries
    lines = [f"# Calibration report: {source}", ""]
    if not entries:
        return "\n".join([*lines, "No decisions in the journal.", ""])
    first = format_time(min(e.spec.evaluated_at for e in entries))
    last = format_time(max(e.spec.evaluated_at for e in entries))
    reviewed = [e for e in entries if e.review is not None]
    final = [e for e in entries if e.final]
    lines += [
        f"{len(entries)} decision(s) from {first} to {last}; {len(final)} ended, "
        f"{sum(1 for e in entries if e.rolled_back)} rolled back, {len(reviewed)} reviewed "
        f"({len(final) - len([e for e in reviewed if e.final])} ended decision(s) still "
        "wait for a review).",
        f"Targets: false rollbacks ≤ {targets.false_rollback_rate:.0%}, missed regressions ≤ "
        f"{targets.missed_regression_rate:.0%}, at least {targets.min_reviews} reviews per "
        "policy before judging its margins.",
        "",
        "## Expected against observed impact",
        "",
    ]
    points = impact_points(entries)
    if points:
        errors = bootstrap_mean([p.observed - p.expected for p in points])
        if len(points) < MIN_FOR_INTERVAL:
            bias = (
                f"Mean error (observed - expected) over {len(points)} decision(s): "
                f"{errors.value:+.3f}; too few decisions for an interval or a reading of bias "
                f"(at least {MIN_FOR_INTERVAL})."
            )
        else:
            bias = (
                f"Mean error (observed - expected) over {len(points)} decision(s): "
                f"{errors.text()}. "
                + (
                    "Positive: decisions avoided more than they expected (expectations are "
                    "conservative)."
                    if errors.low > 0
                    else "Negative: decisions avoided less than they expected (expectations "
                    "are optimistic)."
                    if errors.high < 0
                    else "The interval contains 0: no systematic bias shown."
                )
            )
        lines += [
            "Loss avoided, in impact-hours (impact score x hours until the approval timeout): "
            "what each executed decision expected when it was made, and what its validation "
            "observed.",
            "",
            "| decision | policy | expected | observed | observed - expected |",
            "|---|---|---|---|---|",
            *(
                f"| {p.decision} | {p.policy} | {p.expected:.3f} | {p.observed:.3f} | "
                f"{p.observed - p.expected:+.3f} |"
                for p in points
            ),
            "",
            bias,
        ]
        after = [
            e.status.outcome.observed_score_after
            for e in entries
            if e.status.outcome and e.status.outcome.observed_score_after is not None
        ]
        if after:
            mean_after = bootstrap_mean(after)
            shown = (
                mean_after.text(signed=False)
                if len(after) >= MIN_FOR_INTERVAL
                else f"{mean_after.value:.3f}"
            )
            lines.append(
                f"Score after the action (expected 0): mean {shown} over {len(after)} decision(s)."
            )
        lines += ["", "```text", *scatter(points), "```", ""]
    else:
        lines += ["No executed decision has an observed outcome yet.", ""]
    if image:
        lines += [f"![expected against observed; review rates per policy]({image})", ""]
    lines += [
        "## Reviews",
        "",
        "| verdict | Real | FalseAlarm | Unclear |",
        "|---|---|---|---|",
    ]
    for verdict in ("Achieved", "Partial", "NotAchieved"):
        counts = [
            sum(
                1
                for e in reviewed
                if e.review is not None
                and e.review.verdict == verdict
                and e.review.regression == finding
            )
            for finding in ("Real", "FalseAlarm", "Unclear")
        ]
        lines.append(f"| {verdict} | " + " | ".join(str(c) for c in counts) + " |")
    rolled = [e for e in reviewed if e.rolled_back]
    real = [e for e in reviewed if e.review is not None and e.review.regression == "Real"]
    false_n = sum(1 for e in rolled if e.false_rollback)
    missed_n = sum(1 for e in real if e.missed_regression)
    lines += [
        "",
        f"- False rollbacks (rolled back, no real regression): "
        f"{_rate(false_n, len(rolled), wilson(false_n, len(rolled)))} reviewed rollbacks.",
        f"- Missed regressions (real, not rolled back): "
        f"{_rate(missed_n, len(real), wilson(missed_n, len(real)))} reviewed real regressions.",
        "",
        "## Policies",
        "",
    ]
    for reading in readings(entries, targets):
        lines += [
            f"### {reading.policy}",
            "",
            f"{reading.decisions} decision(s), {reading.rolled_back} rolled back, "
            f"{reading.reviewed} reviewed.",
            f"- False rollbacks: {_rate(reading.false_rollbacks, reading.reviewed_rollbacks, reading.false_rate)}",
            f"- Missed regressions: {_rate(reading.missed, reading.real_regressions, reading.missed_rate)}",
            f"- Margins: **{reading.verdict}**.",
            "",
        ]
        if reading.signals:
            lines += [
                "| signal | margin | beyond the limit: false alarms | caught regressions "
                "| missed regressions | reading |",
                "|---|---|---|---|---|---|",
            ]
            for s in reading.signals:
                lines.append(
                    f"| {s.name} | {s.margin} | {_values(s.false_alarm_excess)} | "
                    f"{_values(s.caught_excess)} | {_values(s.missed_excess)} | {s.advice()} |"
                )
            lines.append("")
    if journal.skipped:
        lines += ["## Not read", "", *(f"- {s}" for s in journal.skipped), ""]
    return "\n".join(lines)


def _values(xs: Sequence[float]) -> str:
    if len(xs) <= 4:
        return ", ".join(f"{x:+.4g}" for x in sorted(xs)) if xs else "-"
    return f"{len(xs)}: {min(xs):+.4g} to {max(xs):+.4g}, median {float(np.median(xs)):+.4g}"
