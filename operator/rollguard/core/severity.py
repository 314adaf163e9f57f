"""Signal severity: how far the benefit-of-the-doubt bound of a signal lies beyond its limit.

limit = objective ± margin width (tolerated zone). For an objective ``max`` the LOWER
confidence bound is compared with the limit, for ``min`` the UPPER bound, so noise alone does
not escalate. Severity is 0 at or inside the limit and rises linearly to 1 at ``critical``,
clamped to [0, 1]. An Inconclusive signal has severity 0, unless the policy says
``onMissingData: Breach``: then it has severity 1 and counts as a breach, not as Inconclusive.
Warm-up is not missing data: a signal whose series is younger than the window (``warmup``
states the rule) stays Inconclusive whatever onMissingData says.

Callers: ``engine.step`` (vectorised) and ``evidence`` (``explain`` for one signal). PURE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollguard.api.policy import EffectivePolicy
from rollguard.api.signal import EffectiveSignal

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]


def signal_limit(signal: EffectiveSignal) -> float:
    """Objective plus the margin width, on the tolerated side."""
    width = signal.margin.width(signal.objective.value)
    if signal.objective.direction == "max":
        return signal.objective.value + width
    return signal.objective.value - width


@dataclass(frozen=True)
class SignalLimits:
    """The per-signal constants of a policy as arrays over S, in policy order."""

    limit: F64
    critical: F64
    is_max: Bool
    breach_on_missing: Bool

    @classmethod
    def of(cls, policy: EffectivePolicy) -> SignalLimits:
        signals = policy.signals
        return cls(
            limit=np.array([signal_limit(s) for s in signals], dtype=np.float64),
            critical=np.array([s.critical for s in signals], dtype=np.float64),
            is_max=np.array([s.objective.direction == "max" for s in signals], dtype=np.bool_),
            breach_on_missing=np.array(
                [s.on_missing_data == "Breach" for s in signals], dtype=np.bool_
            ),
        )


def severities(
    limits: SignalLimits, lower: F64, upper: F64, missing: Bool, warming: Bool | None = None
) -> tuple[F64, Bool]:
    """Severity per (..., signal) and which signals remain Inconclusive.

    ``missing`` marks signals without a conclusive measurement (too few samples or a failed
    query); their bounds are ignored. A NaN bound counts as missing too. ``warming`` marks
    signals warming up: missing, but never a breach under onMissingData Breach.
    """
    # The resolver guarantees critical lies strictly beyond the limit, so both spans are > 0.
    # Only the bound that matters is computed, one signal at a time.
    measured = np.empty(lower.shape, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        for s in range(lower.shape[-1]):
            limit, critical = limits.limit[s], limits.critical[s]
            if limits.is_max[s]:
                np.subtract(lower[..., s], limit, out=measured[..., s])
                measured[..., s] /= critical - limit
            else:
                np.subtract(limit, upper[..., s], out=measured[..., s])
                measured[..., s] /= limit - critical
        np.clip(measured, 0.0, 1.0, out=measured)
    # A bound that is NaN although enough samples exist (float overflow on absurd values) is
    # broken data, and broken data is missing data.
    missing = missing | np.isnan(measured)
    if not missing.any():
        return measured, missing
    breach = missing & limits.breach_on_missing
    if warming is not None:
        breach &= ~warming
    severity: F64 = np.where(missing, np.where(breach, 1.0, 0.0), measured)
    return severity, missing & ~breach


def _num(x: float) -> str:
    return f"{x:.4g}"


def describe_limit(signal: EffectiveSignal) -> str:
    """``limit 0.011 (objective max 0.01 + margin 10%)``."""
    margin = signal.margin
    width = (
        f"{margin.relative * 100:.4g}%" if margin.relative is not None else _num(margin.width(0))
    )
    sign = "+" if signal.objective.direction == "max" else "-"
    return (
        f"limit {_num(signal_limit(signal))} (objective {signal.objective.direction} "
        f"{_num(signal.objective.value)} {sign} margin {width})"
    )


def explain(
    signal: EffectiveSignal,
    *,
    value: float,
    lower: float,
    upper: float,
    count: int,
    min_samples: int,
    confidence: float,
    severity: float,
    newest: bool = False,
    warming_up: bool = False,
) -> str:
    """How one signal's severity was reached, with the numbers, for a decision or a status.

    ``value``, ``lower`` and ``upper`` are NaN when the signal was not conclusive. ``newest``:
    the numbers are those of the window's newest samples (evaluation.recentSamples).
    ``warming_up``: too few samples because the series is younger than the window.
    """
    name = signal.name
    if count < max(min_samples, 1):
        why = (
            "no samples in the window"
            if count == 0
            else f"{count} samples < minSamples {min_samples}"
        )
        if warming_up:
            despite = (
                " (warm-up, not missing data: onMissingData Breach does not apply)"
                if signal.on_missing_data == "Breach"
                else ""
            )
            return (
                f"{name}: Inconclusive, warming up: {why}, the series is younger than the "
                f"window{despite}; severity 0"
            )
        if signal.on_missing_data == "Breach":
            return f"{name}: {why}; severity 1 (onMissingData Breach)"
        return f"{name}: Inconclusive, {why}; severity 0"
    limit = signal_limit(signal)
    is_max = signal.objective.direction == "max"
    bound_name, bound = ("lower", lower) if is_max else ("upper", upper)
    beyond = bound > limit if is_max else bound < limit
    of = f"mean of the newest {count} samples {_num(value)}" if newest else f"mean {_num(value)}"
    n = "" if newest else f", n={count}"
    measured = f"{bound_name} bound {_num(bound)} ({of}{n}, {confidence * 100:.4g}% CI)"
    if not beyond:
        rel = "≤" if is_max else "≥"
        return f"{name}: {measured} {rel} {describe_limit(signal)}; severity 0"
    rel = ">" if is_max else "<"
    crit = signal.critical
    span = (
        f"({_num(bound)}-{_num(limit)})/({_num(crit)}-{_num(limit)})"
        if is_max
        else f"({_num(limit)}-{_num(bound)})/({_num(limit)}-{_num(crit)})"
    )
    raw = (bound - limit) / (crit - limit) if is_max else (limit - bound) / (limit - crit)
    capped = " (capped)" if raw > 1.0 else ""
    return (
        f"{name}: {measured} {rel} {describe_limit(signal)}; "
        f"severity {span} = {severity:.2f}{capped}"
    )
