"""The workload simulator's traffic model: profiles and their env overrides, the lognormal
latency histogram, the response-code split, and ``blend``, which turns the profiles a workload's
replicas run (one, or a stable and a canary template's during a Rollout's update) into the
``Draws`` a tick samples from.

PURE: no I/O, no logging, no clock, no RNG (``devenv.workload.counters`` draws). Called by
``devenv.workload.counters``, ``devenv.workload.fleet``, ``devenv.workload.kinds`` and by the
unit tests.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

PROFILE_ENV = "SIM_PROFILE"
RPS_ENV = "SIM_RPS"
ERROR_RATE_ENV = "SIM_ERROR_RATE"
LATENCY_ENV = "SIM_LATENCY_MS"

CODES: tuple[str, ...] = ("200", "400", "500", "503")
# Share of 5xx responses that are 500 (the rest are 503); both count as 5xx for rollguard.
SHARE_500 = 0.8

BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
)

# z-score of the 99th percentile of a standard normal; used to turn "median and p99" targets
# into a lognormal sigma.
_Z99 = 2.3263478740408408

# Noisy profile: bursts of 2-5 s with 3x the 5xx rate and 1.3x latency. The cool-down after
# each burst bounds how much burst time fits in any 30 s window (at most ~10 s), so the
# expected 5xx fraction over 30 s stays at or below ~0.33% -- well inside a 1% threshold.
BURST_MIN_S = 2.0
BURST_MAX_S = 5.0
BURST_COOLDOWN_S = 20.0
BURST_MEAN_GAP_S = 40.0
BURST_ERROR_FACTOR = 3.0
# Spiky profile: the same bursts with 20x the 5xx rate (4%): a 10 s rate() passes a 1.5% limit
# at the height of a long burst, so threshold checks see failures, while over 30 s the 5xx
# fraction stays near the healthy 0.2% to 1%.
SPIKY_ERROR_FACTOR = 20.0
BURST_LATENCY_FACTOR = 1.3


def _sigma_for(median_s: float, p99_s: float) -> float:
    return math.log(p99_s / median_s) / _Z99


@dataclass(frozen=True)
class Profile:
    """Traffic parameters of one deployment; ``name`` is the effective profile name."""

    name: str
    rps_per_replica: float = 20.0
    server_error_rate: float = 0.002
    client_error_rate: float = 0.01
    latency_median_s: float = 0.040
    latency_sigma: float = _sigma_for(0.040, 0.120)
    revenue_per_success: float = 0.05
    bursty: bool = False
    burst_error_factor: float = BURST_ERROR_FACTOR
    exported: bool = True


PROFILES: dict[str, Profile] = {
    "healthy": Profile("healthy"),
    "errors": Profile("errors", server_error_rate=0.12),
    "latency": Profile("latency", latency_median_s=0.150, latency_sigma=_sigma_for(0.150, 0.650)),
    "revenue-drop": Profile("revenue-drop", revenue_per_success=0.02),
    # Traffic keeps flowing while silent (the exporter is "broken", not the service), so
    # counters have moved on when the series come back.
    "silent": Profile("silent", exported=False),
    "noisy": Profile("noisy", bursty=True),
    "spiky": Profile("spiky", bursty=True, burst_error_factor=SPIKY_ERROR_FACTOR),
}
DEFAULT_PROFILE = "healthy"


def _parse_float(
    env: Mapping[str, str | None],
    key: str,
    *,
    lo: float,
    hi: float,
    lo_inclusive: bool,
    warnings: list[str],
) -> float | None:
    if key not in env:
        return None
    raw = env[key]
    if raw is None:
        warnings.append(f"ignoring {key}: only literal values are supported, not valueFrom")
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    ok = math.isfinite(value) and (value >= lo if lo_inclusive else value > lo) and value <= hi
    if not ok:
        warnings.append(
            f"ignoring {key}={raw!r}: expected a number in "
            f"{'[' if lo_inclusive else '('}{lo:g}, {hi:g}]"
        )
        return None
    return value


def parse_profile(env: Mapping[str, str | None]) -> tuple[Profile, list[str]]:
    """Effective profile for a container's env (name -> literal value; None if valueFrom).

    Never fails: unknown or malformed values fall back to defaults and are reported in the
    returned warnings so the caller can log them once.
    """
    warnings: list[str] = []
    raw = env.get(PROFILE_ENV)
    key = (raw or "").strip().lower()
    profile = PROFILES.get(key)
    if profile is None:
        warnings.append(f"unknown {PROFILE_ENV}={raw!r}; treating it as {DEFAULT_PROFILE!r}")
        profile = PROFILES[DEFAULT_PROFILE]

    rps = _parse_float(env, RPS_ENV, lo=0.0, hi=1e6, lo_inclusive=True, warnings=warnings)
    if rps is not None:
        profile = replace(profile, rps_per_replica=rps)
    err = _parse_float(env, ERROR_RATE_ENV, lo=0.0, hi=1.0, lo_inclusive=True, warnings=warnings)
    if err is not None:
        profile = replace(profile, server_error_rate=err)
    lat_ms = _parse_float(
        env, LATENCY_ENV, lo=0.0, hi=600_000.0, lo_inclusive=False, warnings=warnings
    )
    if lat_ms is not None:
        profile = replace(profile, latency_median_s=lat_ms / 1000.0)
    return profile, warnings


# -- latency and response codes --------------------------------------------------------------


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@functools.lru_cache(maxsize=256)
def latency_bucket_model(
    median_s: float,
    sigma: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-bucket probabilities and conditional means of a lognormal latency.

    Returns ``(probs, means)`` over the len(BUCKETS)+1 disjoint intervals (last is +Inf),
    so a tick can draw bucket counts with one multinomial and a consistent ``_sum`` as
    ``counts @ means`` instead of sampling every request.
    """
    mu = math.log(median_s)
    s = max(sigma, 1e-9)
    edges = [0.0, *BUCKETS, math.inf]
    full_mean = math.exp(mu + s * s / 2.0)

    def cdf(x: float, shift: float) -> float:
        if x <= 0.0:
            return 0.0
        if math.isinf(x):
            return 1.0
        return _norm_cdf((math.log(x) - mu - shift) / s)

    probs: list[float] = []
    means: list[float] = []
    for lo, hi in itertools.pairwise(edges):
        p = cdf(hi, 0.0) - cdf(lo, 0.0)
        # Partial expectation of a lognormal: E[X; lo<X<=hi] = e^(mu+s^2/2) * dPhi(shifted).
        partial = full_mean * (cdf(hi, s * s) - cdf(lo, s * s))
        probs.append(max(p, 0.0))
        if p > 1e-15:
            means.append(partial / p)
        else:
            means.append(lo if math.isinf(hi) else (lo + hi) / 2.0)
    total = sum(probs)
    arr_p = np.asarray([p / total for p in probs], dtype=np.float64)
    arr_m = np.asarray(means, dtype=np.float64)
    arr_p.setflags(write=False)
    arr_m.setflags(write=False)
    return arr_p, arr_m


