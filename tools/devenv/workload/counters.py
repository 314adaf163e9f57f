"""The workload simulator's counters: ``SimDeployment``, the counters and RNG behind one
simulated workload's model-server families (``model_requests_total``,
``model_request_duration_seconds``, ``model_revenue_total``, ``sim_profile_info``), and
``render_model_families``, which writes those families for a fleet.

PURE: no I/O, no logging, no clock; every draw comes from a per-workload RNG seeded from the
run's seed, so a run is reproducible. Called by ``devenv.workload.families`` and
``devenv.workload.fleet`` and by the unit tests.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from devenv.workload.exposition import escape_label_value, family_header, format_le
from devenv.workload.kinds import DEPLOYMENT
from devenv.workload.profile import (
    BUCKETS,
    BURST_COOLDOWN_S,
    BURST_MAX_S,
    BURST_MEAN_GAP_S,
    BURST_MIN_S,
    CODES,
    Parts,
    Profile,
    blend,
)

REVENUE_NOISE_SD = 0.05

# Type and help of the model server's own families, rendered in this order.
MODEL_FAMILIES: dict[str, tuple[str, str]] = {
    "model_requests_total": ("counter", "Requests served by the model, by HTTP status code."),
    "model_request_duration_seconds": ("histogram", "Request latency of the model server."),
    "model_revenue_total": ("counter", "Revenue attributed to successful predictions."),
    "sim_profile_info": ("gauge", "Simulator profile currently applied (debugging aid)."),
}


def stream_seed(seed: int, namespace: str, name: str, kind: str = DEPLOYMENT) -> int:
    """Stable per-workload RNG seed (Python's hash() is salted per process); a StatefulSet or
    Rollout named like a Deployment draws from another stream."""
    key = f"{seed}\x00{namespace}\x00{name}" + ("" if kind == DEPLOYMENT else f"\x00{kind}")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


class SimDeployment:
    """Counters and RNG of one simulated workload (a Deployment, StatefulSet or Rollout: the
    name is the first's), and the line prefixes of its model server's series, labelled
    ``deployment`` whatever the kind. Not thread-safe on its own."""

    def __init__(
        self,
        seed: int,
        namespace: str,
        name: str,
        *,
        parts: Parts,
        replicas: int,
        tick_seconds: float,
        kind: str = DEPLOYMENT,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.kind = kind
        self.parts = parts
        self.replicas = replicas
        self.dt = tick_seconds
        self.rng = np.random.default_rng(stream_seed(seed, namespace, name, kind))
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
        self.info_lines: list[str] = []
        self._set_derived()

    def _set_derived(self) -> None:
        self.draws = blend(self.parts)
        # One line per profile served (a Rollout mid-update serves two).
        names = dict.fromkeys(p.name for p, share in self.parts if share > 0)
        self.info_lines = [
            f'sim_profile_info{{{self.labels},profile="{escape_label_value(name)}"}} 1'
            for name in names
        ]

    def reconfigure(self, parts: Parts, replicas: int) -> None:
        # Counters are deliberately kept: a rollback changes future increments only.
        self.replicas = replicas
        self.parts = parts
        self._set_derived()

    @property
    def profile(self) -> Profile:
        """The profile most replicas run (on a tie the later part: a Rollout's canary)."""
        return max(reversed(self.parts), key=lambda part: part[1])[0]

    @property
    def exported(self) -> bool:
        """Whether its series are served: a silent part (a broken exporter on one template's
        pods) silences the whole series rather than halving it, which would read as a reset."""
        return all(p.exported for p, share in self.parts if share > 0)

    @property
    def rps(self) -> float:
        return self.draws.rps_per_replica * self.replicas

    def _advance_burst(self) -> bool:
        if not self.draws.bursty:
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
        d = self.draws
        code_p, (lat_p, lat_m) = (
            (d.code_p_burst, d.lat_burst) if self.in_burst else (d.code_p, d.lat)
        )
        codes = self.rng.multinomial(n, code_p)
        self.codes += codes
        lat_counts = self.rng.multinomial(n, lat_p)
        self.buckets_cum += np.cumsum(lat_counts)
        self.latency_sum += float(lat_counts @ lat_m)
        ok = int(codes[0])
        if ok > 0:
            noise = max(0.0, float(self.rng.normal(1.0, REVENUE_NOISE_SD)))
            self.revenue += ok * d.revenue_per_success * noise


def _totals(group: Sequence[SimDeployment]) -> tuple[list[int], float, float]:
    """Cumulative buckets, latency sum and revenue of workloads that share one series."""
    if len(group) == 1:
        return group[0].buckets_cum.tolist(), group[0].latency_sum, group[0].revenue
    cum = np.sum(np.stack([d.buckets_cum for d in group]), axis=0)
    return (
        cum.tolist(),
        math.fsum(d.latency_sum for d in group),
        math.fsum(d.revenue for d in group),
    )


def render_model_families(
    out: list[str], groups: Sequence[Sequence[SimDeployment]], texts: Sequence[Sequence[str]]
) -> None:
    """Append the model server's own families, each one's samples contiguous, for ``groups``
    in order: each group is the workloads of one namespace and name (one, unless kinds share
    a name), whose counts add up in one series; ``texts[i]`` is group i's summed ``codes`` as
    text."""
    out += family_header("model_requests_total", MODEL_FAMILIES)
    for group, text in zip(groups, texts, strict=True):
        out.extend(map("".join, zip(group[0].code_prefixes, text, strict=True)))
    totals = [_totals(group) for group in groups]
    out += family_header("model_request_duration_seconds", MODEL_FAMILIES)
    for group, (cum, latency_sum, _) in zip(groups, totals, strict=True):
        d = group[0]
        out.extend(map("".join, zip(d.bucket_prefixes, map(str, cum), strict=True)))
        out.append(d.sum_prefix + repr(latency_sum))
        out.append(d.count_prefix + str(cum[-1]))
    out += family_header("model_revenue_total", MODEL_FAMILIES)
    for group, (_, _, revenue) in zip(groups, totals, strict=True):
        out.append(group[0].revenue_prefix + repr(revenue))
    out += family_header("sim_profile_info", MODEL_FAMILIES)
    for group in groups:
        lines = (
            group[0].info_lines
            if len(group) == 1
            else [line for d in group for line in d.info_lines]
        )
        out.extend(dict.fromkeys(lines))
