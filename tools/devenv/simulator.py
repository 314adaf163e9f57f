"""Workload simulator: fake Prometheus metrics for an ML model-serving fleet.

Used by the integration/e2e tests and by the demo (``make demo``) in place of real model
servers. It watches every apps/v1 Deployment whose first container has a ``SIM_PROFILE`` env
var and serves, per Deployment, the series rollguard's analysis queries read:
``model_requests_total``, ``model_request_duration_seconds`` and ``model_revenue_total``.
Because it follows the *live* pod template, rolling a Deployment back (which swaps the env
var) changes the metrics within a tick or two, which is what the tests assert on.

Run::

    python -m devenv.simulator --kubeconfig PATH [--context NAME] \\
        --host 127.0.0.1 --port PORT --seed N [--tick 0.25]

The module is split in two: a pure part (profiles, per-tick increments, state, rendering)
that the unit tests drive directly, and an I/O part (Kubernetes watch, HTTP server, signal
handling) below the ``I/O`` marker.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import importlib
import itertools
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

logger = logging.getLogger("devenv.simulator")

# --------------------------------------------------------------------------------------------
# Pure part
# --------------------------------------------------------------------------------------------

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
CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


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


def escape_label_value(value: str) -> str:
    """Escape per the text exposition format: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_le(bound: float) -> str:
    # Same spelling as the official client ("1.0", not "1"); Prometheus 3 normalises `le`
    # anyway, but older servers compare it as a plain string.
    return repr(float(bound))


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


@dataclass(frozen=True)
class DeploymentInfo:
    """What the simulator needs from a Deployment object.

    ``env`` is None when the first container has no SIM_PROFILE, i.e. not simulated.
    """

    namespace: str
    name: str
    env: dict[str, str | None] | None
    replicas: int


def _get(obj: Any, *path: str | int) -> Any:
    cur = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or len(cur) <= step:
                return None
            cur = cur[step]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(step)
    return cur


def extract_deployment(obj: Mapping[str, Any]) -> DeploymentInfo | None:
    """Read a Deployment in API (camelCase dict) form; None if it lacks namespace/name."""
    namespace = _get(obj, "metadata", "namespace")
    name = _get(obj, "metadata", "name")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    replicas_raw = _get(obj, "spec", "replicas")
    # spec.replicas defaults to 1 when unset; "min 1" keeps scaled-to-zero fleets visible.
    replicas = replicas_raw if isinstance(replicas_raw, int) else 1
    replicas = max(1, replicas)
    env_list = _get(obj, "spec", "template", "spec", "containers", 0, "env")
    env: dict[str, str | None] = {}
    if isinstance(env_list, list):
        for item in env_list:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                value = item.get("value")
                env[item["name"]] = value if isinstance(value, str) else None
    if PROFILE_ENV not in env:
        return DeploymentInfo(namespace, name, None, replicas)
    return DeploymentInfo(namespace, name, env, replicas)


class SimDeployment:
    """Counters and RNG of one simulated deployment. Not thread-safe on its own."""

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
            for le in [*(_format_le(b) for b in BUCKETS), "+Inf"]
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
        self.profile = profile
        self.replicas = replicas
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


_FAMILIES: dict[str, tuple[str, str]] = {
    "model_requests_total": ("counter", "Requests served by the model, by HTTP status code."),
    "model_request_duration_seconds": ("histogram", "Request latency of the model server."),
    "model_revenue_total": ("counter", "Revenue attributed to successful predictions."),
    "sim_profile_info": ("gauge", "Simulator profile currently applied (debugging aid)."),
}


def _header(name: str) -> list[str]:
    kind, help_text = _FAMILIES[name]
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


