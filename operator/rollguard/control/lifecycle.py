"""A decision's lifecycle, one step at a time: approval, execution, validation, outcome.

``advance`` reads the decision, makes every transition that is due now, persists each one
(status, Event, audit line, metric) before attempting the next, and returns. It is level-based
and idempotent: after a crash or on another replica, calling it again continues where the
status says it stopped, and the rollback itself is guarded (see ``kube.rollback``), so a
decision changes its Deployment at most once.

The phases are decided in ``execution`` (first phase, approval, execution) and ``validation``;
``closing`` exports and prunes final decisions; ``steps`` holds ``Lifecycle`` and writes each
transition. Called by the handlers, with the one ``Lifecycle`` they hold, and by tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rollguard.api.decision import FINAL_PHASES
from rollguard.control import execution, reasons
from rollguard.control import telemetry as observe
from rollguard.control.closing import export, record_review, review_pending
from rollguard.control.records import linked, seal
from rollguard.control.steps import Lifecycle, Step, Transition
from rollguard.control.validation import validating

__all__ = ["Lifecycle", "advance", "record_review", "review_pending"]

PHASE_STEPS: dict[str, Callable[[Step], bool]] = {
    "": execution.new,
    "PendingApproval": execution.pending,
    "Approved": execution.approved,
    "Executing": execution.executing,
    "Validating": validating,
}
"""What moves a decision in each phase that is not final; each returns whether it moved."""

NOT_LINKED = Transition(
    "Failed",
    reasons.DECISION_NOT_LINKED,
    "not created by the rollguard operator (no audit link annotations): never acted on; "
    "rollguard audit verify reports it",
    warning=True,
)


def advance(life: Lifecycle, obj: Mapping[str, Any], *, now: float) -> Mapping[str, Any]:
    """Make every transition of the decision that is due at ``now``; returns it as persisted.

    One caller at a time per decision (the evaluation loop advances a new decision at once
    while its own loop may start too), and always from the decision as stored, not as the
    caller last saw it."""
    meta = obj["metadata"]
    with life.memory.serialised(meta["namespace"], meta["name"]):
        fresh = life.cluster.get("RollbackDecision", namespace=meta["namespace"], name=meta["name"])
        return _advance(life, fresh, now=now)


def _advance(life: Lifecycle, obj: Mapping[str, Any], *, now: float) -> Mapping[str, Any]:
    step = Step(life, obj, now)
    if not (step.status.audit and step.status.audit.hash) and not linked(step.obj):
        # Not made by the operator (the admission policy refuses that; this is a cluster
        # without it, or an object restored from elsewhere): never acted on, never sealed.
        if step.status.phase != "Failed":
            step.move(NOT_LINKED)
        if life.notifier is not None:
            life.notifier.resume(step.obj)
        return step.obj
    if not (step.status.audit and step.status.audit.hash):
        # Sealed in the same write as its first transition (a new decision always makes one).
        step.carry = seal(step.obj)
    for _ in range(8):  # each pass makes at most one transition; eight is more than a lifecycle has
        phase = step.status.phase
        if phase in FINAL_PHASES:
            export(step)
            break
        move = PHASE_STEPS.get(phase or "")
        if move is None or not move(step):
            break
    if step.carry:
        step.patch(step.carry)
        step.carry = {}
    if life.notifier is not None:
        life.notifier.resume(step.obj)  # after a restart, or on the replica that took over
    pending = step.status.phase == "PendingApproval"
    observe.set_pending(
        step.namespace,
        step.name,
        step.spec.model_deployment_ref.name,
        step.created if pending else None,
    )
    return step.obj
