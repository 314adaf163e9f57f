"""The confidence intervals the calibration report states: Wilson score intervals for rates
(false rollbacks, missed regressions) and percentile-bootstrap intervals for mean errors.

PURE and deterministic: the bootstrap (``rollguard.core.statistics.bootstrap``) draws from a fixed seed,
so the same journal gives the same intervals. Called by ``calibration``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rollguard.core.statistics import bootstrap

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def text(self, *, percent: bool = False, signed: bool = True) -> str:
        if percent:
            return f"{self.value:.0%} (95% CI {self.low:.0%} to {self.high:.0%})"
        f = "+.3f" if signed else ".3f"
        return f"{self.value:{f}} (95% CI {self.low:{f}} to {self.high:{f}})"


def wilson(successes: int, trials: int) -> Interval | None:
    """The Wilson score interval (95%) of a proportion; None without trials."""
    if trials <= 0:
        return None
    p = successes / trials
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_mean(values: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> Interval:
    """The mean and its 95% percentile-bootstrap interval (a single value has no spread)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap of no values")
    counts = bootstrap.resample_counts(np.random.default_rng(seed), x.size, resamples)
    return Interval(*bootstrap.mean(x, counts, 0.95))
