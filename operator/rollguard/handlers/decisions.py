"""RollbackDecision glue: a loop per unfinished decision that advances its lifecycle, and the
export of post-decision reviews."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from rollguard.api.decision import FINAL_PHASES
from rollguard.control.lifecycle import advance, record_review, review_pending
from rollguard.control.notifications import unsettled
from rollguard.control.telemetry import ERRORS, forget_decision
from rollguard.handlers.runtime import current, now
from rollguard.kube.client import ApiError, is_transient, retry_after

log = logging.getLogger("rollguard")


def _unfinished(status: Mapping[str, Any], **_: Any) -> bool:
    status = status or {}
    audit = status.get("audit") or {}
    if status.get("phase") not in FINAL_PHASES or unsettled(status):
        return True
    return bool(audit) and not audit.get("exported", False)  # unsealed final ones: nothing to do


def _step(namespace: str, name: str) -> Mapping[str, Any] | None:
    runtime = current()
    try:
        return advance(
            runtime.lifecycle, {"metadata": {"namespace": namespace, "name": name}}, now=now()
        )
    except ApiError as err:
        if err.status == 404:
            forget_decision(namespace, name)
            return None
        raise


@kopf.daemon("rollbackdecisions", when=_unfinished, cancellation_timeout=10)  # type: ignore[arg-type]
async def drive_decision(namespace: str, name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Advance the decision until it is final and exported, and its messages delivered or
    given up."""
    poll = current().settings.decision_poll
    while not stopped:
        try:
            obj = await asyncio.to_thread(_step, namespace, name)
        except ApiError as err:
            if not is_transient(err):
                raise kopf.PermanentError(
                    f"RollbackDecision {namespace}/{name}: {err.reason}"
                ) from err
            ERRORS.labels(kind="api").inc()
            await stopped.wait(retry_after(err, poll))
            continue
        if obj is None:
            return
        if not _unfinished(obj.get("status") or {}):
            return
        await stopped.wait(poll)


def _review_unrecorded(body: Mapping[str, Any], **_: Any) -> bool:
    return review_pending(body)


@kopf.on.event("rollbackdecisions", when=_review_unrecorded)  # type: ignore[arg-type]
async def export_review(body: Mapping[str, Any], namespace: str, name: str, **_: Any) -> None:
    """A review was written: its audit line, Event and metric, once (a watch event, so it
    leaves no handler state on the decision). Transient API errors are retried a few times;
    after that the review stays unexported until the next watch event or restart."""
    poll = current().settings.decision_poll
    for _attempt in range(5):
        try:
            await asyncio.to_thread(record_review, current().lifecycle, body)
            return
        except ApiError as err:
            if err.status == 404:
                return
            ERRORS.labels(kind="api").inc()
            log.warning(
                "Could not record the review of RollbackDecision %s/%s: %s",
                namespace,
                name,
                err.reason,
            )
            if not is_transient(err):
                return
            await asyncio.sleep(retry_after(err, poll))
