"""What a window's statistics are made of, and how they are finished: per element the sample
count, the mean and the sum of squared deviations (``Sums``), turned into the sample standard
deviation and the Student-t interval of the mean (``WindowStats``).

PURE. Only for the statistics modules: ``stats`` (one window per member) and ``sample_rows``
(many windows over time-major rows), which compute the sums in the same order (``stats``
says why) and finish them here, so both reach the same bits. The t quantile is computed in
Python floats per sample count and looked up (``student_t``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from rollguard.core.statistics.student_t import t_two_sided

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class WindowStats:
    """Per (batch, signal) statistics of the samples in the window.

    mean, lower and upper are NaN where the signal is not conclusive (fewer than minSamples);
    std is NaN with fewer than two samples.
    """

    count: I64
    mean: F64
    std: F64
    lower: F64
    upper: F64
    conclusive: Bool


@dataclass(frozen=True)
class Sums:
    """What an interval is computed from: per element the sample count, the mean and the sum of
    squared deviations; ``every`` is the count of every element when they all share one."""

    count: I64
    mean: F64
    squares: F64
    every: int | None = None

    def finish(self, min_samples: int, confidence: float) -> WindowStats:
        """The statistics at ``confidence``; conclusive from ``min_samples`` samples."""
        return _finish(
            self.count,
            self.mean,
            self.squares,
            min_samples=min_samples,
            confidence=confidence,
            every=self.every,
        )


@lru_cache(maxsize=64)
def _count_tables(confidence: float, max_count: int) -> tuple[F64, F64]:
    """Indexed by sample count: the half-width multiplier (df = count - 1; 0 for count <= 1)
    and sqrt(count) (correctly rounded, so the same bits as computing it per element)."""
    table = np.zeros(max_count + 1, dtype=np.float64)
    for count in range(2, max_count + 1):
        table[count] = t_two_sided(confidence, count - 1)
    roots = np.sqrt(np.maximum(np.arange(max_count + 1), 1).astype(np.float64))
    table.flags.writeable = False
    roots.flags.writeable = False
    return table, roots


def prepare(values: F64, mask: Bool) -> tuple[F64, Bool]:
    """Samples ready to sum: 0.0 where invalid (masked or not finite), -0.0 as 0.0, and
    where they are valid."""
    valid: Bool = np.asarray(mask, dtype=np.bool_) & np.isfinite(values)
    x: F64 = np.where(valid, values, 0.0)
    x += 0.0  # -0.0 becomes 0.0, so the sums do not depend on signed zeros
    return x, valid


def check_newest(newest: int) -> None:
    if newest < 1:
        raise ValueError(f"newest must be at least 1, got {newest}")


def _finish(
    count: I64,
    mean: F64,
    squares: F64,
    *,
    min_samples: int,
    confidence: float,
    every: int | None = None,
) -> WindowStats:
    """Standard deviation and interval from the count, mean and sum of squared deviations.
    ``every``: the count of every window, when they all hold the same number of samples
    (then the per-count look-ups and selections are done once)."""
    conclusive: Bool
    if every is not None:
        multiplier, roots = _count_tables(confidence, every)
        if every > 1:
            std = squares / float(every - 1)
            np.sqrt(std, out=std)
            half = multiplier[every] * std
            half /= roots[every]
        else:
            std, half = np.full(count.shape, np.nan), np.zeros(count.shape)
        if every >= max(min_samples, 1):
            lower = mean - half
            upper = np.add(mean, half, out=half)
            return WindowStats(count, mean, std, lower, upper, np.ones(count.shape, np.bool_))
        unknown = [np.full(count.shape, np.nan) for _ in range(3)]
        none = np.zeros(count.shape, np.bool_)
        return WindowStats(count, unknown[0], std, unknown[1], unknown[2], none)
    std = np.divide(squares, count - 1, out=np.full(count.shape, np.nan), where=count > 1)
    np.sqrt(std, out=std)
    multiplier, roots = _count_tables(confidence, int(count.max()) if count.size else 0)
    half = multiplier[count] * std
    half /= roots[count]
    half = np.where(count > 1, half, 0.0)
    conclusive = count >= max(min_samples, 1)
    nan = np.float64(np.nan)
    return WindowStats(
        count=count,
        mean=np.where(conclusive, mean, nan),
        std=std,
        lower=np.where(conclusive, mean - half, nan),
        upper=np.where(conclusive, mean + half, nan),
        conclusive=conclusive,
    )
