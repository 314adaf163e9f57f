"""How the operator tells people what it did: for every transition an Event with a distinct
reason, a metric, and one JSON audit line that a log pipeline can keep beyond etcd."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from rollguard.kube.client import ApiError, Cluster

log = logging.getLogger("rollguard")

REGISTRY = CollectorRegistry()
EVALUATIONS = Counter(
    "rollguard_evaluations_total", "ModelDeployments evaluated", ["policy"], registry=REGISTRY
)
CYCLE_SECONDS = Histogram(
    "rollguard_cycle_duration_seconds",
    "Duration of one policy evaluation cycle",
    ["policy"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
LOOP_LAG_SECONDS = Histogram(
    "rollguard_event_loop_lag_seconds",
    "How late the operator's event loop ran a timer (a stall delays every watch and handler)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
GC_SECONDS = Histogram(
    "rollguard_gc_pause_seconds",
    "Python garbage-collection pauses by generation (they stop the event loop too)",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
CACHE_READS = Counter(
    "rollguard_cache_reads_total",
    "Reads of Deployments and ReplicaSets by evaluation cycles from the watch caches "
    "(hit) or, on a miss, from the API server (miss), and the ReplicaSet histories re-read "
    "from the API server because the cached one may lag behind (recheck)",
    ["kind", "result"],
    registry=REGISTRY,
)
QUERIES = Counter("rollguard_queries_total", "PromQL queries sent", ["policy"], registry=REGISTRY)
DECISIONS = Counter("rollguard_decisions_total", "Decisions created", ["action"], registry=REGISTRY)
TRANSITIONS = Counter(
    "rollguard_decision_transitions_total",
    "Decision phase transitions",
    ["phase"],
    registry=REGISTRY,
)
REVIEWS = Counter(
    "rollguard_decision_reviews_total",
    "Post-decision reviews recorded",
    ["verdict", "regression"],
    registry=REGISTRY,
)
SCORE = Gauge(
    "rollguard_impact_score",
    "Latest impact score",
    ["namespace", "model_deployment"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "rollguard_notifications_total",
    "Notification attempts by receiver, event and result (delivered, pending: retried, failed)",
    ["receiver", "event", "result"],
    registry=REGISTRY,
)
NOTIFY_QUEUE = Gauge(
    "rollguard_notifications_queued", "Messages waiting for delivery", registry=REGISTRY
)
NOTIFY_DELAY = Histogram(
    "rollguard_notification_delay_seconds",
    "From the transition to a receiver taking its message",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900),
    registry=REGISTRY,
)
ERRORS = Counter("rollguard_errors_total", "Errors by kind", ["kind"], registry=REGISTRY)
MDEP_PHASE = Gauge(
    "rollguard_model_deployment_phase",
    "1 for the ModelDeployment's current phase, 0 for every other phase",
    ["namespace", "model_deployment", "phase"],
    registry=REGISTRY,
)
PENDING_SINCE = Gauge(
    "rollguard_decision_pending_approval_since_seconds",
    "Creation time (Unix seconds) of each decision that waits for a human approval",
    ["namespace", "decision", "model_deployment"],
    registry=REGISTRY,
)

# What the gauges above currently carry, so that objects that went away stop being reported.
_phase_keys: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
_pending_keys: set[tuple[str, str, str]] = set()
_gauge_lock = threading.Lock()


def set_phase(
    namespace: str, name: str, phase: str, phases: tuple[str, ...], *, owner: str
) -> None:
    """One series per phase, 1 for ``phase`` (the kube-state-metrics convention); ``owner`` is
    the policy whose cycle reports it."""
    with _gauge_lock:
        _phase_keys[(namespace, name)] = (owner, phases)
        for p in phases:
            MDEP_PHASE.labels(namespace=namespace, model_deployment=name, phase=p).set(
                1.0 if p == phase else 0.0
            )


def keep_phases(owner: str, bound: set[tuple[str, str]]) -> None:
    """Forget the phase series ``owner`` reported for ModelDeployments no longer ``bound`` to it
    (deleted, or moved to another policy that reports them from now on)."""
    with _gauge_lock:
        gone = [k for k, (o, _) in _phase_keys.items() if o == owner and k not in bound]
        for key in gone:
            for p in _phase_keys.pop(key)[1]:
                MDEP_PHASE.remove(key[0], key[1], p)


def set_pending(namespace: str, decision: str, model_deployment: str, since: float | None) -> None:
    """Report a decision as waiting for approval since ``since``, or (None) no longer."""
    key = (namespace, decision, model_deployment)
    with _gauge_lock:
        if since is not None:
            PENDING_SINCE.labels(*key).set(since)
            _pending_keys.add(key)
        elif key in _pending_keys:
            PENDING_SINCE.remove(*key)
            _pending_keys.discard(key)


def forget_decision(namespace: str, decision: str) -> None:
    """A decision was deleted: stop reporting it."""
    with _gauge_lock:
        for key in [k for k in _pending_keys if k[:2] == (namespace, decision)]:
            PENDING_SINCE.remove(*key)
            _pending_keys.discard(key)


def serve_metrics(port: int) -> None:
    if port:
        start_http_server(port, registry=REGISTRY)


class AuditLog:
    """One JSON object per line, to stdout or a file (opened for append)."""

    def __init__(self, target: str) -> None:
        self._lock = threading.Lock()
        self._stream: TextIO = sys.stdout if target == "-" else open(target, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(
            {"ts": datetime.now(tz=UTC).isoformat(), **record}, sort_keys=True, default=str
        )
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class Recorder:
    """Events, audit lines and metrics for transitions, in one call."""

    def __init__(self, *, cluster: Cluster, audit: AuditLog) -> None:
        self.cluster = cluster
        self.audit = audit

    def transition(
        self,
        *,
        obj: Mapping[str, Any],
        reason: str,
        message: str,
        warning: bool = False,
        **fields: Any,
    ) -> None:
        meta = obj["metadata"]
        self.audit.write(
            {
                "event": reason,
                "kind": obj.get("kind"),
                "namespace": meta.get("namespace"),
                "name": meta.get("name"),
                "message": message,
                **fields,
            }
        )
        log.info("%s: %s", reason, message)
        try:
            self.cluster.event(
                regarding=obj,
                reason=reason,
                message=message,
                type_="Warning" if warning else "Normal",
            )
        except ApiError as err:
            # An Event is a courtesy; losing one must never stop a rollback.
            ERRORS.labels(kind="event").inc()
            log.warning("Could not post Event %s for %s: %s", reason, meta.get("name"), err.reason)