class Simulator:
    """All simulated deployments; every public method is safe to call from any thread."""

    def __init__(self, seed: int, tick_seconds: float = 0.25) -> None:
        if not tick_seconds > 0:
            raise ValueError("tick_seconds must be > 0")
        self.seed = seed
        self.tick_seconds = tick_seconds
        self._lock = threading.Lock()
        self._deps: dict[tuple[str, str], SimDeployment] = {}
        self._order: list[SimDeployment] | None = None
        self._warned: set[tuple[str, str, str]] = set()

    # -- membership -----------------------------------------------------------------------

    def apply(self, info: DeploymentInfo) -> None:
        """Add, update or (if it no longer carries SIM_PROFILE) remove one deployment."""
        if info.env is None:
            self.remove(info.namespace, info.name)
            return
        profile, warnings = parse_profile(info.env)
        key = (info.namespace, info.name)
        ref = f"{info.namespace}/{info.name}"
        with self._lock:
            for w in warnings:
                if (info.namespace, info.name, w) not in self._warned:
                    self._warned.add((info.namespace, info.name, w))
                    logger.warning("Deployment %s: %s", ref, w)
            dep = self._deps.get(key)
            if dep is None:
                self._deps[key] = SimDeployment(
                    self.seed,
                    info.namespace,
                    info.name,
                    profile=profile,
                    replicas=info.replicas,
                    tick_seconds=self.tick_seconds,
                )
                self._order = None
                logger.info(
                    "Deployment %s added, serves profile %s (replicas=%d)",
                    ref,
                    profile.name,
                    info.replicas,
                )
            elif dep.profile != profile or dep.replicas != info.replicas:
                old = dep.profile
                dep.reconfigure(profile, info.replicas)
                if old != profile:
                    logger.info(
                        "Deployment %s now serves profile %s (replicas=%d)",
                        ref,
                        profile.name,
                        info.replicas,
                    )
                else:
                    logger.info(
                        "Deployment %s now has %d replicas (profile %s)",
                        ref,
                        info.replicas,
                        profile.name,
                    )

    def remove(self, namespace: str, name: str) -> bool:
        with self._lock:
            dep = self._deps.pop((namespace, name), None)
            if dep is None:
                return False
            self._order = None
            self._warned = {w for w in self._warned if (w[0], w[1]) != (namespace, name)}
        logger.info("Deployment %s/%s removed", namespace, name)
        return True

    def sync(self, infos: Iterable[DeploymentInfo]) -> None:
        """Make the set of simulated deployments equal to a full (re-)list result."""
        wanted: set[tuple[str, str]] = set()
        for info in infos:
            if info.env is not None:
                wanted.add((info.namespace, info.name))
            self.apply(info)
        with self._lock:
            stale = [k for k in self._deps if k not in wanted]
        for ns, name in stale:
            self.remove(ns, name)

    def get(self, namespace: str, name: str) -> SimDeployment | None:
        with self._lock:
            return self._deps.get((namespace, name))

    # -- time -------------------------------------------------------------------------------

    def tick(self, count: int = 1) -> None:
        with self._lock:
            deps = list(self._deps.values())
            for _ in range(count):
                for dep in deps:
                    dep.tick()

    # -- output -----------------------------------------------------------------------------

    def _sorted(self) -> list[SimDeployment]:
        if self._order is None:
            self._order = [self._deps[k] for k in sorted(self._deps)]
        return self._order

    def render(self) -> str:
        """Text exposition format 0.0.4; each family's samples are contiguous."""
        with self._lock:
            deps = [d for d in self._sorted() if d.profile.exported]
            out: list[str] = _header("model_requests_total")
            for d in deps:
                out.extend(
                    map("".join, zip(d.code_prefixes, map(str, d.codes.tolist()), strict=True))
                )
            out += _header("model_request_duration_seconds")
            for d in deps:
                cum = d.buckets_cum.tolist()
                out.extend(map("".join, zip(d.bucket_prefixes, map(str, cum), strict=True)))
                out.append(d.sum_prefix + repr(d.latency_sum))
                out.append(d.count_prefix + str(cum[-1]))
            out += _header("model_revenue_total")
            out.extend(d.revenue_prefix + repr(d.revenue) for d in deps)
            out += _header("sim_profile_info")
            out.extend(d.info_line for d in deps)
        out.append("")
        return "\n".join(out)

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        """namespace -> deployment -> summary, for /state and for humans debugging tests."""
        result: dict[str, dict[str, dict[str, Any]]] = {}
        with self._lock:
            for d in self._sorted():
                result.setdefault(d.namespace, {})[d.name] = {
                    "profile": d.profile.name,
                    "replicas": d.replicas,
                    "rps": d.rps,
                    "error_rate": d.profile.server_error_rate,
                    "latency_median_ms": d.profile.latency_median_s * 1000.0,
                    "exported": d.profile.exported,
                    "in_burst": d.in_burst,
                    "requests_total": int(d.codes.sum()),
                }
        return result


