"""Telling people: a decision's transition becomes one message per subscribed receiver,
delivered at least once, off the decision's path.

A transition's write carries its messages as ``Pending`` entries in the decision's
``status.notifications`` (``entries``), so a message raised is never lost: after a restart or
on the other replica the lifecycle hands the stored entries back (``resume``). Worker threads
post each one (``control.receivers`` says what to post), retry with backoff
(``core.notices.retry_after``), and record ``Delivered`` or ``Failed`` with a reason on the
decision. Nothing here waits for a receiver while a decision moves, and no URL or token
reaches a log line, an Event or a status: failures are described in words of this module's
own.
"""

from __future__ import annotations

import heapq
import http.client
import logging
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from rollguard.api.base import duration_seconds
from rollguard.api.decision import Notification, RollbackDecisionSpec, RollbackDecisionStatus
from rollguard.api.policy import Notify, NotifyOn, RollbackPolicySpec
from rollguard.control import telemetry as observe
from rollguard.control.receivers import Receiver, ReceiversSource, Request, request_for
from rollguard.core import notices
from rollguard.core.times import api_seconds, to_datetime
from rollguard.kube.client import ApiError, Cluster

log = logging.getLogger("rollguard")

POLICY_TTL = 10.0  # seconds a policy's subscriptions are reused before they are read again
WORKERS = 2


class DeliveryError(Exception):
    """A receiver did not take a message; the text is safe to record (no URL, no token)."""


def post(request: Request, timeout: float) -> None:
    """POST ``request``; raises ``DeliveryError`` unless the receiver answers 2xx."""
    req = urllib.request.Request(request.url, data=request.body, method="POST")
    for name, value in request.headers.items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(65536)
    except urllib.error.HTTPError as err:
        raise DeliveryError(f"receiver answered HTTP {err.code}") from None
    except urllib.error.URLError as err:
        raise DeliveryError(_cause(err.reason, timeout)) from None
    except (OSError, http.client.HTTPException) as err:
        raise DeliveryError(_cause(err, timeout)) from None


