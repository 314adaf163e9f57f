"""One delivery attempt of one message: read the decision, post what its receiver is sent,
and record the outcome on the decision (``core.notices.outcome`` decides it).

The record is written under the lifecycle's lock for the decision (one process) and with the
decision's ``resourceVersion`` as a precondition (another replica), on a fresh read: an entry
another writer settled or retried meanwhile is left as it is. A post the receiver took whose
record could not be written is remembered, so the next attempt records it without posting
again. Called by ``control.notifications``' workers and by tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from rollguard.api.base import duration_seconds
from rollguard.api.decision import Notification, RollbackDecisionSpec, RollbackDecisionStatus
from rollguard.control import telemetry as observe
from rollguard.control.posting import DeliveryError
from rollguard.control.receivers import ReceiversSource, Request, request_for
from rollguard.core import notices
from rollguard.core.times import api_seconds, to_datetime
from rollguard.kube.client import ApiError, Cluster

log = logging.getLogger("rollguard")

Serialised = Callable[[str, str], AbstractContextManager[None]]
Key = tuple[str, str, str, str]  # namespace, decision, receiver, event
RECORD_TRIES = 3  # reads and writes of a record that lost a race with another writer


@dataclass
class Delivery:
    """What one attempt needs: the API, the receivers file, how to post, the lifecycle's lock
    and clock; and the posts taken but not yet recorded."""

    cluster: Cluster
    receivers: ReceiversSource
    send: Callable[[Request, float], None]
    serialised: Serialised
    clock: Callable[[], float]
    taken: set[Key] = field(default_factory=set)

    def attempt(self, key: Key) -> float | None:
        """Post the message ``key`` names and record how it went; returns when to try again,
        or None when it is settled (delivered, given up, gone, or settled by someone else)."""
        namespace, name, receiver, event = key
        obj = self._decision(namespace, name)
        entry = _entry(obj, receiver, event) if obj is not None else None
        if obj is None or entry is None or entry.state != "Pending":
            self.taken.discard(key)
            return None
        now = self.clock()
        failure, final = (None, False) if key in self.taken else self._post(obj, entry)
        if failure is None:
            self.taken.add(key)
        state, wait = notices.outcome(entry.attempts + 1, failure, final=final)
        self._record(obj, entry, state=state, now=now, reason=failure or "")
        self.taken.discard(key)
        return None if wait is None else now + wait

    def _post(self, obj: Mapping[str, Any], entry: Notification) -> tuple[str | None, bool]:
        """Post the message: None when the receiver took it, else why not (safe to record),
        and whether trying again is pointless."""
        config = self.receivers.current()
        target = config.named(entry.receiver)
        if target is None:
            if self.receivers.error:
                # The Secret may be fixed in a minute: keep trying.
                return f"receivers file missing or invalid ({self._file_problem()})", False
            return f"no receiver named {entry.receiver} in the receivers file", True
        spec = RollbackDecisionSpec.model_validate(obj["spec"])
        status = RollbackDecisionStatus.model_validate(obj.get("status") or {})
        meta = obj["metadata"]
        notice = notices.notice(
            spec,
            event=entry.transition,
            namespace=meta["namespace"],
            name=meta["name"],
            phase_now=status.phase or "",
            message=status.message,
            dashboard_url=config.dashboard_url,
        )
        until = None
        created = api_seconds(meta.get("creationTimestamp"))
        if entry.transition == "PendingApproval" and created is not None:
            timeout = spec.policy.effective.authorization.approval_timeout
            until = to_datetime(created + duration_seconds(timeout))
        raised = entry.raised_at or to_datetime(self.clock())
        request = request_for(
            target,
            notice,
            key=notices.key(str(meta.get("uid", "")), target.name, entry.transition),
            now=raised,
            until=until,
        )
        try:
            self.send(request, target.timeout_seconds)
        except DeliveryError as err:
            return str(err), False
        return None, False

    def _file_problem(self) -> str:
        error = self.receivers.error or ""
        return "not found" if "no such file" in error else "see the operator's log"

    def _record(
        self, obj: Mapping[str, Any], entry: Notification, *, state: str, now: float, reason: str
    ) -> None:
        """Write the attempt's outcome into the decision's entry, unless another writer
        moved the entry on meanwhile."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        at = to_datetime(now)
        changes: dict[str, Any] = {
            "state": state,
            "attempts": entry.attempts + 1,
            "last_attempt_at": at,
            "reason": reason,
        }
        if state == "Delivered":
            changes["delivered_at"] = at
        updated = entry.model_copy(update=changes)
        with self.serialised(ns, name):
            for _ in range(RECORD_TRIES):
                fresh = self._decision(ns, name)
                now_entry = _entry(fresh, entry.receiver, entry.transition) if fresh else None
                if fresh is None or now_entry != entry:
                    return  # gone, or settled or retried by someone else
                listed = [
                    updated if n == entry else n
                    for n in RollbackDecisionStatus.model_validate(
                        fresh.get("status") or {}
                    ).notifications
                ]
                try:
                    self.cluster.patch_status(
                        "RollbackDecision",
                        namespace=ns,
                        name=name,
                        status={"notifications": [n.wire() for n in listed]},
                        resource_version=fresh["metadata"].get("resourceVersion"),
                    )
                    break
                except ApiError as err:
                    if err.status != 409:
                        raise
            else:
                return
        _observed(updated, now, ns, name)

    def _decision(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The decision as stored; None when it is gone."""
        try:
            return self.cluster.get("RollbackDecision", namespace=namespace, name=name)
        except ApiError as err:
            if err.status == 404:
                return None
            raise


def _entry(obj: Mapping[str, Any], receiver: str, event: str) -> Notification | None:
    status = RollbackDecisionStatus.model_validate(obj.get("status") or {})
    return next(
        (n for n in status.notifications if (n.receiver, n.transition) == (receiver, event)),
        None,
    )


def _observed(entry: Notification, now: float, namespace: str, name: str) -> None:
    """The metric and log line of a recorded attempt."""
    observe.NOTIFICATIONS.labels(
        receiver=entry.receiver, event=entry.transition, result=entry.state.lower()
    ).inc()
    where = f"RollbackDecision {namespace}/{name}"
    if entry.state == "Delivered":
        raised = entry.raised_at.timestamp() if entry.raised_at else now
        observe.NOTIFY_DELAY.observe(max(0.0, now - raised))
        log.info("Notified %s of %s for %s", entry.receiver, entry.transition, where)
        return
    log.warning(
        "Could not notify %s of %s for %s (attempt %d): %s; %s",
        entry.receiver, entry.transition, where, entry.attempts, entry.reason,
        "gave up" if entry.state == "Failed" else "will retry",
    )  # fmt: skip
