"""The workload simulator's Kubernetes I/O: a list-then-watch per kind it follows
(``Source``, ``Watcher``: Deployments, StatefulSets and Argo Rollouts), each re-listing after
a 410 or any other failure; the Rollouts' watch, whose CRD may not be installed, looks for it
again every ABSENT_RETRY_S and says so once. A Rollout's stable ReplicaSet is read when the
Rollout changes mid-update (``rollout_extractor``); what the objects mean is decided by the
pure ``devenv.workload.kinds``.

Called by ``devenv.workload.server`` (one thread per ``Watcher``) and by the unit tests, which
drive ``handle_event`` and ``Watcher`` with fake list functions.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from devenv.workload.fleet import Simulator
from devenv.workload.kinds import (
    DEPLOYMENT,
    POD_TEMPLATE_HASH_LABEL,
    ROLLOUT,
    ROLLOUT_RESOURCE,
    STATEFUL_SET,
    WorkloadInfo,
    extract_deployment,
    extract_rollout,
    extract_stateful_set,
    get_path,
    rollout_split,
)

# The whole simulator logs as one component, whichever module a line comes from.
logger = logging.getLogger("devenv.workload.server")

BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 5.0
WATCH_TIMEOUT_S = 60
LIST_REQUEST_TIMEOUT_S = 15.0
# A read timeout a bit above the server-side watch timeout catches half-dead connections.
WATCH_REQUEST_TIMEOUT = (5.0, WATCH_TIMEOUT_S + 15.0)
# How often to look again for a kind the cluster does not serve (Argo Rollouts' CRD absent).
ABSENT_RETRY_S = 15.0


def k8s_module(module: str) -> Any:
    """A module of the Kubernetes client, imported on first use."""
    # Imported lazily so the unit tests never need the client, and typed as Any because the
    # client is untyped (avoids per-call ignores under --strict).
    return importlib.import_module(module)


class GoneError(Exception):
    """The watch resource version expired (410); a full re-list is needed."""


Extract = Callable[[Mapping[str, Any]], WorkloadInfo | None]


@dataclass(frozen=True)
class Source:
    """One kind the simulator follows. ``list_all(*args, **kwargs)`` lists it in all
    namespaces (and, with ``watch=True``, watches it); ``extract`` reads one object of it;
    ``to_dict`` turns a listing into its API (camelCase dict) form. An ``optional`` kind (a
    CRD's) may be absent: a 404 on its list means there are none, and is retried slowly."""

    kind: str
    list_all: Callable[..., Any]
    args: tuple[Any, ...]
    extract: Extract
    to_dict: Callable[[Any], Any]
    optional: bool = False


class Watcher:
    """List-then-watch one kind forever, keeping ``sim`` in sync, until ``stop``: re-lists
    after any failure (at once after a 410, otherwise with backoff); an optional kind that is
    not served is looked for again every ``absent_retry_s``, said once."""

    def __init__(
        self,
        source: Source,
        sim: Simulator,
        stop: threading.Event,
        *,
        absent_retry_s: float = ABSENT_RETRY_S,
    ) -> None:
        self.source = source
        self.sim = sim
        self.stop = stop
        self.absent_retry_s = absent_retry_s
        self.what = f"{source.kind}s"
        self.absent = False
        self._backoff = BACKOFF_INITIAL_S
        self._gone_streak = 0

    def run(self) -> None:
        """Follow the kind until ``stop`` is set (the watch thread's target)."""
        api_exception: type[Exception] = k8s_module("kubernetes.client.exceptions").ApiException
        resource_version: str | None = None
        while not self.stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self.relist()
                    if resource_version is None:
                        self.stop.wait(self.absent_retry_s)
                        continue
                resource_version = self._follow(resource_version)
                # A watch that ran to its timeout proves the API is healthy again.
                self._healthy()
                continue
            except GoneError:
                gone = True
            except api_exception as exc:
                gone = getattr(exc, "status", None) == 410
                if not gone:
                    logger.warning(
                        "Kubernetes API error %s (%s) on %s; retrying in %.2fs",
                        getattr(exc, "status", None),
                        getattr(exc, "reason", exc),
                        self.what,
                        self._backoff,
                    )
            except Exception as exc:  # noqa: BLE001 -- any transport failure must not kill the watch
                gone = False
                logger.warning(
                    "Kubernetes API unreachable (%s: %.200s); serving last-known %s, "
                    "retrying in %.2fs",
                    type(exc).__name__,
                    exc,
                    self.what,
                    self._backoff,
                )
            # Re-list after every failure, not only 410: events may have been missed, and a
            # list of a test cluster is cheap. State is only replaced once a list succeeds.
            resource_version = None
            self._wait_after_failure(gone)

    def relist(self) -> str | None:
        """List the kind and make ``sim`` follow exactly what the list holds; returns the
        resource version to watch from, or None when the cluster does not serve an optional
        kind (then it has none of it)."""
        api_exception: type[Exception] = k8s_module("kubernetes.client.exceptions").ApiException
        try:
            listing = self.source.list_all(
                *self.source.args, _request_timeout=LIST_REQUEST_TIMEOUT_S
            )
        except api_exception as exc:
            if not (self.source.optional and getattr(exc, "status", None) == 404):
                raise
            self.sim.sync([], kind=self.source.kind)
            if not self.absent:
                self.absent = True
                logger.info(
                    "The cluster serves no %s (is its CRD installed?); looking again every %.0fs",
                    self.what,
                    self.absent_retry_s,
                )
            return None
        raw = self.source.to_dict(listing)
        infos = [self.source.extract(item) for item in raw.get("items") or []]
        self.sim.sync((i for i in infos if i is not None), kind=self.source.kind)
        if self.absent:
            self.absent = False
            logger.info("The cluster serves %s now; following them", self.what)
        resource_version = str(raw["metadata"]["resourceVersion"])
        logger.debug("Listed %s at resourceVersion %s", self.what, resource_version)
        return resource_version

    def _follow(self, resource_version: str) -> str:
        """Apply the watch's events until it times out or ``stop``; the version reached."""
        w = k8s_module("kubernetes.watch").Watch()
        for event in w.stream(
            self.source.list_all,
            *self.source.args,
            resource_version=resource_version,
            timeout_seconds=WATCH_TIMEOUT_S,
            allow_watch_bookmarks=True,
            _request_timeout=WATCH_REQUEST_TIMEOUT,
        ):
            if self.stop.is_set():
                w.stop()
                break
            resource_version = handle_event(
                self.sim, event, resource_version, extract=self.source.extract
            )
            self._healthy()
        return resource_version

    def _healthy(self) -> None:
        self._gone_streak = 0
        self._backoff = BACKOFF_INITIAL_S

    def _wait_after_failure(self, gone: bool) -> None:
        if gone:
            logger.info("Watch of %s expired (410 Gone); re-listing them", self.what)
            self._gone_streak += 1
            if self._gone_streak == 1:
                return  # the normal case: re-list straight away
        self.stop.wait(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)


def handle_event(
    sim: Simulator,
    event: Mapping[str, Any],
    resource_version: str,
    *,
    extract: Extract = extract_deployment,
) -> str:
    """Apply one watch event of the kind ``extract`` reads; returns the resource version to
    resume from."""
    kind = event.get("type")
    raw = event.get("raw_object")
    if not isinstance(raw, dict):
        raw = {}
    if kind == "ERROR":
        # The client normally turns these into ApiException; kept for robustness.
        if raw.get("code") == 410:
            raise GoneError
        logger.warning("Watch error event: %s", raw.get("message", raw))
        return resource_version
    new_rv = get_path(raw, "metadata", "resourceVersion")
    if kind == "BOOKMARK":
        return str(new_rv) if new_rv else resource_version
    info = extract(raw)
    if info is not None:
        if kind == "DELETED":
            sim.remove(info.namespace, info.name, info.kind)
        elif kind in ("ADDED", "MODIFIED"):
            sim.apply(info)
    return str(new_rv) if new_rv else resource_version


def rollout_extractor(apps: Any) -> Extract:
    """``extract_rollout`` given the ReplicaSet it needs, read with ``apps`` (an AppsV1Api)
    only while an update is in progress (when ``rollout_split`` names a stable one)."""

    def extract(obj: Mapping[str, Any]) -> WorkloadInfo | None:
        split = rollout_split(obj)
        namespace = get_path(obj, "metadata", "namespace")
        if split is None or not isinstance(namespace, str):
            return extract_rollout(obj)
        listing = apps.list_namespaced_replica_set(
            namespace,
            label_selector=f"{POD_TEMPLATE_HASH_LABEL}={split[0]}",
            _request_timeout=LIST_REQUEST_TIMEOUT_S,
        )
        items = apps.api_client.sanitize_for_serialization(listing).get("items") or []
        return extract_rollout(obj, items)

    return extract


def build_sources() -> list[Source]:
    """The kinds the simulator follows, each with an API client of its own (one per watch
    thread); needs a loaded kubeconfig."""
    k8s = k8s_module("kubernetes.client")
    deployments, stateful_sets, replica_sets = (k8s.AppsV1Api(k8s.ApiClient()) for _ in range(3))
    rollouts = k8s.CustomObjectsApi(replica_sets.api_client)
    return [
        Source(
            DEPLOYMENT,
            deployments.list_deployment_for_all_namespaces,
            (),
            extract_deployment,
            deployments.api_client.sanitize_for_serialization,
        ),
        Source(
            STATEFUL_SET,
            stateful_sets.list_stateful_set_for_all_namespaces,
            (),
            extract_stateful_set,
            stateful_sets.api_client.sanitize_for_serialization,
        ),
        Source(
            ROLLOUT,
            rollouts.list_cluster_custom_object,
            ROLLOUT_RESOURCE,
            rollout_extractor(replica_sets),
            replica_sets.api_client.sanitize_for_serialization,
            optional=True,
        ),
    ]