def _cause(err: object, timeout: float) -> str:
    if isinstance(err, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(err, socket.gaierror):
        return "host name not found"
    if isinstance(err, ConnectionError | http.client.HTTPException):
        return "connection broken"
    return f"could not connect ({type(err).__name__})"


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    namespace: str = field(compare=False)
    name: str = field(compare=False)
    receiver: str = field(compare=False)
    event: str = field(compare=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.name, self.receiver, self.event)


Serialised = Callable[[str, str], AbstractContextManager[None]]


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
    ) -> None:
        self.cluster = cluster
        self.receivers = receivers
        self._serialised = serialised
        self._send = send
        self._clock = clock
        self._cv = threading.Condition()
        self._heap: list[_Job] = []
        self._queued: set[tuple[str, str, str, str]] = set()
        self._seq = 0
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._policies: dict[tuple[str, str], tuple[float, list[Notify]]] = {}
        self._reported_error: str | None = None

    # --- raising ----------------------------------------------------------------------

    def subscriptions(self, spec: RollbackDecisionSpec) -> list[Notify]:
        """The ``notify`` list of the decision's policy as it is now (read at most every
        POLICY_TTL seconds); none when it cannot be read."""
        key = (spec.policy.namespace, spec.policy.name)
        now = self._clock()
        cached = self._policies.get(key)
        if cached is not None and now - cached[0] < POLICY_TTL:
            return cached[1]
        try:
            obj = self.cluster.get("RollbackPolicy", namespace=key[0], name=key[1])
            notify = list(RollbackPolicySpec.model_validate(obj["spec"]).notify or ())
        except ApiError as err:
            log.warning("Cannot read RollbackPolicy %s/%s to notify: %s", *key, err.reason)
            return []
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
        if not fresh:
            return []
        return [n.wire() for n in (*status.notifications, *fresh)]

    def resume(self, obj: Mapping[str, Any]) -> None:
        """Queue every Pending message of the decision ``obj`` that is not queued yet."""
        meta = obj["metadata"]
        status = RollbackDecisionStatus.model_validate(obj.get("status") or {})
        for n in status.notifications:
            if n.state != "Pending":
                continue
            last = n.last_attempt_at.timestamp() if n.last_attempt_at else 0.0
            wait = notices.retry_after(n.attempts) if n.attempts else 0.0
            due = last + (wait or 0.0)
            self._push(meta["namespace"], meta["name"], n.receiver, n.transition, due)

    def _push(self, namespace: str, name: str, receiver: str, event: str, due: float) -> None:
        with self._cv:
            key = (namespace, name, receiver, event)
            if key in self._queued:
                return
            self._seq += 1
            self._queued.add(key)
            heapq.heappush(self._heap, _Job(due, self._seq, namespace, name, receiver, event))
            observe.NOTIFY_QUEUE.set(len(self._queued))
            self._cv.notify()

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
        """Wait until nothing is queued (tests); whether it emptied in time."""
        end = time.monotonic() + timeout
        with self._cv:
            while self._queued and time.monotonic() < end:
                self._cv.wait(0.05)
            return not self._queued

    def _next(self) -> _Job | None:
        with self._cv:
            while not self._stopping:
                if self._heap:
                    wait = self._heap[0].due - self._clock()
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    self._cv.wait(min(wait, 1.0))
                else:
                    self._cv.wait(1.0)
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                again = self.deliver(job.namespace, job.name, job.receiver, job.event)
            except Exception:  # a worker must outlive any one message
                log.exception(
                    "Notifying %s of RollbackDecision %s/%s", job.receiver, job.namespace, job.name
                )
                again = self._clock() + notices.FIRST_RETRY * 8
            with self._cv:
                if again is None or self._stopping:
                    self._queued.discard(job.key)
                else:
                    job.due = again
                    heapq.heappush(self._heap, job)
                observe.NOTIFY_QUEUE.set(len(self._queued))
                self._cv.notify_all()

    def deliver(self, namespace: str, name: str, receiver: str, event: str) -> float | None:
        """One attempt: post the message and record how it went; returns when to try again,
        or None when it is settled (delivered, given up, or the decision is gone)."""
        obj = self._decision(namespace, name)
        if obj is None:
            return None
        status = RollbackDecisionStatus.model_validate(obj.get("status") or {})
        entry = next(
            (n for n in status.notifications if (n.receiver, n.transition) == (receiver, event)),
            None,
        )
        if entry is None or entry.state != "Pending":
            return None
        spec = RollbackDecisionSpec.model_validate(obj["spec"])
        config = self.receivers.current()
        self._report_file_error()
        target = config.named(receiver)
        now = self._clock()
        attempts = entry.attempts + 1
        if target is None:
            why = f"no receiver named {receiver} in the receivers file"
            return self._settle(
                obj, entry=entry, attempts=attempts, now=now, state="Failed", reason=why
            )
        try:
            request = self._request(
                target=target,
                spec=spec,
                obj=obj,
                status=status,
                event=event,
                dashboard_url=config.dashboard_url,
            )
            self._send(request, target.timeout_seconds)
        except DeliveryError as err:
            wait = notices.retry_after(attempts)
            state = "Failed" if wait is None else "Pending"
            self._settle(obj, entry=entry, attempts=attempts, now=now, state=state, reason=str(err))
            return None if wait is None else now + wait
        return self._settle(
            obj, entry=entry, attempts=attempts, now=now, state="Delivered", reason=""
        )

    def _decision(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The decision as stored; None when it is gone."""
        try:
            return self.cluster.get("RollbackDecision", namespace=namespace, name=name)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def _request(
        self,
        *,
        target: Receiver,
        spec: RollbackDecisionSpec,
        obj: Mapping[str, Any],
        status: RollbackDecisionStatus,
        event: str,
        dashboard_url: str | None,
    ) -> Request:
        meta = obj["metadata"]
        phase = event if event in notices.PHASE_EVENTS else (status.phase or "")
        message = status.message if status.phase == phase else ""
        notice = notices.notice(
            spec,
            event=event,  # type: ignore[arg-type]  # entries hold NotifyOn values
            namespace=meta["namespace"],
            name=meta["name"],
            phase=phase,
            message=message,
            dashboard_url=dashboard_url,
        )
        until = None
        created = api_seconds(meta.get("creationTimestamp"))
        if event == "PendingApproval" and created is not None:
            timeout = spec.policy.effective.authorization.approval_timeout
            until = to_datetime(created + duration_seconds(timeout))
        key = notices.key(str(meta.get("uid", "")), target.name, event)
        return request_for(target, notice, key=key, now=to_datetime(self._clock()), until=until)

    def _settle(
        self,
        obj: Mapping[str, Any],
        *,
        entry: Notification,
        attempts: int,
        now: float,
        state: str,
        reason: str,
    ) -> float | None:
        """Record an attempt's outcome on the decision (under its lock, on a fresh read)."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        at = to_datetime(now)
        changes: dict[str, Any] = {
            "state": state,
            "attempts": attempts,
            "last_attempt_at": at,
            "reason": reason,
        }
        if state == "Delivered":
            changes["delivered_at"] = at
        updated = entry.model_copy(update=changes)
        with self._serialised(ns, name):
            fresh = self._decision(ns, name)
            if fresh is None:
                return None
            current = RollbackDecisionStatus.model_validate(fresh.get("status") or {})
            listed = [
                updated if (n.receiver, n.transition) == (entry.receiver, entry.transition) else n
                for n in current.notifications
            ]
            self.cluster.patch_status(
                "RollbackDecision", namespace=ns, name=name,
                status={"notifications": [n.wire() for n in listed]},
            )  # fmt: skip
        observe.NOTIFICATIONS.labels(
            receiver=entry.receiver, event=entry.transition, result=state.lower()
        ).inc()
        if state == "Delivered":
            raised = entry.raised_at.timestamp() if entry.raised_at else now
            observe.NOTIFY_DELAY.observe(max(0.0, now - raised))
            log.info(
                "Notified %s of %s for RollbackDecision %s/%s",
                entry.receiver,
                entry.transition,
                ns,
                name,
            )
        else:
            log.warning(
                "Could not notify %s of %s for RollbackDecision %s/%s (attempt %d): %s%s",
                entry.receiver, entry.transition, ns, name, attempts, reason,
                "; giving up" if state == "Failed" else "; retrying",
            )  # fmt: skip
        return None

    def _report_file_error(self) -> None:
        error = self.receivers.error
        if error != self._reported_error:
            self._reported_error = error
            if error:
                log.error("Receivers file: %s", error)
            elif self.receivers.path:
                log.info("Receivers file %s read", self.receivers.path)


def unsettled(status: Mapping[str, Any]) -> bool:
    """Whether a decision (its status, as stored) still has messages to deliver."""
    return any(n.get("state") == "Pending" for n in status.get("notifications") or ())
