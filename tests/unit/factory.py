"""Builders shared by the decision-core tests: small policies and measurements whose numbers
are easy to compute by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.core.engine import Measurements
from rollguard.core.tiers import resolve

T0 = 1_700_000_000.0

# error_rate: objective max 0.01, absolute margin 0 (limit 0.01), critical 0.11, so a constant
# value v gives severity (v - 0.01) / 0.1 and, with one category, score = severity.
ONE_SIGNAL: dict[str, Any] = {
    "riskTier": "high",
    "signals": [
        {
            "name": "error_rate",
            "query": 'sum(rate(errors{namespace="$namespace",deployment="$deployment"}[1m]))',
            "objective": {"max": 0.01},
            "margin": {"absolute": 0.0},
            "critical": 0.11,
        }
    ],
    "impact": {"categories": [{"name": "revenue", "weight": 1, "signals": {"error_rate": 1}}]},
}


def spec_of(base: dict[str, Any] | None = None, **fields: Any) -> RollbackPolicySpec:
    """A policy spec from ``base`` (ONE_SIGNAL by default) with top-level fields replaced."""
    doc = dict(ONE_SIGNAL if base is None else base)
    doc.update(fields)
    return RollbackPolicySpec.model_validate(doc)


def policy_of(base: dict[str, Any] | None = None, **fields: Any) -> EffectivePolicy:
    return resolve(spec_of(base, **fields))


def value_for_score(score: float) -> float:
    """The constant error_rate that gives ``score`` under ONE_SIGNAL."""
    return 0.01 + 0.1 * score


def constant(values: list[list[float]] | NDArray[np.float64], n: int = 20) -> Measurements:
    """Every member b and signal s sampled n times at exactly values[b][s] (std 0, so both
    bounds equal the value). NaN means no samples."""
    v = np.asarray(values, dtype=np.float64)
    filled = np.repeat(v[:, :, None], n, axis=2)
    mask = ~np.isnan(filled)
    return Measurements(
        values=np.where(mask, filled, 0.0), mask=mask, available=np.ones(v.shape, dtype=np.bool_)
    )


def scores(*per_member: float, n: int = 20) -> Measurements:
    """One ONE_SIGNAL member per score given (NaN: no samples)."""
    return constant([[value_for_score(s)] for s in per_member], n=n)


def bits(a: NDArray[np.generic]) -> bytes:
    """The exact bytes of an array, for bit-for-bit comparisons."""
    return np.ascontiguousarray(a).tobytes()


def awkward_series(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> NDArray:
    """Values with NaN, infinities, signed zeros and, with a large scale, overflowing sums."""
    values = rng.normal(0.2, 1.0, shape) * scale
    values[rng.random(shape) < 0.04] = np.nan
    values[rng.random(shape) < 0.02] = np.inf
    values[rng.random(shape) < 0.02] = -np.inf
    values[rng.random(shape) < 0.04] = -0.0
    return values
