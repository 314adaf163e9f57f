"""The workload simulator's fleet: ``Simulator``, every simulated deployment keyed by namespace
and name, kept in step with the Deployments it is told about, advanced a tick at a time, and
rendered as one exposition (the model server's families, then the extra ones served). A
Deployment reaches it as a ``DeploymentInfo``, which ``extract_deployment`` reads from the
API object.

Thread-safe, and PURE apart from logging: the Kubernetes watch, the tick thread and the HTTP
server that drive it live in ``devenv.workload.server``. Called by ``devenv.workload.server`` and by the
unit tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from devenv.workload.families import EXTRA_FAMILIES, ExtraSeries, render_extra_families
from devenv.workload.profile import PROFILE_ENV, SimDeployment, parse_profile, render_model_families

# The whole simulator logs as one component, whichever module a line comes from.
logger = logging.getLogger("devenv.workload.server")


# -- what the fleet follows ------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentInfo:
    """What the simulator needs from a Deployment object.

    ``env`` is None when the first container has no SIM_PROFILE, i.e. not simulated.
    """

    namespace: str
    name: str
    env: dict[str, str | None] | None
    replicas: int


def get_path(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...`` over dicts (str steps) and lists (int steps); None where
    a step is missing or the wrong kind."""
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
    namespace = get_path(obj, "metadata", "namespace")
    name = get_path(obj, "metadata", "name")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    replicas_raw = get_path(obj, "spec", "replicas")
    # spec.replicas defaults to 1 when unset; "min 1" keeps scaled-to-zero fleets visible.
    replicas = replicas_raw if isinstance(replicas_raw, int) else 1
    replicas = max(1, replicas)
    env_list = get_path(obj, "spec", "template", "spec", "containers", 0, "env")
    env: dict[str, str | None] = {}
    if isinstance(env_list, list):
        for item in env_list:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                value = item.get("value")
                env[item["name"]] = value if isinstance(value, str) else None
    if PROFILE_ENV not in env:
        return DeploymentInfo(namespace, name, None, replicas)
    return DeploymentInfo(namespace, name, env, replicas)


# -- the fleet -------------------------------------------------------------------------------


class Simulator:
    """All simulated deployments; every public method is safe to call from any thread."""

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
        self._deps: dict[tuple[str, str], SimDeployment] = {}
        self._series: dict[tuple[str, str], ExtraSeries] = {}
        self._order: list[tuple[SimDeployment, ExtraSeries]] | None = None
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
                dep = SimDeployment(
                    self.seed,
                    info.namespace,
                    info.name,
                    profile=profile,
                    replicas=info.replicas,
                    tick_seconds=self.tick_seconds,
                )
                self._deps[key] = dep
                self._series[key] = ExtraSeries(dep, self.families)
                self._order = None
                logger.info(
                    "Deployment %s added, serves profile %s (replicas=%d)",
                    ref,
                    profile.name,
                    info.replicas,
                )
            elif dep.profile != profile or dep.replicas != info.replicas:
                old = dep.profile
                self._series[key].rescale(info.replicas)
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
            del self._series[(namespace, name)]
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

    def _sorted(self) -> list[tuple[SimDeployment, ExtraSeries]]:
        if self._order is None:
            self._order = [(self._deps[k], self._series[k]) for k in sorted(self._deps)]
        return self._order

    def render(self) -> str:
        """Text exposition format 0.0.4; each family's samples are contiguous."""
        with self._lock:
            rows = [(d, s) for d, s in self._sorted() if d.profile.exported]
            deps = [d for d, _ in rows]
            counts = [d.codes.tolist() for d in deps]
            texts = [list(map(str, c)) for c in counts]
            out: list[str] = []
            render_model_families(out, deps, texts)
            render_extra_families(out, self.families, [s for _, s in rows], counts, texts)
        out.append("")
        return "\n".join(out)

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        """namespace -> deployment -> summary, for /state and for humans debugging tests."""
        result: dict[str, dict[str, dict[str, Any]]] = {}
        with self._lock:
            for d, s in self._sorted():
                result.setdefault(d.namespace, {})[d.name] = {
                    "profile": d.profile.name,
                    "replicas": d.replicas,
                    "rps": d.rps,
                    "error_rate": d.profile.server_error_rate,
                    "latency_median_ms": d.profile.latency_median_s * 1000.0,
                    "exported": d.profile.exported,
                    "in_burst": d.in_burst,
                    "requests_total": int(d.codes.sum()),
                    "pods": list(s.pod_names),
                }
        return result
