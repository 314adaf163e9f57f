"""Telling people: a decision's transition becomes one message per subscribed receiver,
delivered at least once, off the decision's path.

A transition's write carries its messages as ``Pending`` entries in the decision's
``status.notifications`` (``entries``), so a message raised is never lost: after a restart or
on the replica that takes over, the lifecycle hands the stored entries back (``resume``, on
every step of a decision with messages pending). Worker threads make the attempts
(``control.delivery``), retried with backoff (``core.notices.retry_after``):

- one attempt per receiver at a time, so a slow or unreachable receiver holds up only its own
  messages;
- only while the lifecycle keeps handing a message back: a replica that stopped acting (Kopf
  pauses its decision daemons) lets its messages lapse, and the acting one delivers them.

Nothing here waits for a receiver while a decision moves, and no URL or token reaches a log
line, an Event or a status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollguard.api.decision import (
    Notification,
    RollbackDecisionSpec,
    RollbackDecisionStatus,
)
from rollguard.api.policy import Notify, NotifyOn, RollbackPolicySpec
from rollguard.control import telemetry as observe
from rollguard.control.delivery import Delivery, Key, Serialised
from rollguard.control.posting import post
from rollguard.control.receivers import ReceiversSource, Request
from rollguard.core import notices
from rollguard.core.times import to_datetime
from rollguard.kube.client import ApiError, Cluster

log = logging.getLogger("rollguard")

POLICY_TTL = 10.0  # seconds a policy's subscriptions are reused before they are read again
WORKERS = 4
LAPSE = 30.0  # seconds without the lifecycle handing a message back before it lapses here
MAX_ENTRIES = 64  # status.notifications' maxItems


@dataclass
class _Job:
    key: Key
    due: float
    errors: int = 0  # attempts that failed on the API, not on the receiver

    @property
    def receiver(self) -> str:
        return self.key[2]


class Notifier:
    """The operator's notifications: which entries a transition raises, and the workers that
    deliver them. ``serialised``: the lifecycle's lock per decision, held while a delivery is
    recorded, so a transition's write and a delivery's never overwrite each other."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        receivers: ReceiversSource,
        serialised: Serialised,
        send: Callable[[Request, float], None] = post,
        clock: Callable[[], float] = time.time,
        lapse: float = LAPSE,
    ) -> None:
        self.cluster = cluster
        self.receivers = receivers
        self.delivery = Delivery(cluster, receivers, send, serialised, clock)
        self._clock = clock
        self._lapse = lapse
        self._cv = threading.Condition()
        self._jobs: dict[Key, _Job] = {}
        self._handed: dict[Key, float] = {}  # when the lifecycle last handed each one over
        self._busy: set[str] = set()  # receivers with an attempt in flight
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._policies: dict[tuple[str, str], tuple[float, list[Notify]]] = {}

    # --- raising ----------------------------------------------------------------------

    def subscriptions(self, spec: RollbackDecisionSpec) -> list[Notify]:
        """The ``notify`` list of the decision's policy, read at most every POLICY_TTL
        seconds; the last one read while it cannot be read again, none once it is gone."""
        key = (spec.policy.namespace, spec.policy.name)
        now = self._clock()
        cached = self._policies.get(key)
        if cached is not None and now - cached[0] < POLICY_TTL:
            return cached[1]
        try:
            obj = self.cluster.get("RollbackPolicy", namespace=key[0], name=key[1])
            notify = list(RollbackPolicySpec.model_validate(obj["spec"]).notify or ())
        except ApiError as err:
            if err.status == 404:
                self._policies.pop(key, None)
                return []
            log.warning("Could not read RollbackPolicy %s/%s to notify: %s", *key, err.reason)
            return cached[1] if cached is not None else []
        except ValueError:
            return []  # an invalid policy reports itself; its decisions notify nobody
        self._policies[key] = (now, notify)
        return notify

    def entries(
        self,
        spec: RollbackDecisionSpec,
        status: RollbackDecisionStatus,
        events: Sequence[NotifyOn],
        *,
        now: float,
    ) -> list[dict[str, Any]]:
        """The decision's ``status.notifications`` with the messages ``events`` raise added
        as Pending (each receiver and event once per decision); ``[]`` when none is added."""
        if not events:
            return []
        have = {(n.receiver, n.transition) for n in status.notifications}
        fresh = [
            Notification(
                receiver=receiver, transition=event, state="Pending", raised_at=to_datetime(now)
            )
            for receiver, event in notices.subscribed(self.subscriptions(spec), events)
            if (receiver, event) not in have
        ]
        room = MAX_ENTRIES - len(status.notifications)
        if len(fresh) > room:
            log.warning(
                "Dropped %d notification(s) of %s: a decision records at most %d",
                len(fresh) - max(room, 0), spec.model_deployment_ref.name, MAX_ENTRIES,
            )  # fmt: skip
            fresh = fresh[: max(room, 0)]
        if not fresh:
            return []
        return [n.wire() for n in (*status.notifications, *fresh)]

    def resume(self, obj: Mapping[str, Any]) -> None:
        """Hand over every Pending message of the decision ``obj`` (queued once; each
        hand-over keeps a queued message from lapsing)."""
        meta = obj["metadata"]
        status = RollbackDecisionStatus.model_validate(obj.get("status") or {})
        now = self._clock()
        with self._cv:
            for n in status.notifications:
                if n.state != "Pending":
                    continue
                key = (meta["namespace"], meta["name"], n.receiver, n.transition)
                self._handed[key] = now
                if key not in self._jobs:
                    last = n.last_attempt_at.timestamp() if n.last_attempt_at else 0.0
                    wait = notices.retry_after(n.attempts) if n.attempts else 0.0
                    self._jobs[key] = _Job(key, last + (wait or 0.0))
            observe.NOTIFY_QUEUE.set(len(self._jobs))
            self._cv.notify_all()

    # --- delivering -------------------------------------------------------------------

    def start(self, workers: int = WORKERS) -> None:
        for i in range(workers):
            t = threading.Thread(target=self._work, name=f"rollguard-notify-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout)

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued; whether it emptied within ``timeout`` seconds."""
        end = time.monotonic() + timeout
        with self._cv:
            while self._jobs and time.monotonic() < end:
                self._cv.wait(0.05)
            return not self._jobs

    def _next(self) -> _Job | None:
        """The earliest due message whose receiver is free (waiting for one); None once
        stopping. Messages the lifecycle stopped handing over lapse here."""
        with self._cv:
            while not self._stopping:
                now = self._clock()
                for key in [k for k in self._jobs if now - self._handed.get(k, now) > self._lapse]:
                    del self._jobs[key]  # not ours to deliver any more (see the module)
                    self._handed.pop(key, None)
                free = [j for j in self._jobs.values() if j.receiver not in self._busy]
                job = min(free, key=lambda j: j.due, default=None)
                if job is not None and job.due <= now:
                    self._busy.add(job.receiver)
                    return job
                wait = 1.0 if job is None else min(job.due - now, 1.0)
                self._cv.wait(wait)
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                again = self.delivery.attempt(job.key)
                job.errors = 0
            except Exception as err:  # noqa: BLE001 - a worker outlives any one message
                job.errors += 1
                wait = notices.retry_after(job.errors) or notices.MAX_RETRY
                reason = err.reason if isinstance(err, ApiError) else type(err).__name__
                log.warning(
                    "Could not record a notification of RollbackDecision %s/%s: %s; "
                    "will retry in %gs", job.key[0], job.key[1], reason, wait,
                )  # fmt: skip
                again = self._clock() + wait
            with self._cv:
                self._busy.discard(job.receiver)
                if again is None or self._stopping:
                    self._jobs.pop(job.key, None)
                    self._handed.pop(job.key, None)
                else:
                    job.due = again
                observe.NOTIFY_QUEUE.set(len(self._jobs))
                self._cv.notify_all()

    def deliver(self, namespace: str, name: str, receiver: str, event: str) -> float | None:
        """One attempt now, outside the workers; returns when to try again (None: settled)."""
        return self.delivery.attempt((namespace, name, receiver, event))


def unsettled(status: Mapping[str, Any]) -> bool:
    """Whether a decision (its status, as stored) still has messages to deliver."""
    return any(n.get("state") == "Pending" for n in status.get("notifications") or ())
