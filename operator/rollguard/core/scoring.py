"""Impact: category severities, the impact score, and money at risk.

category severity = clamp(Σ sensitivity x signal severity, 0, 1)
impact score      = Σ weight x category severity / Σ weight   (zero weights contribute nothing)
                    or 1 when a key signal's severity reached 1 (Keptn's "key SLI")

When every signal is Inconclusive the score is NaN (unknown), never 0: an unknown score can
neither fire nor clear anything. A key signal that is Inconclusive forces nothing; one whose
missing data counts as a breach (``onMissingData: Breach``) has severity 1 and does. Money at
risk is stated when the ModelDeployment's ``business.revenuePerHour`` is set and the policy has
a category named ``revenue``: per hour = revenue severity x revenuePerHour.

Callers: ``engine._judge`` (vectorised, for the operator, replay and both simulators),
``evidence`` and ``decide`` (one member). PURE. Sums run in a fixed sequential order (no
matrix product, whose BLAS blocking may depend on the batch size), so a member's score does
not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollguard.api.decision import MoneyAtRisk
from rollguard.api.modeldeployment import Business
from rollguard.api.policy import EffectivePolicy

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]

REVENUE_CATEGORY = "revenue"
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True)
class ImpactModel:
    """The impact section of a policy as arrays: C categories over S signals."""

    names: tuple[str, ...]
    weights: F64  # (C,)
    sensitivity: F64  # (C, S)
    total_weight: float
    key: Bool  # (S,) key signals: severity 1 forces the score to 1

    @classmethod
    def of(cls, policy: EffectivePolicy) -> ImpactModel:
        index = {s.name: i for i, s in enumerate(policy.signals)}
        categories = policy.impact.categories
        sensitivity = np.zeros((len(categories), len(index)), dtype=np.float64)
        for c, category in enumerate(categories):
            for name, value in category.signals.items():
                sensitivity[c, index[name]] = value
        weights = [c.weight for c in categories]
        total = 0.0
        for w in weights:
            total += w
        return cls(
            names=tuple(c.name for c in categories),
            weights=np.array(weights, dtype=np.float64),
            sensitivity=sensitivity,
            total_weight=total,
            key=np.array([s.key for s in policy.signals], dtype=np.bool_),
        )

    @property
    def revenue_index(self) -> int | None:
        """Index of the ``revenue`` category, if the policy has one."""
        return self.names.index(REVENUE_CATEGORY) if REVENUE_CATEGORY in self.names else None


def category_severity(model: ImpactModel, severity: F64) -> F64:
    """(..., S) signal severities in [0, 1] -> (..., C) category severities in [0, 1]."""
    # Accumulated category-major, one long vectorised operation per term; returned as a view.
    # A zero sensitivity adds exactly +0.0 to a sum that starts at +0.0, so it is skipped.
    acc = np.zeros((len(model.names), *severity.shape[:-1]), dtype=np.float64)
    term = np.empty(severity.shape[:-1], dtype=np.float64)
    for c, row in enumerate(model.sensitivity.tolist()):
        for s, sensitivity in enumerate(row):
            if sensitivity != 0.0:
                np.multiply(severity[..., s], sensitivity, out=term)
                acc[c] += term
    np.clip(acc, 0.0, 1.0, out=acc)
    out: F64 = np.moveaxis(acc, 0, -1)
    return out


def _at_full_severity(severity: F64, inconclusive: Bool) -> Bool:
    # Severity is clamped to [0, 1], so >= 1 is exactly 1. An Inconclusive signal has severity 0
    # anyway; the test says that it never forces, whatever the severity array holds.
    out: Bool = ~inconclusive & (severity >= 1.0)
    return out


def key_breaches(model: ImpactModel, severity: F64, inconclusive: Bool) -> Bool:
    """(..., S): the key signals whose severity reached 1 on a conclusive measurement (or on
    missing data under ``onMissingData: Breach``, which is not Inconclusive)."""
    out: Bool = model.key & _at_full_severity(severity, inconclusive)
    return out


def key_forced(model: ImpactModel, severity: F64, inconclusive: Bool) -> Bool | None:
    """(...) members whose score a key signal forces to 1; None when the policy has no key
    signal. One vectorised OR per key signal: a reduction over the short signal axis would run
    one tiny loop per member."""
    keys = np.flatnonzero(model.key).tolist()
    if not keys:
        return None
    forced: Bool = np.zeros(severity.shape[:-1], dtype=np.bool_)
    for s in keys:
        forced |= _at_full_severity(severity[..., s], inconclusive[..., s])
    return forced


def impact_score(
    model: ImpactModel, categories: F64, unknown: Bool, forced: Bool | None = None
) -> F64:
    """(..., C) category severities -> (...) weighted mean in [0, 1]; exactly 1 where
    ``forced`` (``key_forced``) and NaN where ``unknown``. The two never meet: a key signal
    forces only when measured, so not every signal is Inconclusive."""
    acc = np.zeros(categories.shape[:-1], dtype=np.float64)
    term = np.empty_like(acc)
    for c in range(categories.shape[-1]):
        np.multiply(model.weights[c], categories[..., c], out=term)
        acc += term
    acc /= model.total_weight
    np.clip(acc, 0.0, 1.0, out=acc)
    if forced is not None:
        acc[forced] = 1.0
    acc[unknown] = np.nan
    return acc


def weighted_score(model: ImpactModel, categories: Sequence[float]) -> float:
    """One member's weighted mean of category severities, as ``impact_score`` computes it, but
    without any key signal forcing it: what the weights alone say."""
    row = np.array([categories], dtype=np.float64)
    return float(impact_score(model, row, np.zeros(1, dtype=np.bool_))[0])


def money_per_hour(model: ImpactModel, categories: F64, revenue_per_hour: float) -> F64 | None:
    """(B,) revenue at risk per hour, or None without a ``revenue`` category."""
    index = model.revenue_index
    if index is None:
        return None
    out: F64 = categories[:, index] * revenue_per_hour
    return out


def money_at_risk(
    model: ImpactModel, categories: Sequence[float], business: Business | None
) -> MoneyAtRisk | None:
    """Money at risk for one member, when the business figures and categories allow."""
    index = model.revenue_index
    if business is None or business.revenue_per_hour is None or index is None:
        return None
    return MoneyAtRisk(
        per_hour=float(categories[index]) * business.revenue_per_hour,
        currency=business.currency or DEFAULT_CURRENCY,
        revenue_per_hour=business.revenue_per_hour,
    )