# --------------------------------------------------------------------------------------------
# I/O part: Kubernetes watch, tick thread, HTTP server
# --------------------------------------------------------------------------------------------

BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 5.0
WATCH_TIMEOUT_S = 60
LIST_REQUEST_TIMEOUT_S = 15.0
# A read timeout a bit above the server-side watch timeout catches half-dead connections.
WATCH_REQUEST_TIMEOUT = (5.0, WATCH_TIMEOUT_S + 15.0)


def _k8s(module: str) -> Any:
    # Imported lazily so the pure part and its unit tests never need the client, and typed
    # as Any because the client is untyped (avoids per-call ignores under --strict).
    return importlib.import_module(module)


class _GoneError(Exception):
    """The watch resource version expired (410); a full re-list is needed."""


def _run_watch(apps: Any, sim: Simulator, stop: threading.Event) -> None:
    """List-then-watch Deployments forever, keeping ``sim`` in sync, until ``stop``."""
    watch = _k8s("kubernetes.watch")
    api_exception: type[Exception] = _k8s("kubernetes.client.exceptions").ApiException

    backoff = BACKOFF_INITIAL_S
    resource_version: str | None = None
    gone_streak = 0
    while not stop.is_set():
        try:
            if resource_version is None:
                listing = apps.list_deployment_for_all_namespaces(
                    _request_timeout=LIST_REQUEST_TIMEOUT_S
                )
                raw = apps.api_client.sanitize_for_serialization(listing)
                infos = [extract_deployment(item) for item in raw.get("items") or []]
                sim.sync(i for i in infos if i is not None)
                resource_version = str(raw["metadata"]["resourceVersion"])
                logger.debug("listed deployments at resourceVersion %s", resource_version)
            w = watch.Watch()
            for event in w.stream(
                apps.list_deployment_for_all_namespaces,
                resource_version=resource_version,
                timeout_seconds=WATCH_TIMEOUT_S,
                allow_watch_bookmarks=True,
                _request_timeout=WATCH_REQUEST_TIMEOUT,
            ):
                if stop.is_set():
                    w.stop()
                    break
                resource_version = _handle_event(sim, event, resource_version)
                gone_streak = 0
                backoff = BACKOFF_INITIAL_S
            # A watch that ran to its timeout proves the API is healthy again.
            gone_streak = 0
            backoff = BACKOFF_INITIAL_S
            continue
        except _GoneError:
            gone = True
        except api_exception as exc:
            gone = getattr(exc, "status", None) == 410
            if not gone:
                logger.warning(
                    "Kubernetes API error %s (%s); retrying in %.2fs",
                    getattr(exc, "status", None),
                    getattr(exc, "reason", exc),
                    backoff,
                )
        except Exception as exc:  # noqa: BLE001 -- any transport failure must not kill the watch
            gone = False
            logger.warning(
                "Kubernetes API unreachable (%s: %.200s); serving last-known state, "
                "retrying in %.2fs",
                type(exc).__name__,
                exc,
                backoff,
            )
        # Re-list after every failure, not only 410: events may have been missed, and a list
        # of a test cluster is cheap. State is only replaced once a list succeeds.
        resource_version = None
        if gone:
            logger.info("watch expired (410 Gone); re-listing deployments")
            gone_streak += 1
            if gone_streak == 1:
                continue  # the normal case: re-list straight away
        stop.wait(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_S)


