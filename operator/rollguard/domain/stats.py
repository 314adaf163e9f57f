"""Window statistics: count, mean, sample standard deviation and a Student-t interval of the mean.

Called by ``engine.step`` (vectorised over batch x signals x samples) and by tests. PURE.

The interval is a noise filter, not an exact probability statement: samples of a PromQL
``rate()`` over overlapping ranges are autocorrelated, so the true uncertainty of the mean is
wider than the i.i.d. formula says. What matters is that a handful of noisy samples cannot
push the benefit-of-the-doubt bound past a limit, and that the filter tightens as evidence
accumulates.

Determinism: a replay recomputes one deployment's statistics from its recorded samples, in a
batch of one with no padding, and must reach the operator's numbers bit for bit. NumPy's
``sum`` uses pairwise summation whose grouping depends on the row length, so trailing padding
would change the rounding. Sums here are sequential (``cumsum``), where adding a padded 0.0
changes nothing, and the t quantile is computed in Python floats per sample count and looked
up, so no vectorised transcendental function is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

_MAX_DF = 1_000_000  # the exact CDF below costs O(df); more samples than this never occur
_NORMAL = NormalDist()


def _t_abs_cdf(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer df, exact finite series (Abramowitz & Stegun
    26.7.3 and 26.7.4)."""
    if t <= 0.0:
        return 0.0
    cos2 = df / (df + t * t)
    sin = t / math.sqrt(df + t * t)
    if df % 2 == 1:
        theta = math.atan(t / math.sqrt(df))
        if df == 1:
            return 2.0 * theta / math.pi
        cos = math.sqrt(cos2)
        term = cos
        total = cos
        for k in range(3, df - 1, 2):
            term *= cos2 * (k - 1) / k
            total += term
        return 2.0 / math.pi * (theta + sin * total)
    term = 1.0
    total = 1.0
    for k in range(2, df - 1, 2):
        term *= cos2 * (k - 1) / k
        total += term
    return sin * total


def _t_pdf(t: float, df: int) -> float:
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with an integer number of degrees of freedom >= 1."""
    _check_df(df)
    half = 0.5 * _t_abs_cdf(abs(t), df)
    return 0.5 + half if t >= 0 else 0.5 - half


def _hill_start(two_tail: float, df: int) -> float:
    """Hill (1970), CACM Algorithm 396: the upper quantile for two-tail probability
    ``two_tail``; exact for df 1 and 2, a close start for Newton's method otherwise."""
    p, n = two_tail, float(df)
    if df == 1:
        p *= math.pi / 2
        return math.cos(p) / math.sin(p)
    if df == 2:
        return math.sqrt(2.0 / (p * (2.0 - p)) - 2.0)
    a = 1.0 / (n - 0.5)
    b = 48.0 / (a * a)
    c = ((20700.0 * a / b - 98.0) * a - 16.0) * a + 96.36
    d = ((94.5 / (b + c) - 3.0) / b + 1.0) * math.sqrt(a * math.pi / 2) * n
    x = d * p
    y = x ** (2.0 / n)
    if y > 0.05 + a:
        # Far from the tail: an asymptotic expansion around the normal quantile.
        x = _NORMAL.inv_cdf(0.5 * p)
        y = x * x
        if df < 5:
            c += 0.3 * (n - 4.5) * (x + 0.6)
        c = (((0.05 * d * x - 5.0) * x - 7.0) * x - 2.0) * x + b + c
        y = (((((0.4 * y + 6.3) * y + 36.0) * y + 94.5) / c - y - 3.0) / b + 1.0) * x
        y = math.expm1(a * y * y)
    else:
        y = (
            (1.0 / (((n + 6.0) / (n * y) - 0.089 * d - 0.822) * (n + 2.0) * 3.0) + 0.5 / (n + 4.0))
            * y
            - 1.0
        ) * (n + 1.0) / (n + 2.0) + 1.0 / y
    return math.sqrt(n * y)


def _check_df(df: int) -> None:
    if not 1 <= df <= _MAX_DF:
        raise ValueError(f"degrees of freedom must be an integer in [1, {_MAX_DF}], got {df}")


