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

from rollguard.execution.kube import ApiError, Cluster

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
QUERIES = Counter("rollguard_queries_total", "PromQL queries sent", ["policy"], registry=REGISTRY)
DECISIONS = Counter("rollguard_decisions_total", "Decisions created", ["action"], registry=REGISTRY)
TRANSITIONS = Counter(
    "rollguard_decision_transitions_total",
    "Decision phase transitions",
    ["phase"],
    registry=REGISTRY,
)
SCORE = Gauge(
    "rollguard_impact_score",
    "Latest impact score",
    ["namespace", "model_deployment"],
    registry=REGISTRY,
)
ERRORS = Counter("rollguard_errors_total", "Errors by kind", ["kind"], registry=REGISTRY)


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
