"""Samples laid out time first (``SampleRows``), and the statistics of many windows over them
at once: ``rows_stats`` and ``newest_rows_stats``, member by member the same bits as
``stats.window_stats`` and ``stats.newest_window_stats`` on each window.

PURE. Called by ``engine.evaluate_rows`` (the simulator evaluates every instant of a run in
one call), by ``simulation.seed_series`` (which fills the rows in place), by ``stats`` (its
wide batches are one window of rows) and by ``warmup`` (``rows_began_inside``). Sums run
sequentially, one row at a time, oldest first: the module docstring of ``stats`` says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollguard.core.statistics.window_sums import Sums, WindowStats, check_newest, prepare

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


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
        return cls(*prepare(values, mask))

    def write(self, values: F64, mask: Bool, *, at: tuple[slice | int | I64, ...]) -> None:
        """Store samples (broadcast as needed) at index ``at``."""
        x, valid = prepare(values, mask)
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


def row_indices(starts: I64, window: int) -> list[slice | I64]:
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
    return rows_sums(rows, starts, window).finish(min_samples, confidence)


def rows_sums(rows: SampleRows, starts: I64, window: int) -> Sums:
    """The sums of the windows of ``window`` rows starting at each of ``starts`` (also
    ``stats``' wide batches, as one window)."""
    shape = (starts.size, *rows.x.shape[1:])
    index = row_indices(starts, window)
    clean = window > 0 and all_valid(rows, starts, window)
    # Sums run sequentially over the window, one row at a time: see ``stats``.
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
    return Sums(count, mean, squares, every=window if clean else None)


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
    check_newest(newest)
    with np.errstate(over="ignore", invalid="ignore"):
        sums = newest_rows_sums(rows, np.asarray(starts, dtype=np.int64), window, newest)
        return sums.finish(min_samples, confidence)


def newest_rows_sums(rows: SampleRows, starts: I64, window: int, newest: int) -> Sums:
    """``rows_sums`` of only the newest ``newest`` valid samples of each window."""
    if window <= newest:
        return rows_sums(rows, starts, window)
    if all_valid(rows, starts, window):
        # Every sample valid: the newest are the last rows of each window.
        return rows_sums(rows, starts + (window - newest), newest)
    index = row_indices(starts, window)
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
    return Sums(taken, mean, squares)


def _rows_count(rows: SampleRows, index: list[slice | I64], shape: tuple[int, ...]) -> I64:
    count: I64 = np.zeros(shape, dtype=np.int64)
    for ix in index:
        count += rows.valid[ix]
    return count


def all_valid(rows: SampleRows, starts: I64, window: int) -> bool:
    """Every sample of every window valid (the common case): nothing to count or mask."""
    return starts.size > 0 and bool(
        rows.valid[int(starts.min()) : int(starts.max()) + window].all()
    )
