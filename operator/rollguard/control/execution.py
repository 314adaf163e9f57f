"""A decision from its creation to its action done: the first phase, the approval, the
execution.

Each transition is decided by a pure function of the decision (for the execution, also of
what ``kube.rollback`` answered) and written by ``Step.move``. The step functions at the end
are what ``lifecycle`` runs for the phases they are named after.
"""

from __future__ import annotations

from rollguard.api.decision import Execution, RollbackDecisionSpec
from rollguard.control import reasons
from rollguard.control.steps import Step, Transition, iso
from rollguard.core import machine
from rollguard.kube.rollback import ExecutionResult, pause, rollback


def first_transition(spec: RollbackDecisionSpec) -> Transition:
    """Where a new decision goes first (``machine.first_phase``), and what it says there."""
    rec = spec.recommended
    first = machine.first_phase(
        mode=spec.mode, action=rec.action, requires_approval=spec.requires_approval
    )
    if first == "DryRun":
        return Transition(
            "DryRun",
            reasons.DRY_RUN_RECORDED,
            f"DryRun: {rec.action} recorded, workload untouched",
        )
    if first == "Succeeded":
        return Transition(
            "Succeeded",
            reasons.HOLD_RECORDED,
            f"Hold recorded; nothing to execute: {rec.reason}",
            status={"outcome": {"summary": "Hold: recorded only"}},
        )
    if first == "PendingApproval":
        return Transition(
            "PendingApproval",
            reasons.APPROVAL_REQUIRED,
            f"{rec.action} needs approval: {spec.approval_reason}",
            warning=True,
        )
    return Transition(
        "Approved",
        reasons.AUTO_APPROVED,
        f"{rec.action} inside the auto-approval boundary: {spec.approval_reason}",
    )


def approval_transition(
    spec: RollbackDecisionSpec, *, created: float, now: float
) -> Transition | None:
    """Where a pending decision goes at ``now``, or None while it still waits for a human."""
    policy = spec.policy.effective
    approval = spec.approval
    outcome = machine.approval_outcome(policy, approval, created=created, now=now)
    if outcome is None:
        return None
    if approval is not None:
        if outcome == "NotAllowed":
            approvers = ", ".join(policy.authorization.approvers)
            return Transition(
                "Rejected",
                reasons.APPROVER_NOT_ALLOWED,
                f"{approval.by} is not among the policy's approvers ({approvers}); nothing executed",
                warning=True,
            )
        if outcome == "Granted":
            return Transition(
                "Approved",
                reasons.APPROVAL_GRANTED,
                f"Approved by {approval.by}: {approval.reason}",
            )
        return Transition(
            "Rejected", reasons.APPROVAL_REJECTED, f"Rejected by {approval.by}: {approval.reason}"
        )
    timeout = policy.authorization.approval_timeout
    if outcome == "TimeoutExecute":
        return Transition(
            "Approved",
            reasons.APPROVAL_TIMEOUT_EXECUTE,
            f"No approval within {timeout}; onTimeout is Execute",
        )
    return Transition(
        "Expired",
        reasons.APPROVAL_EXPIRED,
        f"No approval within {timeout}; nothing executed",
        warning=True,
    )


def execution_transition(
    spec: RollbackDecisionSpec,
    result: ExecutionResult,
    *,
    previous: Execution | None,
    now: float,
) -> Transition:
    """Where a decision goes once its action ran with ``result``: a rollback on to
    validation, a pause done, a conflict superseded, a missing target failed (and
    escalated)."""
    started = previous.started_at.timestamp() if previous and previous.started_at else now
    execution = {
        "startedAt": iso(started),
        "finishedAt": iso(now),
        "patched": result.verdict in ("Patched", "AlreadyDone"),
        "fromTemplateHash": result.from_template_hash,
        "patchedTemplateHash": result.to_template_hash,
        "message": result.message,
    }
    if result.verdict == "Conflict":
        return Transition(
            "Superseded",
            reasons.SUPERSEDED,
            result.message,
            warning=True,
            status={"execution": execution},
        )
    if result.verdict == "TargetMissing":
        return Transition(
            "Failed",
            reasons.TARGET_MISSING,
            result.message,
            warning=True,
            status={"execution": execution},
            escalate=result.message,
        )
    if spec.recommended.action == "Pause":
        return Transition(
            "Succeeded",
            reasons.ROLLOUT_PAUSED,
            result.message,
            status={
                "execution": execution,
                "outcome": {"summary": "rollout paused; a human decides what comes next"},
            },
        )
    policy = spec.policy.effective
    criteria = {
        "rolloutTimeout": policy.validation.rollout_timeout,
        "window": policy.validation.window,
        "clearBelow": policy.clear_below,
    }
    return Transition(
        "Validating",
        reasons.ROLLBACK_EXECUTED if result.verdict == "Patched" else reasons.ALREADY_AT_TARGET,
        result.message,
        status={
            "execution": execution,
            "validation": {"criteria": criteria, "startedAt": iso(now)},
        },
    )


def new(step: Step) -> bool:
    step.move(first_transition(step.spec))
    return True


def pending(step: Step) -> bool:
    transition = approval_transition(step.spec, created=step.created, now=step.now)
    if transition is None:
        return False
    step.move(transition)
    return True


def approved(step: Step) -> bool:
    step.move(
        Transition(
            "Executing",
            reasons.EXECUTION_STARTED,
            f"Executing {step.spec.recommended.action}",
            status={"execution": {"startedAt": iso(step.now)}},
        )
    )
    return True


def executing(step: Step) -> bool:
    """Carry the action out on the workload (at most once: see ``kube.rollback``)."""
    spec, rec = step.spec, step.spec.recommended
    cluster, target = step.life.cluster, spec.target
    if rec.action == "Pause":
        result = pause(
            cluster=cluster,
            namespace=step.namespace,
            target=target,
            from_revision=rec.from_revision,
        )
    else:
        assert rec.to_template_hash is not None, "a Rollback always names its target"
        result = rollback(
            cluster=cluster,
            namespace=step.namespace,
            target=target,
            from_revision=rec.from_revision,
            to_template_hash=rec.to_template_hash,
        )
    step.move(execution_transition(spec, result, previous=step.status.execution, now=step.now))
    return True