@lru_cache(maxsize=4096)
def t_two_sided(confidence: float, df: int) -> float:
    """The t such that P(|T| <= t) = confidence: the half-width multiplier of a two-sided
    interval. Hill's start, then Newton's method on the exact CDF, kept inside a bracket."""
    _check_df(df)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    t = _hill_start(1.0 - confidence, df)
    if df <= 2:
        return t
    lo, hi = 0.0, max(2.0 * t, 1.0)
    while _t_abs_cdf(hi, df) < confidence:
        lo, hi = hi, 2.0 * hi
    for _ in range(100):
        gap = _t_abs_cdf(t, df) - confidence
        if gap > 0:
            hi = min(hi, t)
        else:
            lo = max(lo, t)
        nxt = t - gap / (2.0 * _t_pdf(t, df))
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - t) <= 1e-15 * t:
            return nxt
        t = nxt
    return t


def t_quantile(p: float, df: int) -> float:
    """The inverse CDF of Student's t with integer df: the t with P(T <= t) = p."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must lie in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p > 0.5:
        return t_two_sided(2.0 * p - 1.0, df)
    return -t_two_sided(1.0 - 2.0 * p, df)


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
    0.0 elsewhere; valid marks the valid samples; dirty[t] is True when row t may hold an
    invalid sample (False guarantees it holds none, which lets whole blocks skip masking).
    The simulator rewrites rows in place after an action with ``write``.
    """

    x: F64  # (T, ...)
    valid: Bool  # (T, ...)
    dirty: Bool  # (T,)

    @classmethod
    def of(cls, values: F64, mask: Bool) -> SampleRows:
        """Rows from time-major ``values`` and ``mask`` (T, ...)."""
        x, valid = _prepare(values, mask)
        return cls(x=x, valid=valid, dirty=_dirty(valid))

    def write(self, values: F64, mask: Bool, *, at: tuple[slice | int | I64, ...]) -> None:
        """Store samples at index ``at``, whose first entry is a slice of rows (in place)."""
        rows = at[0]
        if not isinstance(rows, slice):
            raise TypeError("the first index of a write must be a slice of rows")
        x, valid = _prepare(values, mask)
        self.x[at] = x
        self.valid[at] = valid
        self.dirty[rows] |= _dirty(valid)

    def take(self, start: int, stop: int, at: tuple[int | I64 | slice, ...]) -> SampleRows:
        """Rows ``start:stop`` of the members at index ``at`` (over the axes after time)."""
        return SampleRows(
            x=self.x[(slice(start, stop), *at)],
            valid=self.valid[(slice(start, stop), *at)],
            dirty=self.dirty[start:stop],
        )


def _prepare(values: F64, mask: Bool) -> tuple[F64, Bool]:
    valid: Bool = np.asarray(mask, dtype=np.bool_) & np.isfinite(values)
    x: F64 = np.where(valid, values, 0.0)
    x += 0.0  # -0.0 becomes 0.0, so the sums do not depend on signed zeros
    return x, valid


def _dirty(valid: Bool) -> Bool:
    out: Bool = (
        ~valid.reshape(valid.shape[0], -1).all(axis=1)
        if valid.size
        else np.ones(valid.shape[0], dtype=np.bool_)
    )
    return out