def _code_probs(profile: Profile, server_error_rate: float) -> npt.NDArray[np.float64]:
    e = min(max(server_error_rate, 0.0), 1.0)
    c = min(max(profile.client_error_rate, 0.0), 1.0 - e)
    return np.asarray([1.0 - e - c, c, e * SHARE_500, e * (1.0 - SHARE_500)], dtype=np.float64)


# -- what a tick draws from ------------------------------------------------------------------

# A latency model: per-bucket probabilities and conditional means (``latency_bucket_model``).
Latency = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
# The profiles a workload's replicas run, each with its share of the replicas (shares > 0 that
# sum to 1).
Parts = tuple[tuple[Profile, float], ...]


@dataclass(frozen=True, eq=False)
class Draws:
    """What a tick draws a workload's requests from: the rate per replica, the response-code
    and latency distributions (in a burst and out of one) and the revenue of a success."""

    rps_per_replica: float
    code_p: npt.NDArray[np.float64]
    code_p_burst: npt.NDArray[np.float64]
    lat: Latency
    lat_burst: Latency
    revenue_per_success: float
    bursty: bool


def _draws(p: Profile) -> Draws:
    code_p = _code_probs(p, p.server_error_rate)
    lat = latency_bucket_model(p.latency_median_s, p.latency_sigma)
    if not p.bursty:
        return Draws(p.rps_per_replica, code_p, code_p, lat, lat, p.revenue_per_success, False)
    return Draws(
        p.rps_per_replica,
        code_p,
        _code_probs(p, p.server_error_rate * p.burst_error_factor),
        lat,
        latency_bucket_model(p.latency_median_s * BURST_LATENCY_FACTOR, p.latency_sigma),
        p.revenue_per_success,
        True,
    )


def _mix_latency(weights: npt.NDArray[np.float64], models: Sequence[Latency]) -> Latency:
    probs_each = np.stack([p for p, _ in models])
    mass = weights @ (probs_each * np.stack([m for _, m in models]))
    probs = weights @ probs_each
    # Where no part puts any mass, the first part's bucket means stand in (never drawn).
    means = np.divide(mass, probs, out=models[0][1].copy(), where=probs > 1e-15)
    probs.setflags(write=False)
    means.setflags(write=False)
    return probs, means


def blend(parts: Sequence[tuple[Profile, float]]) -> Draws:
    """The draws of a workload whose replicas run ``parts`` (profile, share of the replicas;
    shares are normalised, parts without a share dropped).

    Each replica serves at its own profile's rate, so a part's share of the requests is its
    share of the replicas times its rate (with the same rate, the usual case, the two shares
    agree); response codes, latencies and revenue are the mixtures of the parts' by those
    shares. A burst, if any part is bursty, raises the bursty parts' errors and latency only.
    One part gives exactly that profile's draws.
    """
    each = [(_draws(p), share) for p, share in parts if share > 0]
    if not each:
        raise ValueError("blend needs a part with a positive share")
    if len(each) == 1:
        return each[0][0]
    draws = [d for d, _ in each]
    shares = np.asarray([share for _, share in each], dtype=np.float64)
    shares /= shares.sum()
    served = shares * np.asarray([d.rps_per_replica for d in draws], dtype=np.float64)
    # Share of the requests; the replica shares when no part serves any (no draw happens).
    weights = served / served.sum() if served.sum() > 0 else shares
    successes = weights * np.asarray([d.code_p[0] for d in draws], dtype=np.float64)
    revenue = [d.revenue_per_success for d in draws]
    return Draws(
        rps_per_replica=float(served.sum()),
        code_p=weights @ np.stack([d.code_p for d in draws]),
        code_p_burst=weights @ np.stack([d.code_p_burst for d in draws]),
        lat=_mix_latency(weights, [d.lat for d in draws]),
        lat_burst=_mix_latency(weights, [d.lat_burst for d in draws]),
        revenue_per_success=(
            float(successes @ revenue) / float(successes.sum())
            if successes.sum() > 0
            else float(weights @ revenue)
        ),
        bursty=any(d.bursty for d in draws),
    )
