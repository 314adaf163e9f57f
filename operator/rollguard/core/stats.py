"""Window statistics: count, mean, sample standard deviation and a Student-t interval of the mean.

Called by ``engine.evaluate`` on one window per batch member (``window_stats``, the last axis
holds the samples), by ``engine.evaluate_rows`` on many windows over time-major rows at once
(``rows_stats``: the simulator) and by tests. PURE. ``began_inside`` and
``rows_began_inside`` read where a window's samples lie for warm-up (``warmup``).

The interval is a noise filter, not an exact probability statement: samples of a PromQL
``rate()`` over overlapping ranges are autocorrelated, so the true uncertainty of the mean is
wider than the i.i.d. formula says. What matters is that a handful of noisy samples cannot
push the benefit-of-the-doubt bound past a limit, and that the filter tightens as evidence
accumulates.

Determinism: a replay recomputes one deployment's statistics from its recorded samples, in a
batch of one with no padding, and must reach the operator's numbers bit for bit. NumPy's
``sum`` uses pairwise summation whose grouping depends on the row length, so trailing padding
would change the rounding. Sums here are sequential, oldest sample first: either a ``cumsum``
along each window (few members) or one vectorised add per sample of the window across all
members and windows (many members); both add in the same order, adding a padded 0.0 changes
nothing, and an element's result never depends on the others. The t quantile is computed in
Python floats per sample count and looked up (``student_t``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from rollguard.core.student_t import t_cdf, t_quantile, t_two_sided

__all__ = [
    "SampleRows",
    "WindowStats",
    "began_inside",
    "newest_rows_stats",
    "newest_window_stats",
    "rows_began_inside",
    "rows_stats",
    "t_cdf",
    "t_quantile",
    "t_two_sided",
    "window_stats",
]

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
class _Sums:
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


@dataclass(frozen=True)
class SampleRows:
    """Samples laid out time first (row t holds sample t of every member and signal), prepared
    once so that many windows over them can be evaluated at once (``rows_stats``).

    x[t, ...] is the sample where it is valid (mask set and finite; -0.0 stored as 0.0) and
    0.0 elsewhere; valid marks the valid samples. The simulator fills rows in place.
    """

    x: F64  # (T, ...)
    valid: Bool  # (T, ...)

    @classmethod
    def missing(cls, shape: tuple[int, ...]) -> SampleRows:
        """Rows without a single valid sample, to be filled with ``write`` or ``accept``."""
        return cls(x=np.zeros(shape, dtype=np.float64), valid=np.zeros(shape, dtype=np.bool_))

    @classmethod
    def of(cls, values: F64, mask: Bool) -> SampleRows:
        """Rows from time-major ``values`` and ``mask`` (T, ...)."""
        return cls(*_prepare(values, mask))

    def write(self, values: F64, mask: Bool, *, at: tuple[slice | int | I64, ...]) -> None:
        """Store samples (broadcast as needed) at index ``at``."""
        x, valid = _prepare(values, mask)
        self.x[at] = x
        self.valid[at] = valid

    def accept(self, mask: Bool, *, at: tuple[slice | int, ...]) -> None:
        """Turn the raw values already placed in ``x[at]`` into samples: keep those valid
        under ``mask`` (and finite), like ``write`` without a copy. ``at``: basic indices."""
        x, valid = self.x[at], self.valid[at]
        np.isfinite(x, out=valid)
        valid &= mask
        if not valid.all():
            np.copyto(x, 0.0, where=~valid)
        x += 0.0  # -0.0 becomes 0.0, as in _prepare

    def take(self, start: int, stop: int, at: tuple[int | I64 | slice, ...]) -> SampleRows:
        """Rows ``start:stop`` of the members at index ``at`` (over the axes after time)."""
        rows = (slice(start, stop), *at)
        return SampleRows(x=self.x[rows], valid=self.valid[rows])


def _prepare(values: F64, mask: Bool) -> tuple[F64, Bool]:
    valid: Bool = np.asarray(mask, dtype=np.bool_) & np.isfinite(values)
    x: F64 = np.where(valid, values, 0.0)
    x += 0.0  # -0.0 becomes 0.0, so the sums do not depend on signed zeros
    return x, valid


def _row_indices(starts: I64, window: int) -> list[slice | I64]:
    """Row n of every window, for each n: slices (views) when the windows are evenly spaced."""
    if starts.size == 0:
        return [starts + n for n in range(window)]
    if starts.size == 1:
        first = int(starts[0])
        return [slice(first + n, first + n + 1) for n in range(window)]
    gaps = np.diff(starts)
    if gaps[0] > 0 and (gaps == gaps[0]).all():
        first, step, span = int(starts[0]), int(gaps[0]), int(starts[-1] - starts[0]) + 1
        return [slice(first + n, first + n + span, step) for n in range(window)]
    return [starts + n for n in range(window)]


def rows_stats(
    rows: SampleRows, starts: I64, window: int, *, min_samples: int, confidence: float
) -> WindowStats:
    """Statistics of the windows of ``window`` rows starting at each of ``starts`` (J,): every
    field is (J, ...). Member by member the same bits as ``window_stats`` on that window."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _rows_stats(
            rows, np.asarray(starts, dtype=np.int64), window, min_samples, confidence
        )


