"""The workload simulator's extra families: the same per-tick counts as the model server's own
series, served in the shapes that service meshes, proxies and model servers expose, so that
queries written for them can be tested against a real Prometheus (``--families``, all on by
default; each family agrees with ``model_requests_total`` and
``model_request_duration_seconds``):

- ``istio``: ``istio_requests_total{reporter="destination",destination_workload,
  destination_workload_namespace,source_workload="unknown",response_code}``;
- ``pod``: ``model_pod_request_duration_seconds{namespace,pod}``, one histogram per replica,
  with pod names shaped like the workload's kind's: a Deployment's or a Rollout's
  ``{name}-{hash}-{suffix}`` (deterministic; the hash differs between the two kinds), a
  StatefulSet's ``{name}-{ordinal}``. The pods always sum exactly to the workload and each
  pod's counters only grow while it lives, also across scaling (a scale-down folds the removed
  pods' counts into the survivors). A pod started later gets a new name, except a
  StatefulSet's: it comes back under its ordinal, from zero, as a restarted pod's counters do;
- ``envoy``: ``envoy_cluster_upstream_rq{envoy_cluster_name="{ns}_{name}-canary_80",
  envoy_response_code}``;
- ``traefik``: ``traefik_service_requests_total{service="{ns}-{name}-canary-80@kubernetescrd",
  code}``. This name is ambiguous (``a-b``/``c`` and ``a``/``b-c`` give the same one):
  such deployments share one series, the sum of both (one label value cannot tell them
  apart);
- ``seldon``: ``seldon_api_executor_server_requests_seconds_count{deployment_name,namespace,
  code}``.

``ExtraSeries`` holds one workload's line prefixes and the split of its counts over its
pods; ``render_extra_families`` writes the families for a fleet, adding up the workloads of
different kinds that share a namespace and name. PURE (no I/O, no RNG: every number is
derived from a ``SimDeployment``'s counters). Called by ``devenv.workload.fleet``, by
``devenv.workload.server`` (``--families``) and by the unit tests.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from devenv.workload.counters import SimDeployment
from devenv.workload.exposition import escape_label_value, family_header, format_le
from devenv.workload.kinds import DEPLOYMENT, STATEFUL_SET
from devenv.workload.profile import BUCKETS, CODES

# The other exporters' shapes served besides the model server's own (module docstring).
EXTRA_FAMILIES: tuple[str, ...] = ("istio", "pod", "envoy", "traefik", "seldon")
# Kubernetes' alphabet for generated names (k8s.io/apimachinery/pkg/util/rand): no vowels
# and no 0, 1, 3, so a pod name never spells a word.
POD_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Type and help of each extra family's metric.
_HEADERS: dict[str, tuple[str, str]] = {
    "istio_requests_total": ("counter", "Requests seen by the Istio sidecar (simulated)."),
    "model_pod_request_duration_seconds": ("histogram", "Request latency, per model pod."),
    "envoy_cluster_upstream_rq": ("counter", "Upstream requests of an Envoy cluster (simulated)."),
    "traefik_service_requests_total": ("counter", "Requests to a Traefik service (simulated)."),
    "seldon_api_executor_server_requests_seconds_count": (
        "counter",
        "Requests served by the Seldon executor (simulated; the count of its histogram).",
    ),
}


def parse_families(text: str) -> frozenset[str]:
    """The extra families a ``--families`` value names: comma-separated names from
    EXTRA_FAMILIES, ``all``, or ``none`` (or nothing) for the model server's own only."""
    names = {part.strip().lower() for part in text.split(",")} - {""}
    if names <= {"none"}:
        return frozenset()
    if names == {"all"}:
        return frozenset(EXTRA_FAMILIES)
    unknown = sorted(names - set(EXTRA_FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
            f"expected some of {', '.join(EXTRA_FAMILIES)}, all or none"
        )
    return frozenset(names)


def _safe_encode(data: bytes) -> str:
    return "".join(POD_NAME_ALPHABET[b % len(POD_NAME_ALPHABET)] for b in data)


def pod_template_hash(namespace: str, name: str, kind: str = DEPLOYMENT) -> str:
    """A stand-in for the pod-template-hash of a Deployment's (or Rollout's) ReplicaSet,
    spelled as Kubernetes spells one: the 9 or 10 decimal digits of a 32-bit hash,
    safe-encoded."""
    key = f"{namespace}\x00{name}" + ("" if kind == DEPLOYMENT else f"\x00{kind}")
    digest = hashlib.sha256(key.encode()).digest()
    number = 10**8 + int.from_bytes(digest[:4], "big") % (2**32 - 10**8)
    return _safe_encode(str(number).encode())


def pod_names(
    namespace: str, name: str, serials: Iterable[int], kind: str = DEPLOYMENT
) -> list[str]:
    """Names of a Deployment's (or Rollout's) pods, ``{name}-{hash}-{suffix}``, given which
    pods they are (0 for the first pod the workload started, 1 for the second, ...):
    deterministic and distinct. A pod keeps its name while it lives; a pod started later gets
    a new one, so no series of a removed pod ever comes back (from zero, which would read as
    a reset)."""
    prefix = f"{name}-{pod_template_hash(namespace, name, kind)}-"
    names: list[str] = []
    for serial in serials:
        for attempt in itertools.count():
            key = f"{namespace}\x00{name}\x00{serial}\x00{attempt}".encode()
            pod = prefix + _safe_encode(hashlib.sha256(key).digest()[:5])
            if pod not in names:
                names.append(pod)
                break
    return names


def _code_prefixes(metric: str, labels: str, code_label: str) -> list[str]:
    return [f'{metric}{{{labels},{code_label}="{c}"}} ' for c in CODES]


class ExtraSeries:
    """The extra families' series of one workload: their line prefixes, and the split of
    the workload's latency histogram over its pods. Reads ``dep``'s counters; keeps no
    counts of its own. Not thread-safe on its own."""

    def __init__(self, dep: SimDeployment, families: frozenset[str]) -> None:
        self.dep = dep
        self.families = families
        ns, name = escape_label_value(dep.namespace), escape_label_value(dep.name)
        # Built only for the families served: the scale benchmark keeps 2,000 of these.
        self.istio_prefixes: list[str] = []
        self.envoy_prefixes: list[str] = []
        self.traefik_prefixes: list[str] = []
        self.seldon_prefixes: list[str] = []
        if "istio" in families:
            self.istio_prefixes = _code_prefixes(
                "istio_requests_total",
                f'reporter="destination",destination_workload="{name}",'
                f'destination_workload_namespace="{ns}",source_workload="unknown"',
                "response_code",
            )
        if "envoy" in families:
            self.envoy_prefixes = _code_prefixes(
                "envoy_cluster_upstream_rq",
                f'envoy_cluster_name="{ns}_{name}-canary_80"',
                "envoy_response_code",
            )
        # The raw name is the key that merges deployments whose names collide.
        self.traefik_service = f"{dep.namespace}-{dep.name}-canary-80@kubernetescrd"
        if "traefik" in families:
            self.traefik_prefixes = _code_prefixes(
                "traefik_service_requests_total",
                f'service="{escape_label_value(self.traefik_service)}"',
                "code",
            )
        if "seldon" in families:
            self.seldon_prefixes = _code_prefixes(
                "seldon_api_executor_server_requests_seconds_count",
                f'deployment_name="{name}",namespace="{ns}"',
                "code",
            )
        # Per pod: bucket prefixes, _sum prefix, _count prefix.
        self.pod_names: list[str] = []
        self.pod_prefixes: list[tuple[list[str], str, str]] = []
        # Pod i's counts are its base plus its share, floor((d + i) / r), of the d requests
        # since the base was taken: the pods sum exactly to the deployment, and each pod's
        # counts only grow. The base is retaken whenever the replica count changes.
        self._pod_base = np.zeros((dep.replicas, len(BUCKETS) + 1), dtype=np.int64)
        self._pod_base_sum = np.zeros(dep.replicas, dtype=np.float64)
        self._pod_base_total = dep.buckets_cum.copy()
        self._pod_base_latency = dep.latency_sum
        self._pod_serials = list(range(dep.replicas))
        self._pods_started = dep.replicas
        if "pod" in families:
            self._set_pod_prefixes()

    def _set_pod_prefixes(self) -> None:
        dep = self.dep
        if dep.kind == STATEFUL_SET:
            self.pod_names = [f"{dep.name}-{ordinal}" for ordinal in range(len(self._pod_serials))]
        else:
            self.pod_names = pod_names(dep.namespace, dep.name, self._pod_serials, dep.kind)
        ns = escape_label_value(self.dep.namespace)
        les = [*(format_le(b) for b in BUCKETS), "+Inf"]
        self.pod_prefixes = []
        for pod in self.pod_names:
            labels = f'namespace="{ns}",pod="{escape_label_value(pod)}"'
            self.pod_prefixes.append(
                (
                    [
                        f'model_pod_request_duration_seconds_bucket{{{labels},le="{le}"}} '
                        for le in les
                    ],
                    f"model_pod_request_duration_seconds_sum{{{labels}}} ",
                    f"model_pod_request_duration_seconds_count{{{labels}}} ",
                )
            )

    def pod_counts(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Per pod (rows, ``pod_names`` order): cumulative bucket counts (+Inf last, which
        is the pod's _count) and the latency _sum."""
        dep = self.dep
        replicas = len(self._pod_base)
        index = np.arange(replicas, dtype=np.int64)[:, None]
        cum = self._pod_base + (dep.buckets_cum - self._pod_base_total + index) // replicas
        sums = self._pod_base_sum + (dep.latency_sum - self._pod_base_latency) / replicas
        return cum, sums

    def rescale(self, replicas: int) -> None:
        """Follow a change of the deployment's replica count (a no-op when unchanged); call
        it before the deployment's counters move on."""
        if replicas == len(self._pod_serials):
            return
        cum, sums = self.pod_counts()
        # Pod i keeps its counts and new pods start from zero; a scale-down removes the last
        # pods and folds their counts into the survivors, so the pods still sum to the
        # deployment (a real scale-down loses them).
        added = max(0, replicas - len(self._pod_serials))
        new = range(self._pods_started, self._pods_started + added)
        self._pod_serials = [*self._pod_serials[:replicas], *new]
        self._pods_started += added
        into = np.arange(len(cum)) % replicas
        self._pod_base = np.zeros((replicas, cum.shape[1]), dtype=np.int64)
        np.add.at(self._pod_base, into, cum)
        self._pod_base_sum = np.zeros(replicas, dtype=np.float64)
        np.add.at(self._pod_base_sum, into, sums)
        self._pod_base_total = self.dep.buckets_cum.copy()
        self._pod_base_latency = self.dep.latency_sum
        if "pod" in self.families:
            self._set_pod_prefixes()


def render_extra_families(
    out: list[str],
    families: frozenset[str],
    groups: Sequence[Sequence[ExtraSeries]],
    counts: Sequence[list[int]],
    texts: Sequence[Sequence[str]],
) -> None:
    """Append the ``families`` served, each one's samples contiguous, for ``groups`` in
    order: each group is the workloads of one namespace and name, whose counts add up in
    one series (their pods stay apart); ``counts[i]`` is group i's summed ``codes`` as a
    list and ``texts[i]`` as text."""
    by_code = (
        ("istio", "istio_requests_total", "istio_prefixes"),
        ("envoy", "envoy_cluster_upstream_rq", "envoy_prefixes"),
        ("seldon", "seldon_api_executor_server_requests_seconds_count", "seldon_prefixes"),
    )
    for family, metric, attribute in by_code:
        if family in families:
            out += family_header(metric, _HEADERS)
            for group, text in zip(groups, texts, strict=True):
                out.extend(map("".join, zip(getattr(group[0], attribute), text, strict=True)))
    if "pod" in families:
        out += family_header("model_pod_request_duration_seconds", _HEADERS)
        for s in (s for group in groups for s in group):
            cum, sums = s.pod_counts()
            for (buckets, sum_prefix, count_prefix), row, total in zip(
                s.pod_prefixes, cum.tolist(), sums.tolist(), strict=True
            ):
                out.extend(map("".join, zip(buckets, map(str, row), strict=True)))
                out.append(sum_prefix + repr(total))
                out.append(count_prefix + str(row[-1]))
    if "traefik" in families:
        out += family_header("traefik_service_requests_total", _HEADERS)
        # Deployments whose service names collide share one series (the sum of both).
        merged: dict[str, tuple[list[str], list[int]]] = {}
        for group, code_counts in zip(groups, counts, strict=True):
            s = group[0]
            seen = merged.get(s.traefik_service)
            if seen is None:
                merged[s.traefik_service] = (s.traefik_prefixes, code_counts)
            else:
                total = [a + b for a, b in zip(seen[1], code_counts, strict=True)]
                merged[s.traefik_service] = (seen[0], total)
        for prefixes, code_counts in merged.values():
            out.extend(map("".join, zip(prefixes, map(str, code_counts), strict=True)))
