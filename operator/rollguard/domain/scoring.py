"""Impact: category severities, the impact score, and money at risk.

category severity = clamp(Σ sensitivity x signal severity, 0, 1)
impact score      = Σ weight x category severity / Σ weight   (zero weights contribute nothing)

When every signal is Inconclusive the score is NaN (unknown), never 0: an unknown score can
neither fire nor clear anything. Money at risk is stated when the ModelDeployment's
``business.revenuePerHour`` is set and the policy has a category named ``revenue``:
per hour = revenue severity x revenuePerHour.

Callers: ``engine.step`` (vectorised), ``evidence`` and ``decide`` (one member), and the
simulator. PURE. Sums run in a fixed sequential order (no matrix product, whose BLAS blocking
may depend on the batch size), so a member's score does not depend on its batch.
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


def impact_score(model: ImpactModel, categories: F64, unknown: Bool) -> F64:
    """(..., C) category severities -> (...) weighted mean in [0, 1]; NaN where ``unknown``."""
    acc = np.zeros(categories.shape[:-1], dtype=np.float64)
    term = np.empty_like(acc)
    for c in range(categories.shape[-1]):
        np.multiply(model.weights[c], categories[..., c], out=term)
        acc += term
    acc /= model.total_weight
    np.clip(acc, 0.0, 1.0, out=acc)
    acc[unknown] = np.nan
    return acc


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