def _rows_stats(
    rows: SampleRows, starts: I64, window: int, min_samples: int, confidence: float
) -> WindowStats:
    return _rows_sums(rows, starts, window).finish(min_samples, confidence)


def _rows_sums(rows: SampleRows, starts: I64, window: int) -> _Sums:
    shape = (starts.size, *rows.x.shape[1:])
    index = _row_indices(starts, window)
    clean = window > 0 and _all_valid(rows, starts, window)
    # Sums run sequentially over the window, one row at a time: see the module docstring.
    count = np.full(shape, window, dtype=np.int64) if clean else _rows_count(rows, index, shape)
    total = np.zeros(shape)
    if window == 1:
        total[...] = rows.x[index[0]]
    elif window > 1:
        np.add(rows.x[index[0]], rows.x[index[1]], out=total)
        for ix in index[2:]:
            np.add(total, rows.x[ix], out=total)
    if clean:
        mean: F64 = np.divide(total, float(window), out=total)
    else:
        mean = np.divide(total, count, out=np.full(shape, np.nan), where=count > 0)
    squares = np.zeros(shape)
    dev = np.empty(shape)
    for n, ix in enumerate(index):
        term = squares if n == 0 else dev
        np.subtract(rows.x[ix], mean, out=term)
        if not clean:
            np.copyto(term, 0.0, where=~rows.valid[ix])
        np.multiply(term, term, out=term)
        if n:
            np.add(squares, dev, out=squares)
    return _Sums(count, mean, squares, every=window if clean else None)


