"""The workload simulator's fleet: ``Simulator``, every simulated workload keyed by namespace,
name and kind, kept in step with the workloads it is told about (``WorkloadInfo``s, which
``devenv.workload.kinds`` reads from API objects), advanced a tick at a time, and rendered
as one exposition (the model server's families, then the extra ones served).

Kinds that share a namespace and name (a Deployment and a StatefulSet both called ``fraud``)
are simulated apart, each with its own counters, stream and pods, and their series add up:
one ``model_requests_total{deployment="fraud"}``, the sum of both, as a query summing over
the pods of both would read; deleting one drops its share (which reads as a counter reset,
as deleting a lone Deployment does). The series are served while every workload of the name
exports them.

Thread-safe, and PURE apart from logging: the Kubernetes watches, the tick thread and the HTTP
server that drive it live in ``devenv.workload.server``. Called by ``devenv.workload.server``
and by the unit tests.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable
from typing import Any

from devenv.workload.counters import SimDeployment, render_model_families
from devenv.workload.families import EXTRA_FAMILIES, ExtraSeries, render_extra_families
from devenv.workload.kinds import DEPLOYMENT, WorkloadInfo
from devenv.workload.profile import Parts, Profile, parse_profile

# The whole simulator logs as one component, whichever module a line comes from.
logger = logging.getLogger("devenv.workload.server")

# (namespace, name, kind): sorted, the kinds of one name are neighbours.
Key = tuple[str, str, str]


def describe(parts: Parts) -> str:
    """What a workload serves, for log lines: ``profile errors``, or with a Rollout mid-update
    ``profiles healthy 50% + errors 50%``."""
    if len(parts) == 1:
        return f"profile {parts[0][0].name}"
    return "profiles " + " + ".join(f"{p.name} {share:.0%}" for p, share in parts)


def _codes(group: list[SimDeployment]) -> list[int]:
    """Requests by code of workloads that share one series."""
    if len(group) == 1:
        codes: list[int] = group[0].codes.tolist()
        return codes
    return [sum(column) for column in zip(*(d.codes.tolist() for d in group), strict=True)]


class Simulator:
    """All simulated workloads; every public method is safe to call from any thread."""

    def __init__(
        self, seed: int, tick_seconds: float = 0.25, families: Iterable[str] = EXTRA_FAMILIES
    ) -> None:
        """``families``: which of EXTRA_FAMILIES to serve besides the model server's own."""
        if not tick_seconds > 0:
            raise ValueError("tick_seconds must be > 0")
        self.families = frozenset(families)
        unknown = sorted(self.families - set(EXTRA_FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}; expected some of {EXTRA_FAMILIES}")
        self.seed = seed
        self.tick_seconds = tick_seconds
        self._lock = threading.Lock()
        self._deps: dict[Key, SimDeployment] = {}
        self._series: dict[Key, ExtraSeries] = {}
        self._groups: list[list[tuple[SimDeployment, ExtraSeries]]] | None = None
        self._warned: set[tuple[Key, str]] = set()

    # -- membership -----------------------------------------------------------------------

    def _parts(self, info: WorkloadInfo, key: Key) -> Parts:
        """The profiles ``info``'s replicas run; warns once per workload and problem. Call
        with the lock held."""
        parts: list[tuple[Profile, float]] = []
        for env, share in info.shares():
            profile, warnings = parse_profile(env)
            parts.append((profile, share))
            for w in warnings:
                if (key, w) not in self._warned:
                    self._warned.add((key, w))
                    logger.warning("%s %s/%s: %s", info.kind, info.namespace, info.name, w)
        return tuple(parts)

    def apply(self, info: WorkloadInfo) -> None:
        """Add, update or (if it no longer carries SIM_PROFILE) remove one workload."""
        if info.env is None:
            self.remove(info.namespace, info.name, info.kind)
            return
        key = (info.namespace, info.name, info.kind)
        ref = f"{info.kind} {info.namespace}/{info.name}"
        with self._lock:
            parts = self._parts(info, key)
            dep = self._deps.get(key)
            if dep is None:
                dep = SimDeployment(
                    self.seed,
                    info.namespace,
                    info.name,
                    parts=parts,
                    replicas=info.replicas,
                    tick_seconds=self.tick_seconds,
                    kind=info.kind,
                )
                self._deps[key] = dep
                self._series[key] = ExtraSeries(dep, self.families)
                self._groups = None
                logger.info("%s added, serves %s (replicas=%d)", ref, describe(parts), dep.replicas)
            elif dep.parts != parts or dep.replicas != info.replicas:
                old = dep.parts
                self._series[key].rescale(info.replicas)
                dep.reconfigure(parts, info.replicas)
                if old != parts:
                    logger.info(
                        "%s now serves %s (replicas=%d)", ref, describe(parts), dep.replicas
                    )
                else:
                    logger.info("%s now has %d replicas (%s)", ref, dep.replicas, describe(parts))

    def remove(self, namespace: str, name: str, kind: str = DEPLOYMENT) -> bool:
        key = (namespace, name, kind)
        with self._lock:
            dep = self._deps.pop(key, None)
            if dep is None:
                return False
            del self._series[key]
            self._groups = None
            self._warned = {w for w in self._warned if w[0] != key}
        logger.info("%s %s/%s removed", kind, namespace, name)
        return True

    def sync(self, infos: Iterable[WorkloadInfo], kind: str = DEPLOYMENT) -> None:
        """Make the set of simulated workloads of ``kind`` equal to a full (re-)list of that
        kind, ``infos``; the other kinds are left alone."""
        wanted: set[Key] = set()
        for info in infos:
            if info.kind != kind:
                raise ValueError(f"sync of {kind}s was given a {info.kind}")
            if info.env is not None:
                wanted.add((info.namespace, info.name, info.kind))
            self.apply(info)
        with self._lock:
            stale = [k for k in self._deps if k[2] == kind and k not in wanted]
        for ns, name, _ in stale:
            self.remove(ns, name, kind)

    def get(self, namespace: str, name: str, kind: str = DEPLOYMENT) -> SimDeployment | None:
        with self._lock:
            return self._deps.get((namespace, name, kind))

    # -- time -------------------------------------------------------------------------------

    def tick(self, count: int = 1) -> None:
        with self._lock:
            deps = list(self._deps.values())
            for _ in range(count):
                for dep in deps:
                    dep.tick()

    # -- output -----------------------------------------------------------------------------

    def _grouped(self) -> list[list[tuple[SimDeployment, ExtraSeries]]]:
        """The workloads by namespace and name, in order. Call with the lock held."""
        if self._groups is None:
            rows = [(k, (self._deps[k], self._series[k])) for k in sorted(self._deps)]
            self._groups = [
                [row for _, row in group]
                for _, group in itertools.groupby(rows, key=lambda row: row[0][:2])
            ]
        return self._groups

    def render(self) -> str:
        """Text exposition format 0.0.4; each family's samples are contiguous."""
        with self._lock:
            groups = [g for g in self._grouped() if all(d.exported for d, _ in g)]
            counts = [_codes([d for d, _ in g]) for g in groups]
            texts = [list(map(str, c)) for c in counts]
            out: list[str] = []
            render_model_families(out, [[d for d, _ in g] for g in groups], texts)
            render_extra_families(
                out, self.families, [[s for _, s in g] for g in groups], counts, texts
            )
        out.append("")
        return "\n".join(out)

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        """namespace -> workload -> summary, for /state and for humans debugging tests; a
        Deployment is keyed by its name, another kind by ``{kind}/{name}``."""
        result: dict[str, dict[str, dict[str, Any]]] = {}
        with self._lock:
            for d, s in itertools.chain.from_iterable(self._grouped()):
                key = d.name if d.kind == DEPLOYMENT else f"{d.kind}/{d.name}"
                result.setdefault(d.namespace, {})[key] = {
                    "kind": d.kind,
                    "profile": d.profile.name,
                    "profiles": [[p.name, share] for p, share in d.parts],
                    "replicas": d.replicas,
                    "rps": d.rps,
                    "error_rate": d.profile.server_error_rate,
                    "latency_median_ms": d.profile.latency_median_s * 1000.0,
                    "exported": d.exported,
                    "in_burst": d.in_burst,
                    "requests_total": int(d.codes.sum()),
                    "pods": list(s.pod_names),
                }
        return result
