"""Window statistics: count, mean, sample standard deviation and a Student-t interval of the
mean, over one window per batch member (the last axis holds the samples): ``window_stats``,
and ``newest_window_stats`` over only the newest samples of each window.

Called by ``engine.evaluate`` and by tests. PURE. The same statistics of many windows over
time-major rows at once (the simulator, ``engine.evaluate_rows``) are ``sample_rows``'; both
finish their sums in ``window_sums``. Where a window's samples lie (warm-up) is ``warmup``'s.

The interval is a noise filter, not an exact probability statement: samples of a PromQL
``rate()`` over overlapping ranges are autocorrelated, so the true uncertainty of the mean is
wider than the i.i.d. formula says. What matters is that a handful of noisy samples cannot
push the benefit-of-the-doubt bound past a limit, and that the filter tightens as evidence
accumulates.

Determinism: a replay recomputes one deployment's statistics from its recorded samples, in a
batch of one with no padding, and must reach the operator's numbers bit for bit. NumPy's
``sum`` uses pairwise summation whose grouping depends on the row length, so trailing padding
would change the rounding. Sums are sequential, oldest sample first: either a ``cumsum``
along each window (few members, here) or one vectorised add per sample of the window across
all members and windows (many members, ``sample_rows``); both add in the same order, adding a
padded 0.0 changes nothing, and an element's result never depends on the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from rollguard.core.statistics.sample_rows import SampleRows, newest_rows_sums, rows_sums
from rollguard.core.statistics.window_sums import Sums, WindowStats, check_newest, prepare

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


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
            return _one_window(values, mask, rows_sums).finish(min_samples, confidence)
        return _narrow_stats(values, mask, min_samples=min_samples, confidence=confidence)


def _is_wide(values: F64) -> bool:
    return int(values.size) >= _WIDE * max(int(values.shape[-1]), 1)


def _one_window(values: F64, mask: Bool, sums_of: Callable[[SampleRows, I64, int], Sums]) -> Sums:
    """The sums of the last axis of ``values`` computed row by row, as one window of rows."""
    rows = SampleRows.of(np.moveaxis(values, -1, 0), np.moveaxis(mask, -1, 0))
    sums = sums_of(rows, np.zeros(1, dtype=np.int64), values.shape[-1])
    return Sums(sums.count[0], sums.mean[0], sums.squares[0], every=sums.every)


_WIDE = 1024  # members x signals from which one add per window sample beats a cumsum per row


def _narrow_stats(values: F64, mask: Bool, *, min_samples: int, confidence: float) -> WindowStats:
    # Few members: a cumsum along each window costs fewer calls than one add per sample. It
    # adds sequentially, in the same order as ``rows_sums``, so both give the same bits (tested).
    x, valid = prepare(values, mask)
    return _narrow_sums(x, valid).finish(min_samples, confidence)


def _narrow_sums(x: F64, valid: Bool) -> Sums:
    count: I64 = valid.sum(axis=-1, dtype=np.int64)
    total = _last_of_cumsum(x)
    mean: F64 = np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)
    dev: F64 = np.where(valid, x - mean[..., None], 0.0)
    squares = _last_of_cumsum(dev * dev)
    return Sums(count, mean, squares)


def newest_window_stats(
    values: F64, mask: Bool, *, newest: int, min_samples: int, confidence: float
) -> WindowStats:
    """``window_stats`` of only the newest ``newest`` valid samples of each window: the samples
    after them in the window count, the gaps do not. With ``newest`` or fewer valid samples the
    same bits as ``window_stats``; the same bits in every layout (tested)."""
    check_newest(newest)
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.bool_)
    with np.errstate(over="ignore", invalid="ignore"):
        if _is_wide(values):

            def sums_of(rows: SampleRows, starts: I64, window: int) -> Sums:
                return newest_rows_sums(rows, starts, window, newest)

            return _one_window(values, mask, sums_of).finish(min_samples, confidence)
        x, valid = prepare(values, mask)
        # Rank from the newest end: 1 for the newest valid sample, 2 for the one before, ...
        rank = np.cumsum(valid[..., ::-1], axis=-1, dtype=np.int64)[..., ::-1]
        picked: Bool = valid & (rank <= newest)
        return _narrow_sums(np.where(picked, x, 0.0), picked).finish(min_samples, confidence)


def _last_of_cumsum(x: F64) -> F64:
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1], dtype=np.float64)
    out: F64 = np.cumsum(x, axis=-1)[..., -1]
    return out
