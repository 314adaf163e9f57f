"""How far beyond its limit each signal was in reviewed decisions, and what that says about
its margin: the per-signal part of the calibration report.

A false alarm that breached by x would have stayed inside a margin wider by x; a missed
regression that stayed inside by y would have breached under a margin narrower by y.
``SignalReading.advice`` says so in words, with what the change would cost on the other kind.

PURE. Called by ``calibration``, whose policy readings carry these.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rollguard.api.decision import SignalEvidence
from rollguard.governance.journal import Entry


def limit_of(signal: SignalEvidence) -> float:
    width = signal.margin.width(signal.objective.value)
    if signal.objective.direction == "max":
        return signal.objective.value + width
    return signal.objective.value - width


def excess(signal: SignalEvidence) -> float | None:
    """How far the signal's benefit-of-the-doubt bound lay beyond its limit, in its own unit
    (positive: it breached; negative: it stayed inside by that much)."""
    if signal.objective.direction == "max":
        bound = signal.lower if signal.lower is not None else signal.value
        return None if bound is None else bound - limit_of(signal)
    bound = signal.upper if signal.upper is not None else signal.value
    return None if bound is None else limit_of(signal) - bound


@dataclass(frozen=True)
class SignalReading:
    """How far beyond its limit a signal was, in reviewed decisions of three kinds."""

    name: str
    margin: str
    false_alarm_excess: list[float]  # false rollbacks, where it breached
    caught_excess: list[float]  # real regressions rolled back, where it breached
    missed_excess: list[float]  # real regressions not rolled back

    def advice(self) -> str:
        parts: list[str] = []
        if self.false_alarm_excess:
            widen = max(self.false_alarm_excess)
            kept = sum(1 for x in self.caught_excess if x > widen)
            parts.append(
                f"widening the margin by {widen:.4g} would have kept all "
                f"{len(self.false_alarm_excess)} false alarm(s) inside the limit"
                + (
                    f"; {kept} of {len(self.caught_excess)} caught regression(s) would still "
                    "breach on this signal"
                    if self.caught_excess
                    else ""
                )
            )
        short = [x for x in self.missed_excess if x <= 0]
        if short:
            parts.append(
                f"{len(short)} missed regression(s) stayed inside the limit on this signal; "
                f"narrowing the margin by {-min(short):.4g} would have made all of them breach"
            )
        return "; ".join(parts) or "no evidence to move it"


def _margin_text(signal: SignalEvidence) -> str:
    m = signal.margin
    return f"{m.absolute:g} absolute" if m.absolute is not None else f"{m.relative:g} relative"


def signal_readings(entries: Sequence[Entry]) -> list[SignalReading]:
    """One reading per signal named in the reviewed decisions, in name order."""
    kinds: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    margins: dict[str, str] = {}
    for e in entries:
        review = e.review
        if review is None or review.regression == "Unclear":
            continue
        for s in e.spec.signals:
            x = excess(s)
            if x is None:
                continue
            margins[s.name] = _margin_text(s)
            if e.false_rollback and x > 0:
                kinds[s.name]["false"].append(x)
            elif review.regression == "Real" and e.rolled_back and x > 0:
                kinds[s.name]["caught"].append(x)
            elif e.missed_regression:
                kinds[s.name]["missed"].append(x)
    return [
        SignalReading(
            name,
            margins[name],
            kinds[name]["false"],
            kinds[name]["caught"],
            kinds[name]["missed"],
        )
        for name in sorted(margins)
    ]
