"""RollbackDecision glue: a loop per unfinished decision that advances its lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from rollguard.api.decision import FINAL_PHASES
from rollguard.control.lifecycle import advance
from rollguard.control.observe import ERRORS, forget_decision
from rollguard.execution.kube import ApiError, is_transient, retry_after
from rollguard.handlers.runtime import current, now

log = logging.getLogger("rollguard")


def _unfinished(status: Mapping[str, Any], **_: Any) -> bool:
    status = status or {}
    exported = (status.get("audit") or {}).get("exported", False)
    return status.get("phase") not in FINAL_PHASES or not exported


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
    """Advance the decision until it is final and exported."""
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
        status = obj.get("status") or {}
        if status.get("phase") in FINAL_PHASES and (status.get("audit") or {}).get("exported"):
            return
        await stopped.wait(poll)