def _handle_event(sim: Simulator, event: Mapping[str, Any], resource_version: str) -> str:
    """Apply one watch event; returns the resource version to resume from."""
    kind = event.get("type")
    raw = event.get("raw_object")
    if not isinstance(raw, dict):
        raw = {}
    if kind == "ERROR":
        # The client normally turns these into ApiException; kept for robustness.
        if raw.get("code") == 410:
            raise _GoneError
        logger.warning("watch error event: %s", raw.get("message", raw))
        return resource_version
    new_rv = _get(raw, "metadata", "resourceVersion")
    if kind == "BOOKMARK":
        return str(new_rv) if new_rv else resource_version
    info = extract_deployment(raw)
    if info is not None:
        if kind == "DELETED":
            sim.remove(info.namespace, info.name)
        elif kind in ("ADDED", "MODIFIED"):
            sim.apply(info)
    return str(new_rv) if new_rv else resource_version


def _run_ticks(sim: Simulator, stop: threading.Event) -> None:
    """Advance simulated time in fixed steps, catching up briefly if a tick ran late."""
    step = sim.tick_seconds
    deadline = time.monotonic() + step
    while not stop.wait(max(0.0, deadline - time.monotonic())):
        sim.tick()
        deadline += step
        now = time.monotonic()
        # After a long stall (suspend, debugger) drop the backlog instead of replaying a
        # burst of ticks that would show up as a traffic spike.
        if now - deadline > 5.0:
            deadline = now + step


def _make_handler(sim: Simulator) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "rollguard-simulator/0.1"
        protocol_version = "HTTP/1.1"

        def _send(self, code: int, body: bytes, content_type: str, head: bool) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _dispatch(self, head: bool) -> None:
            path = urlsplit(self.path).path
            try:
                if path == "/metrics":
                    self._send(200, sim.render().encode(), CONTENT_TYPE_METRICS, head)
                elif path == "/healthz":
                    self._send(200, b"ok", "text/plain; charset=utf-8", head)
                elif path == "/state":
                    body = json.dumps(sim.state(), indent=1, sort_keys=True).encode()
                    self._send(200, body, "application/json", head)
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8", head)
            except (BrokenPipeError, ConnectionResetError):
                pass  # scraper went away; nothing to do

        def do_GET(self) -> None:
            self._dispatch(head=False)

        def do_HEAD(self) -> None:
            self._dispatch(head=True)

        def log_message(self, format: str, *args: Any) -> None:
            # Scrapes every few seconds would drown the add/change/remove lines.
            logger.debug("%s - %s", self.address_string(), format % args)

    return Handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devenv.simulator",
        description="Serve simulated model-serving metrics for Deployments that set "
        f"{PROFILE_ENV} on their first container.",
    )
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument("--context", default=None, help="kubeconfig context to use")
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, default=9464, help="listen port (0 = any)")
    parser.add_argument("--seed", type=int, default=0, help="seed for all random draws")
    parser.add_argument(
        "--tick", type=float, default=0.25, help="simulated time step in seconds (default 0.25)"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # urllib3 logs every connection retry; our own line per attempt is enough.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    if not args.tick > 0:
        logger.error("--tick must be > 0")
        return 2

    _k8s("kubernetes.config").load_kube_config(config_file=args.kubeconfig, context=args.context)
    apps = _k8s("kubernetes.client").AppsV1Api()

    sim = Simulator(seed=args.seed, tick_seconds=args.tick)
    stop = threading.Event()
    server = http.server.ThreadingHTTPServer((args.host, args.port), _make_handler(sim))
    server.daemon_threads = True

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # Daemon threads: the watch may sit in a blocking read for up to a minute and must not
    # hold up exit; it owns no state that needs flushing.
    threads = [
        threading.Thread(target=_run_watch, args=(apps, sim, stop), name="watch", daemon=True),
        threading.Thread(target=_run_ticks, args=(sim, stop), name="tick", daemon=True),
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        ),
    ]
    for t in threads:
        t.start()
    host, port = server.server_address[:2]
    logger.info("serving on http://%s:%s (seed=%d, tick=%.3fs)", host, port, args.seed, args.tick)

    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    for t in threads[1:]:
        t.join(timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
