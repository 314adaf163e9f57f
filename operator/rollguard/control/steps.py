"""One step of a decision's lifecycle: what the lifecycle keeps between steps (``Lifecycle``),
the decision as last persisted (``Step``) and a transition decided for it (``Transition``).

``Step.move`` is where a transition is written: the status patch, the metric, the Event and
audit line, then the ModelDeployment's escalation when the transition calls for one. The
modules that decide transitions (``execution``, ``validation``) return them as values;
``lifecycle`` runs the steps, ``closing`` exports and prunes final decisions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollguard.api.decision import RollbackDecisionSpec, RollbackDecisionStatus
from rollguard.control import reasons
from rollguard.control import telemetry as observe
from rollguard.core import notices
from rollguard.core.times import api_seconds, format_time, to_datetime
from rollguard.kube.client import Cluster

if TYPE_CHECKING:
    from rollguard.control.notifications import Notifier

log = logging.getLogger("rollguard")

# The reasons of transitions that say a change of the workload did not help: what
# ``core.notices.raised`` calls ValidationFailed. (Executed: a transition that records an
# execution that reached its target, ``status.execution.patched``.)
VALIDATION_FAILED = frozenset({reasons.VALIDATION_FAILED, reasons.ROLLOUT_TIMED_OUT})


def iso(now: float) -> str:
    """``now`` as the API writes a time (``format_time``)."""
    return format_time(to_datetime(now))


@dataclass(frozen=True)
class Observed:
    """Validation evaluations seen: the highest and the last score, how many, and the last
    one's time."""

    worst: float | None
    last: float | None
    count: int
    seen: float | None

    def fields(self) -> dict[str, Any]:
        """The ``status.validation`` fields that record them."""
        return {
            "observedMaxScore": self.worst,
            "observedLastScore": self.last,
            "evaluations": self.count,
            "lastEvaluationAt": iso(self.seen) if self.seen is not None else None,
        }


class Memory:
    """What the lifecycle keeps in memory between steps: one lock per decision (one caller at
    a time moves it), and the validation evaluations seen since a decision's validation was
    last written (written when they matter, see ``validation``; a restart loses only these)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._observed: dict[tuple[str, str, str], Observed] = {}

    @contextmanager
    def serialised(self, namespace: str, name: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((namespace, name), threading.Lock())
        with lock:
            yield

    def observed(self, key: tuple[str, str, str]) -> Observed | None:
        return self._observed.get(key)

    def remember(self, key: tuple[str, str, str], observed: Observed) -> None:
        self._observed[key] = observed

    def forget(self, key: tuple[str, str, str]) -> None:
        self._observed.pop(key, None)


@dataclass(frozen=True)
class Lifecycle:
    """What moves decisions: the API, the recorder, the settings that shape a lifecycle, and
    the memory kept between steps (one per operator: the handlers hold it)."""

    cluster: Cluster
    recorder: observe.Recorder
    keep_decisions: int = 20
    scrape_interval: float = 15.0
    memory: Memory = field(default_factory=Memory, compare=False, repr=False)
    notifier: Notifier | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Transition:
    """A decision's move to ``phase``: the Event's reason and message, the status fields
    written with it, and why its ModelDeployment escalates to humans afterwards (None: it
    does not)."""

    phase: str
    reason: str
    message: str
    warning: bool = False
    status: Mapping[str, Any] = field(default_factory=dict)
    escalate: str | None = None


class Step:
    """One call of ``advance``: the decision as last persisted, and how to move it."""

    def __init__(self, life: Lifecycle, obj: Mapping[str, Any], now: float) -> None:
        self.life = life
        self.obj: Mapping[str, Any] = obj
        self.now = now
        self.spec = RollbackDecisionSpec.model_validate(obj["spec"])
        self.meta = obj["metadata"]
        self.namespace = str(self.meta["namespace"])
        self.name = str(self.meta["name"])
        self.carry: dict[str, Any] = {}  # status fields written with the next transition

    @property
    def status(self) -> RollbackDecisionStatus:
        return RollbackDecisionStatus.model_validate(self.obj.get("status") or {})

    @property
    def created(self) -> float:
        """When the decision was created (``now`` for one not stored yet)."""
        created = api_seconds(self.meta.get("creationTimestamp"))
        return self.now if created is None else created

    def move(self, transition: Transition) -> None:
        """Write ``transition``: status (with the messages it raises, as Pending), metric,
        Event and audit line, then the escalation; then hand the messages to the notifier."""
        patch = {
            **self.carry,
            "phase": transition.phase,
            "message": transition.message,
            **transition.status,
        }
        told = self._notifications(transition)
        if told:
            patch["notifications"] = told
        self.patch(patch)
        self.carry = {}
        if told and self.life.notifier is not None:
            self.life.notifier.resume(self.obj)
        observe.TRANSITIONS.labels(phase=transition.phase).inc()
        self.life.recorder.transition(
            obj=self.obj,
            reason=transition.reason,
            message=transition.message,
            warning=transition.warning,
            phase=transition.phase,
            modelDeployment=self.spec.model_deployment_ref.name,
        )
        if transition.escalate is not None:
            self._escalate(transition.escalate)

    def _notifications(self, transition: Transition) -> list[dict[str, Any]]:
        """``status.notifications`` with the messages ``transition`` raises; [] for none.
        Never stops the transition: without its messages it is still written."""
        if self.life.notifier is None:
            return []
        events = notices.raised(
            transition.phase,
            changed_workload=bool((transition.status.get("execution") or {}).get("patched")),
            validation_failed=transition.reason in VALIDATION_FAILED,
            escalates=transition.escalate is not None,
        )
        try:
            return self.life.notifier.entries(self.spec, self.status, events, now=self.now)
        except Exception:  # a message is never worth a decision
            log.exception(
                "Could not raise the notifications of RollbackDecision %s/%s",
                self.namespace,
                self.name,
            )
            return []

    def patch(self, status: Mapping[str, Any]) -> None:
        """Patch the decision's status, and hold the decision as the API server returns it."""
        self.obj = self.life.cluster.patch_status(
            "RollbackDecision", namespace=self.namespace, name=self.name, status=status
        )

    def model_deployment(self) -> dict[str, Any]:
        return self.life.cluster.get(
            "ModelDeployment", namespace=self.namespace, name=self.spec.model_deployment_ref.name
        )

    def _escalate(self, why: str) -> None:
        """Stop automatic actions on the ModelDeployment until a human clears it."""
        mdep = self.model_deployment()
        name = mdep["metadata"]["name"]
        self.life.cluster.patch_status(
            "ModelDeployment",
            namespace=self.namespace,
            name=name,
            status={"phase": "Escalated", "escalatedAt": iso(self.now), "escalationReason": why},
        )
        self.life.recorder.transition(
            obj=mdep,
            reason=reasons.ESCALATED,
            message=f"ModelDeployment {self.namespace}/{name} escalated to humans: {why}",
            warning=True,
        )