def _row_index(starts: I64, n: int) -> slice | I64:
    """Row ``n`` of every window: a slice when the windows are evenly spaced (a view)."""
    first = int(starts[0])
    if starts.size == 1:
        return slice(first + n, first + n + 1)
    gaps = np.diff(starts)
    if gaps[0] > 0 and (gaps == gaps[0]).all():
        step = int(gaps[0])
        return slice(first + n, first + n + step * (starts.size - 1) + 1, step)
    out: I64 = starts + n
    return out


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
    shape = (starts.size, *rows.x.shape[1:])
    index = [_row_index(starts, n) for n in range(window)]
    clean = window > 0 and not rows.dirty[int(starts.min()) : int(starts.max()) + window].any()
    # Sums run sequentially over the window, one row at a time: see the module docstring.
    if window == 0:
        count = np.zeros(shape, dtype=np.int64)
    elif clean:
        count = np.full(shape, window, dtype=np.int64)
    else:
        count = rows.valid[index[0]].astype(np.int64)
        for ix in index[1:]:
            count += rows.valid[ix]
    total = rows.x[index[0]].copy() if window else np.zeros(shape)
    for ix in index[1:]:
        np.add(total, rows.x[ix], out=total)
    mean: F64 = np.divide(total, count, out=np.full(shape, np.nan), where=count > 0)
    squares = np.zeros(shape)
    dev = np.empty(shape)
    for n, ix in enumerate(index):
        np.subtract(rows.x[ix], mean, out=dev)
        if not clean:
            np.copyto(dev, 0.0, where=~rows.valid[ix])
        if n == 0:
            np.multiply(dev, dev, out=squares)
        else:
            np.multiply(dev, dev, out=dev)
            np.add(squares, dev, out=squares)
    return _finish(count, mean, squares, min_samples=min_samples, confidence=confidence)


def window_stats(values: F64, mask: Bool, *, min_samples: int, confidence: float) -> WindowStats:
    """Statistics over the last axis of ``values`` where ``mask`` (and the value) is valid.

    A signal is conclusive with at least ``min_samples`` (and at least one) samples. A single
    sample, allowed with minSamples 1, gives an interval that is the value itself.
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.bool_)
    # Absurdly large values may overflow to inf/NaN; severity treats a NaN bound as missing.
    with np.errstate(over="ignore", invalid="ignore"):
        if values.size >= _WIDE * max(values.shape[-1], 1):
            # Wide batches: one vectorised add per sample of the window.
            rows = SampleRows.of(np.moveaxis(values, -1, 0), np.moveaxis(mask, -1, 0))
            stats = _rows_stats(
                rows, np.zeros(1, dtype=np.int64), values.shape[-1], min_samples, confidence
            )
            return WindowStats(*(getattr(stats, f)[0] for f in _FIELDS))
        return _narrow_stats(values, mask, min_samples=min_samples, confidence=confidence)


_WIDE = 1024  # members x signals from which one add per window sample beats a cumsum per row
_FIELDS = ("count", "mean", "std", "lower", "upper", "conclusive")


def _narrow_stats(values: F64, mask: Bool, *, min_samples: int, confidence: float) -> WindowStats:
    # Few rows: a cumsum per row costs fewer calls. cumsum adds sequentially, exactly like
    # the row-by-row adds of _rows_stats, so both give the same bits (tested).
    x, valid = _prepare(values, mask)
    count: I64 = valid.sum(axis=-1, dtype=np.int64)
    total = _last_of_cumsum(x)
    mean: F64 = np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)
    dev: F64 = np.where(valid, x - mean[..., None], 0.0)
    squares = _last_of_cumsum(dev * dev)
    return _finish(count, mean, squares, min_samples=min_samples, confidence=confidence)


def _last_of_cumsum(x: F64) -> F64:
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1], dtype=np.float64)
    out: F64 = np.cumsum(x, axis=-1)[..., -1]
    return out


def _finish(
    count: I64, mean: F64, squares: F64, *, min_samples: int, confidence: float
) -> WindowStats:
    """Standard deviation and interval from the count, mean and sum of squared deviations."""
    std: F64 = np.divide(squares, count - 1, out=np.full(count.shape, np.nan), where=count > 1)
    np.sqrt(std, out=std)
    multiplier, roots = _count_tables(confidence, int(count.max()) if count.size else 0)
    half: F64 = multiplier[count] * std
    half /= roots[count]
    half = np.where(count > 1, half, 0.0)
    conclusive: Bool = count >= max(min_samples, 1)
    nan = np.float64(np.nan)
    return WindowStats(
        count=count,
        mean=np.where(conclusive, mean, nan),
        std=std,
        lower=np.where(conclusive, mean - half, nan),
        upper=np.where(conclusive, mean + half, nan),
        conclusive=conclusive,
    )