def window_stats(values: F64, mask: Bool, *, min_samples: int, confidence: float) -> WindowStats:
    """Statistics over the last axis of ``values`` where ``mask`` (and the value) is valid.

    A signal is conclusive with at least ``min_samples`` (and at least one) samples. A single
    sample, allowed with minSamples 1, gives an interval that is the value itself.
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.bool_)
    # Absurdly large values may overflow to inf/NaN; severity treats a NaN bound as missing.
    with np.errstate(over="ignore", invalid="ignore"):
        if _is_wide(values):
            # Wide batches: one vectorised add per sample of the window.
            return _one_window(values, mask, _rows_sums).finish(min_samples, confidence)
        return _narrow_stats(values, mask, min_samples=min_samples, confidence=confidence)


def _is_wide(values: F64) -> bool:
    return int(values.size) >= _WIDE * max(int(values.shape[-1]), 1)


def _one_window(values: F64, mask: Bool, sums_of: Callable[[SampleRows, I64, int], _Sums]) -> _Sums:
    """The sums of the last axis of ``values`` computed row by row, as one window of rows."""
    rows = SampleRows.of(np.moveaxis(values, -1, 0), np.moveaxis(mask, -1, 0))
    sums = sums_of(rows, np.zeros(1, dtype=np.int64), values.shape[-1])
    return _Sums(sums.count[0], sums.mean[0], sums.squares[0], every=sums.every)


_WIDE = 1024  # members x signals from which one add per window sample beats a cumsum per row


def _narrow_stats(values: F64, mask: Bool, *, min_samples: int, confidence: float) -> WindowStats:
    # Few members: a cumsum along each window costs fewer calls than one add per sample. It
    # adds sequentially, in the same order as _rows_stats, so both give the same bits (tested).
    x, valid = _prepare(values, mask)
    return _narrow_sums(x, valid).finish(min_samples, confidence)


def _narrow_sums(x: F64, valid: Bool) -> _Sums:
    count: I64 = valid.sum(axis=-1, dtype=np.int64)
    total = _last_of_cumsum(x)
    mean: F64 = np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)
    dev: F64 = np.where(valid, x - mean[..., None], 0.0)
    squares = _last_of_cumsum(dev * dev)
    return _Sums(count, mean, squares)


def newest_window_stats(
    values: F64, mask: Bool, *, newest: int, min_samples: int, confidence: float
) -> WindowStats:
    """``window_stats`` of only the newest ``newest`` valid samples of each window: the samples
    after them in the window count, the gaps do not. With ``newest`` or fewer valid samples the
    same bits as ``window_stats``; the same bits in every layout (tested)."""
    _check_newest(newest)
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.bool_)
    with np.errstate(over="ignore", invalid="ignore"):
        if _is_wide(values):

            def sums_of(rows: SampleRows, starts: I64, window: int) -> _Sums:
                return _newest_rows_sums(rows, starts, window, newest)

            return _one_window(values, mask, sums_of).finish(min_samples, confidence)
        x, valid = _prepare(values, mask)
        # Rank from the newest end: 1 for the newest valid sample, 2 for the one before, ...
        rank = np.cumsum(valid[..., ::-1], axis=-1, dtype=np.int64)[..., ::-1]
        picked: Bool = valid & (rank <= newest)
        return _narrow_sums(np.where(picked, x, 0.0), picked).finish(min_samples, confidence)


def newest_rows_stats(
    rows: SampleRows,
    starts: I64,
    window: int,
    *,
    newest: int,
    min_samples: int,
    confidence: float,
) -> WindowStats:
    """``rows_stats`` of only the newest ``newest`` valid samples of each window; member by
    member the same bits as ``newest_window_stats`` on that window."""
    _check_newest(newest)
    with np.errstate(over="ignore", invalid="ignore"):
        sums = _newest_rows_sums(rows, np.asarray(starts, dtype=np.int64), window, newest)
        return sums.finish(min_samples, confidence)


def _newest_rows_sums(rows: SampleRows, starts: I64, window: int, newest: int) -> _Sums:
    if window <= newest:
        return _rows_sums(rows, starts, window)
    if _all_valid(rows, starts, window):
        # Every sample valid: the newest are the last rows of each window.
        return _rows_sums(rows, starts + (window - newest), newest)
    index = _row_indices(starts, window)
    count = _rows_count(rows, index, (starts.size, *rows.x.shape[1:]))

    def picked() -> Iterator[tuple[Bool, int | slice | I64]]:
        # A valid sample is among the newest when fewer than ``newest`` valid ones follow it:
        # its rank from the newest end is the window's count minus the valid samples before it.
        before = np.zeros(count.shape, dtype=np.int64)
        for ix in index:
            valid = rows.valid[ix]
            yield valid & (count - before <= newest), ix
            before += valid

    # The same sequential order as _narrow_sums on the picked samples (a 0.0 elsewhere).
    taken = np.zeros(count.shape, dtype=np.int64)
    total = np.zeros(count.shape)
    for take, ix in picked():
        taken += take
        total += np.where(take, rows.x[ix], 0.0)
    mean: F64 = np.divide(total, taken, out=np.full(count.shape, np.nan), where=taken > 0)
    squares = np.zeros(count.shape)
    for take, ix in picked():
        dev = np.where(take, rows.x[ix] - mean, 0.0)
        squares += dev * dev
    return _Sums(taken, mean, squares)


def began_inside(valid: Bool) -> Bool:
    """(...) from (..., N) samples laid out on the window's time grid, oldest first: whether
    the series began inside the window: its samples fill every slot from some slot after the
    window's first to its last (``warmup`` states the rule). ``rows_began_inside`` on one
    window."""
    valid = np.asarray(valid, dtype=np.bool_)
    if valid.shape[-1] == 0:
        return np.zeros(valid.shape[:-1], dtype=np.bool_)
    index: list[slice | I64] = [slice(n, n + 1) for n in range(valid.shape[-1])]
    began: Bool = _began(np.moveaxis(valid, -1, 0), index)[0]
    return began


def rows_began_inside(rows: SampleRows, starts: I64, window: int) -> Bool:
    """(J, ...): ``began_inside`` of each window of ``window`` rows starting at each of
    ``starts``; rows are on the time grid (row t one step after row t - 1)."""
    starts = np.asarray(starts, dtype=np.int64)
    if window < 1 or starts.size == 0 or _all_valid(rows, starts, window):
        return np.zeros((starts.size, *rows.valid.shape[1:]), dtype=np.bool_)
    return _began(rows.valid, _row_indices(starts, window))


def _began(valid: Bool, index: list[slice | I64]) -> Bool:
    """Row by row, oldest first: a sample in some slot after the first, none missing since."""
    seen = valid[index[0]].copy()
    broken = np.zeros(seen.shape, dtype=np.bool_)
    for ix in index[1:]:
        now = valid[ix]
        broken |= seen & ~now
        seen |= now
    began: Bool = seen & ~broken & ~valid[index[0]]
    return began


def _rows_count(rows: SampleRows, index: list[slice | I64], shape: tuple[int, ...]) -> I64:
    count: I64 = np.zeros(shape, dtype=np.int64)
    for ix in index:
        count += rows.valid[ix]
    return count


def _all_valid(rows: SampleRows, starts: I64, window: int) -> bool:
    """Every sample of every window valid (the common case): nothing to count or mask."""
    return starts.size > 0 and bool(
        rows.valid[int(starts.min()) : int(starts.max()) + window].all()
    )


def _check_newest(newest: int) -> None:
    if newest < 1:
        raise ValueError(f"newest must be at least 1, got {newest}")


def _last_of_cumsum(x: F64) -> F64:
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1], dtype=np.float64)
    out: F64 = np.cumsum(x, axis=-1)[..., -1]
    return out


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
