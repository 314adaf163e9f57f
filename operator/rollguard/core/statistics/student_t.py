"""Student's t distribution for integer degrees of freedom: CDF, quantiles and the half-width
multiplier of a two-sided confidence interval, in plain Python floats.

Called by ``stats`` (one multiplier per sample count, looked up) and by tests. PURE. No
vectorised transcendental function is involved, so the numbers do not depend on the batch or
on the SIMD code NumPy picks.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

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
