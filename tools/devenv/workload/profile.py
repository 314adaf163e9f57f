"""The workload simulator's model of one deployment: traffic profiles and their env overrides,
the lognormal latency histogram, and ``SimDeployment``, the counters and RNG behind the model
server's own families (``model_requests_total``, ``model_request_duration_seconds``,
``model_revenue_total``, ``sim_profile_info``).

Also the exposition-format helpers the other simulator modules share (label escaping, the
``le`` spelling, ``# HELP``/``# TYPE`` lines) and ``render_model_families``.

PURE: no I/O, no logging, no clock; every draw comes from a per-deployment RNG seeded from the
run's seed, so a run is reproducible. Called by ``devenv.workload.families`` and ``devenv.workload.fleet``
and by the unit tests.
"""

from __future__ import annotations

import functools
import hashlib
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

REVENUE_NOISE_SD = 0.05

# Type and help of the model server's own families, rendered in this order.
MODEL_FAMILIES: dict[str, tuple[str, str]] = {
    "model_requests_total": ("counter", "Requests served by the model, by HTTP status code."),
    "model_request_duration_seconds": ("histogram", "Request latency of the model server."),
    "model_revenue_total": ("counter", "Revenue attributed to successful predictions."),
    "sim_profile_info": ("gauge", "Simulator profile currently applied (debugging aid)."),
}


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


# -- exposition format -----------------------------------------------------------------------


def escape_label_value(value: str) -> str:
    """Escape per the text exposition format: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_le(bound: float) -> str:
    """A bucket bound as an ``le`` label value."""
    # Same spelling as the official client ("1.0", not "1"); Prometheus 3 normalises `le`
    # anyway, but older servers compare it as a plain string.
    return repr(float(bound))


def family_header(name: str, families: Mapping[str, tuple[str, str]]) -> list[str]:
    """The ``# HELP`` and ``# TYPE`` lines that open family ``name`` of ``families`` (name ->
    type and help)."""
    kind, help_text = families[name]
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


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


def stream_seed(seed: int, namespace: str, name: str) -> int:
    """Stable per-deployment RNG seed (Python's hash() is salted per process)."""
    digest = hashlib.sha256(f"{seed}\x00{namespace}\x00{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


# -- one simulated deployment ----------------------------------------------------------------


class SimDeployment:
    """Counters and RNG of one simulated deployment, and the line prefixes of its model
    server's series. Not thread-safe on its own."""

    def __init__(
        self,
        seed: int,
        namespace: str,
        name: str,
        *,
        profile: Profile,
        replicas: int,
        tick_seconds: float,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.profile = profile
        self.replicas = replicas
        self.dt = tick_seconds
        self.rng = np.random.default_rng(stream_seed(seed, namespace, name))
        self.codes = np.zeros(len(CODES), dtype=np.int64)
        self.buckets_cum = np.zeros(len(BUCKETS) + 1, dtype=np.int64)
        self.latency_sum = 0.0
        self.revenue = 0.0
        self.ticks = 0
        self.burst_left = 0
        self.cooldown_left = 0
        self.in_burst = False

        labels = (
            f'namespace="{escape_label_value(namespace)}",deployment="{escape_label_value(name)}"'
        )
        self.labels = labels
        self.code_prefixes = [f'model_requests_total{{{labels},code="{c}"}} ' for c in CODES]
        self.bucket_prefixes = [
            f'model_request_duration_seconds_bucket{{{labels},le="{le}"}} '
            for le in [*(format_le(b) for b in BUCKETS), "+Inf"]
        ]
        self.sum_prefix = f"model_request_duration_seconds_sum{{{labels}}} "
        self.count_prefix = f"model_request_duration_seconds_count{{{labels}}} "
        self.revenue_prefix = f"model_revenue_total{{{labels}}} "
        self.info_line = ""
        self._set_derived()

    def _set_derived(self) -> None:
        p = self.profile
        self.info_line = (
            f'sim_profile_info{{{self.labels},profile="{escape_label_value(p.name)}"}} 1'
        )
        self.code_p = _code_probs(p, p.server_error_rate)
        self.code_p_burst = _code_probs(p, p.server_error_rate * p.burst_error_factor)
        self.lat = latency_bucket_model(p.latency_median_s, p.latency_sigma)
        self.lat_burst = latency_bucket_model(
            p.latency_median_s * BURST_LATENCY_FACTOR, p.latency_sigma
        )

    def reconfigure(self, profile: Profile, replicas: int) -> None:
        # Counters are deliberately kept: a rollback changes future increments only.
        self.replicas = replicas
        self.profile = profile
        self._set_derived()

    @property
    def rps(self) -> float:
        return self.profile.rps_per_replica * self.replicas

    def _advance_burst(self) -> bool:
        if not self.profile.bursty:
            self.burst_left = 0
            return False
        if self.burst_left > 0:
            self.burst_left -= 1
            if self.burst_left == 0:
                self.cooldown_left = math.ceil(BURST_COOLDOWN_S / self.dt)
            return True
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            return False
        if self.rng.random() < self.dt / BURST_MEAN_GAP_S:
            lo = max(1, round(BURST_MIN_S / self.dt))
            hi = max(lo, round(BURST_MAX_S / self.dt))
            self.burst_left = int(self.rng.integers(lo, hi + 1)) - 1
            if self.burst_left == 0:
                self.cooldown_left = math.ceil(BURST_COOLDOWN_S / self.dt)
            return True
        return False

    def tick(self) -> None:
        """Advance by one tick. The draw order is fixed so runs are reproducible."""
        self.ticks += 1
        self.in_burst = self._advance_burst()
        n = int(self.rng.poisson(self.rps * self.dt))
        if n == 0:
            return
        code_p, (lat_p, lat_m) = (
            (self.code_p_burst, self.lat_burst) if self.in_burst else (self.code_p, self.lat)
        )
        codes = self.rng.multinomial(n, code_p)
        self.codes += codes
        lat_counts = self.rng.multinomial(n, lat_p)
        self.buckets_cum += np.cumsum(lat_counts)
        self.latency_sum += float(lat_counts @ lat_m)
        ok = int(codes[0])
        if ok > 0:
            noise = max(0.0, float(self.rng.normal(1.0, REVENUE_NOISE_SD)))
            self.revenue += ok * self.profile.revenue_per_success * noise


def render_model_families(
    out: list[str], deps: Sequence[SimDeployment], texts: Sequence[Sequence[str]]
) -> None:
    """Append the model server's own families, each one's samples contiguous, for ``deps``
    in order; ``texts[i]`` is ``deps[i].codes`` as text."""
    out += family_header("model_requests_total", MODEL_FAMILIES)
    for d, text in zip(deps, texts, strict=True):
        out.extend(map("".join, zip(d.code_prefixes, text, strict=True)))
    out += family_header("model_request_duration_seconds", MODEL_FAMILIES)
    for d in deps:
        cum = d.buckets_cum.tolist()
        out.extend(map("".join, zip(d.bucket_prefixes, map(str, cum), strict=True)))
        out.append(d.sum_prefix + repr(d.latency_sum))
        out.append(d.count_prefix + str(cum[-1]))
    out += family_header("model_revenue_total", MODEL_FAMILIES)
    out.extend(d.revenue_prefix + repr(d.revenue) for d in deps)
    out += family_header("sim_profile_info", MODEL_FAMILIES)
    out.extend(d.info_line for d in deps)
