"""A decision's lifecycle, one step at a time: approval, execution, validation, outcome.

``advance`` reads the decision, makes every transition that is due now, persists each one
(status, Event, audit line, metric) before attempting the next, and returns. It is level-based
and idempotent: after a crash or on another replica, calling it again continues where the
status says it stopped, and the rollback itself is guarded (see ``execution.rollback``), so a
decision changes its Deployment at most once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollguard.api.base import duration_seconds
from rollguard.api.decision import FINAL_PHASES, RollbackDecisionSpec, RollbackDecisionStatus
from rollguard.api.labels import LABEL_MODEL_DEPLOYMENT
from rollguard.api.modeldeployment import ModelDeploymentStatus
from rollguard.control import reasons
from rollguard.control import telemetry as observe
from rollguard.control.records import linked, seal
from rollguard.core import machine
from rollguard.kube.client import ApiError, Cluster
from rollguard.kube.rollback import pause, rollback
from rollguard.signals.promql import lookback_seconds

log = logging.getLogger("rollguard")


@dataclass(frozen=True)
class Lifecycle:
    cluster: Cluster
    recorder: observe.Recorder
    keep_decisions: int = 20
    scrape_interval: float = 15.0


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).isoformat().replace("+00:00", "Z")


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class _Step:
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

    def move(
        self, phase: str, reason: str, message: str, *, warning: bool = False, **status: Any
    ) -> None:
        patch = {**self.carry, "phase": phase, "message": message, **status}
        self.obj = self.life.cluster.patch_status(
            "RollbackDecision", namespace=self.namespace, name=self.name, status=patch
        )
        self.carry = {}
        observe.TRANSITIONS.labels(phase=phase).inc()
        self.life.recorder.transition(
            obj=self.obj,
            reason=reason,
            message=message,
            warning=warning,
            phase=phase,
            modelDeployment=self.spec.model_deployment_ref.name,
        )

    def model_deployment(self) -> dict[str, Any]:
        return self.life.cluster.get(
            "ModelDeployment", namespace=self.namespace, name=self.spec.model_deployment_ref.name
        )


_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


def advance(life: Lifecycle, obj: Mapping[str, Any], *, now: float) -> Mapping[str, Any]:
    """Make every transition of the decision that is due at ``now``; returns it as persisted.

    One caller at a time per decision (the evaluation loop advances a new decision at once
    while its own loop may start too), and always from the decision as stored, not as the
    caller last saw it."""
    meta = obj["metadata"]
    with _lock(meta["namespace"], meta["name"]):
        fresh = life.cluster.get("RollbackDecision", namespace=meta["namespace"], name=meta["name"])
        return _advance(life, fresh, now=now)


def _advance(life: Lifecycle, obj: Mapping[str, Any], *, now: float) -> Mapping[str, Any]:
    step = _Step(life, obj, now)
    if not (step.status.audit and step.status.audit.hash) and not linked(step.obj):
        # Not made by the operator (the admission policy refuses that; this is a cluster
        # without it, or an object restored from elsewhere): never acted on, never sealed.
        if step.status.phase != "Failed":
            step.move(
                "Failed",
                reasons.DECISION_NOT_LINKED,
                "not created by the rollguard operator (no audit link annotations): never "
                "acted on; rollguard audit verify reports it",
                warning=True,
            )
        return step.obj
    if not (step.status.audit and step.status.audit.hash):
        # Sealed in the same write as its first transition (a new decision always makes one).
        step.carry = seal(step.obj)
    for _ in range(8):  # each pass makes at most one transition; eight is more than a lifecycle has
        phase = step.status.phase
        if phase in FINAL_PHASES:
            _export(step)
            break
        handler = _HANDLERS.get(phase or "")
        if handler is None or not handler(step):
            break
    if step.carry:
        step.obj = life.cluster.patch_status(
            "RollbackDecision", namespace=step.namespace, name=step.name, status=step.carry
        )
        step.carry = {}
    pending = step.status.phase == "PendingApproval"
    observe.set_pending(
        step.namespace,
        step.name,
        step.spec.model_deployment_ref.name,
        _created(step) if pending else None,
    )
    return step.obj


def review_pending(obj: Mapping[str, Any]) -> bool:
    """Whether the decision carries a review that has not been exported yet."""
    audit = (obj.get("status") or {}).get("audit") or {}
    return bool((obj.get("spec") or {}).get("review")) and not audit.get("reviewExported")


def record_review(life: Lifecycle, obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Export a decision's review, once: an audit line carrying it (so the journal kept beyond
    etcd has it), an Event and a metric, then ``status.audit.reviewExported``. Returns the
    decision as persisted, or None when there was nothing to record."""
    meta = obj["metadata"]
    with _lock(meta["namespace"], meta["name"]):
        fresh = life.cluster.get("RollbackDecision", namespace=meta["namespace"], name=meta["name"])
        if not review_pending(fresh):
            return None
        step = _Step(life, fresh, time.time())
        review, audit = step.spec.review, step.status.audit
        if review is None or audit is None:
            return None  # not sealed yet: the decision's own loop seals it first
        observe.REVIEWS.labels(verdict=review.verdict, regression=review.regression).inc()
        life.recorder.transition(
            obj=fresh,
            reason=reasons.DECISION_REVIEWED,
            message=f"Reviewed by {review.by}: {review.verdict}, regression {review.regression}. "
            f"{review.notes}",
            phase=step.status.phase,
            modelDeployment=step.spec.model_deployment_ref.name,
            sequence=audit.sequence,
            hash=audit.hash,
            review=review.wire(),
        )
        return life.cluster.patch_status(
            "RollbackDecision",
            namespace=step.namespace,
            name=step.name,
            status={"audit": {**audit.wire(), "reviewExported": True}},
        )


def _created(step: _Step) -> float:
    created = step.meta.get("creationTimestamp")
    if not created:
        return step.now
    return datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()


def _new(step: _Step) -> bool:
    spec = step.spec
    rec = spec.recommended
    first = machine.first_phase(
        mode=spec.mode, action=rec.action, requires_approval=spec.requires_approval
    )
    if first == "DryRun":
        step.move(
            "DryRun",
            reasons.DRY_RUN_RECORDED,
            f"DryRun: {rec.action} recorded, Deployment untouched",
        )
    elif first == "Succeeded":
        step.move(
            "Succeeded",
            reasons.HOLD_RECORDED,
            f"Hold recorded; nothing to execute: {rec.reason}",
            outcome={"summary": "Hold: recorded only"},
        )
    elif first == "PendingApproval":
        step.move(
            "PendingApproval",
            reasons.APPROVAL_REQUIRED,
            f"{rec.action} needs approval: {spec.approval_reason}",
            warning=True,
        )
    else:
        step.move(
            "Approved",
            reasons.AUTO_APPROVED,
            f"{rec.action} inside the auto-approval boundary: {spec.approval_reason}",
        )
    return True


def _pending(step: _Step) -> bool:
    spec = step.spec
    policy = spec.policy.effective
    approval = spec.approval
    outcome = machine.approval_outcome(policy, approval, created=_created(step), now=step.now)
    if outcome is None:
        return False
    if approval is not None:
        approvers = policy.authorization.approvers
        if outcome == "NotAllowed":
            step.move(
                "Rejected",
                reasons.APPROVER_NOT_ALLOWED,
                f"{approval.by} is not among the policy's approvers ({', '.join(approvers)}); nothing executed",
                warning=True,
            )
        elif outcome == "Granted":
            step.move(
                "Approved",
                reasons.APPROVAL_GRANTED,
                f"Approved by {approval.by}: {approval.reason}",
            )
        else:
            step.move(
                "Rejected",
                reasons.APPROVAL_REJECTED,
                f"Rejected by {approval.by}: {approval.reason}",
            )
        return True
    if outcome == "TimeoutExecute":
        step.move(
            "Approved",
            reasons.APPROVAL_TIMEOUT_EXECUTE,
            f"No approval within {policy.authorization.approval_timeout}; onTimeout is Execute",
        )
    else:
        step.move(
            "Expired",
            reasons.APPROVAL_EXPIRED,
            f"No approval within {policy.authorization.approval_timeout}; nothing executed",
            warning=True,
        )
    return True


def _approved(step: _Step) -> bool:
    step.move(
        "Executing",
        reasons.EXECUTION_STARTED,
        f"Executing {step.spec.recommended.action}",
        execution={"startedAt": _iso(step.now)},
    )
    return True


def _executing(step: _Step) -> bool:
    spec, rec = step.spec, step.spec.recommended
    deployment = spec.deployment_ref.name
    if rec.action == "Pause":
        result = pause(
            cluster=step.life.cluster,
            namespace=step.namespace,
            deployment=deployment,
            from_revision=rec.from_revision,
        )
    else:
        assert rec.to_template_hash is not None, "a Rollback always names its target"
        result = rollback(
            cluster=step.life.cluster,
            namespace=step.namespace,
            deployment=deployment,
            from_revision=rec.from_revision,
            to_template_hash=rec.to_template_hash,
        )
    previous = step.status.execution
    execution = {
        "startedAt": _iso(
            previous.started_at.timestamp() if previous and previous.started_at else step.now
        ),
        "finishedAt": _iso(step.now),
        "patched": result.verdict in ("Patched", "AlreadyDone"),
        "fromTemplateHash": result.from_template_hash,
        "patchedTemplateHash": result.to_template_hash,
        "message": result.message,
    }
    if result.verdict == "Conflict":
        step.move(
            "Superseded", reasons.SUPERSEDED, result.message, warning=True, execution=execution
        )
    elif result.verdict == "TargetMissing":
        step.move(
            "Failed", reasons.TARGET_MISSING, result.message, warning=True, execution=execution
        )
        _escalate(step, result.message)
    elif rec.action == "Pause":
        step.move(
            "Succeeded",
            reasons.ROLLOUT_PAUSED,
            result.message,
            execution=execution,
            outcome={"summary": "rollout paused; a human decides what comes next"},
        )
    else:
        reason = (
            reasons.ROLLBACK_EXECUTED if result.verdict == "Patched" else reasons.ALREADY_AT_TARGET
        )
        policy = spec.policy.effective
        criteria = {
            "rolloutTimeout": policy.validation.rollout_timeout,
            "window": policy.validation.window,
            "clearBelow": policy.clear_below,
        }
        step.move(
            "Validating",
            reason,
            result.message,
            execution=execution,
            validation={"criteria": criteria, "startedAt": _iso(step.now)},
        )
    return True


def _rolled_out(deployment: Mapping[str, Any]) -> bool:
    status, spec = deployment.get("status") or {}, deployment.get("spec") or {}
    replicas = spec.get("replicas", 1)
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return bool(
        status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and conditions.get("Available") == "True"
    )


def _validating(step: _Step) -> bool:
    spec = step.spec
    policy = spec.policy.effective
    validation = step.status.validation
    assert validation is not None and validation.started_at is not None
    started = validation.started_at.timestamp()
    if validation.rollout_completed_at is None:
        deployment = step.life.cluster.deployment(
            namespace=step.namespace, name=spec.deployment_ref.name
        )
        if _rolled_out(deployment):
            step.move(
                "Validating",
                reasons.ROLLOUT_COMPLETED,
                "Rollout completed; watching the impact score",
                validation={"rolloutCompletedAt": _iso(step.now)},
            )
            return True
        if step.now - started > duration_seconds(policy.validation.rollout_timeout):
            message = (
                f"Rollout not available within rolloutTimeout {policy.validation.rollout_timeout}"
            )
            step.move(
                "Failed",
                reasons.ROLLOUT_TIMED_OUT,
                message,
                warning=True,
                validation={"verdict": "Failed", "message": message},
            )
            _escalate(step, message)
            return True
        return False
    # Evaluations right after the rollout still see the bad revision: through their window,
    # through the ranges inside the queries (rate(...[1m]) looks back a minute), and through
    # one scrape interval. Only evaluations that see nothing older than the rollout count.
    settle = max((lookback_seconds(sig.query) for sig in policy.signals), default=0.0)
    observe_from, until = machine.validation_span(
        policy,
        completed_at=validation.rollout_completed_at.timestamp(),
        settle=settle,
        scrape_interval=step.life.scrape_interval,
    )
    status = ModelDeploymentStatus.model_validate(step.model_deployment().get("status") or {})
    evaluation = status.last_evaluation
    worst, last, count = (
        validation.observed_max_score,
        validation.observed_last_score,
        validation.evaluations,
    )
    seen = _ts(validation.last_evaluation_at)
    key = (step.namespace, step.name, str(step.meta.get("uid", "")))
    memo = _observed.get(key)
    if memo is not None and (seen is None or memo.seen > seen):
        worst, last, count, seen = memo.worst, memo.last, memo.count, memo.seen
    if (
        evaluation is not None
        and evaluation.score is not None
        and evaluation.time.timestamp() >= observe_from
        and (seen is None or evaluation.time.timestamp() > seen)
    ):
        score = evaluation.score
        count += 1
        written = validation.observed_max_score
        raised = written is None or score >= written + OBSERVED_STEP
        worst = score if worst is None else max(worst, score)
        last = score
        seen = evaluation.time.timestamp()
        if machine.validation_failed(policy, score):
            message = f"impact score {score:.3f} at {evaluation.time.isoformat()} is not below clearBelow {policy.clear_below}"
            step.move(
                "Failed",
                reasons.VALIDATION_FAILED,
                message,
                warning=True,
                validation={
                    "verdict": "Failed",
                    "message": message,
                    **_observed_fields(worst, last, count, seen),
                },
                outcome=_outcome(step, worst, last, achieved=False),
            )
            _observed.pop(key, None)
            _escalate(step, f"rollback {step.name} did not bring the score below clearBelow")
            return True
        if count == 1 or raised:
            # Written when it matters: the first evaluation (a restart must not forget that
            # one was conclusive) and a maximum OBSERVED_STEP above the one written. The
            # others are kept in memory until the verdict; a restart loses only their count,
            # last score and maximum below that step.
            step.obj = step.life.cluster.patch_status(
                "RollbackDecision",
                namespace=step.namespace,
                name=step.name,
                status={"validation": _observed_fields(worst, last, count, seen)},
            )
            _observed.pop(key, None)
        else:
            _observed[key] = _Observed(worst, last, count, seen)
    if step.now < until:
        return False
    _observed.pop(key, None)
    observed = _observed_fields(worst, last, count, seen) if count else {}
    if not count:
        message = (
            f"no conclusive evaluation within the validation window {policy.validation.window}"
        )
        step.move(
            "Failed",
            reasons.VALIDATION_FAILED,
            message,
            warning=True,
            validation={"verdict": "Failed", "message": message},
        )
        _escalate(step, message)
        return True
    message = f"impact score stayed below clearBelow {policy.clear_below} for {policy.validation.window} (max {worst:.3f})"
    step.move(
        "Succeeded",
        reasons.VALIDATION_SUCCEEDED,
        message,
        validation={"verdict": "Passed", "message": message, **observed},
        outcome=_outcome(step, worst, last, achieved=True),
    )
    return True


OBSERVED_STEP = 0.05  # a validation maximum this far above the written one is written at once


@dataclass(frozen=True)
class _Observed:
    """Validation evaluations seen since the last write of a decision's validation."""

    worst: float | None
    last: float | None
    count: int
    seen: float  # the last evaluation's time


_observed: dict[tuple[str, str, str], _Observed] = {}


def _observed_fields(
    worst: float | None, last: float | None, count: int, seen: float | None
) -> dict[str, Any]:
    return {
        "observedMaxScore": worst,
        "observedLastScore": last,
        "evaluations": count,
        "lastEvaluationAt": _iso(seen) if seen is not None else None,
    }


def _outcome(
    step: _Step, worst: float | None, last: float | None, *, achieved: bool
) -> dict[str, Any]:
    spec = step.spec
    options = {o.action: o for o in spec.options}
    hold, chosen = options.get("Hold"), options.get(spec.recommended.action)
    expected_avoided = hold.expected_loss - chosen.expected_loss if hold and chosen else None
    horizon = duration_seconds(spec.policy.effective.authorization.approval_timeout) / 3600
    observed_avoided = (spec.impact.score - (last or 0.0)) * horizon if last is not None else None
    money = spec.impact.money_at_risk
    verdict = "achieved" if achieved else "not achieved"
    return {
        "expectedScoreAfter": 0.0,
        "observedScoreAfter": worst,
        "expectedLossAvoided": expected_avoided,
        "observedLossAvoided": observed_avoided,
        "moneyAtRiskBefore": money.per_hour if money else None,
        "summary": f"score {spec.impact.score:.3f} -> {worst if worst is not None else float('nan'):.3f} after the rollback: {verdict}",
    }


def _escalate(step: _Step, why: str) -> None:
    """Stop automatic actions on the ModelDeployment until a human clears it."""
    mdep = step.model_deployment()
    step.life.cluster.patch_status(
        "ModelDeployment",
        namespace=step.namespace,
        name=mdep["metadata"]["name"],
        status={"phase": "Escalated", "escalatedAt": _iso(step.now), "escalationReason": why},
    )
    step.life.recorder.transition(
        obj=mdep,
        reason=reasons.ESCALATED,
        message=f"ModelDeployment {step.namespace}/{mdep['metadata']['name']} escalated to humans: {why}",
        warning=True,
    )


def _export(step: _Step) -> None:
    """Once final: the audit line with the whole decision, then garbage collection."""
    audit = step.status.audit
    if audit is None or audit.exported:
        return
    step.life.recorder.audit.write(
        {
            "event": "DecisionFinal",
            "namespace": step.namespace,
            "name": step.name,
            "decision": dict(step.obj),
        }
    )
    step.obj = step.life.cluster.patch_status(
        "RollbackDecision",
        namespace=step.namespace,
        name=step.name,
        status={"audit": {**audit.wire(), "exported": True}},
    )
    _collect(step)


def _collect(step: _Step) -> None:
    """Keep the newest ``keep_decisions`` decisions of the ModelDeployment; older final,
    exported ones are deleted and the chain head records where the chain now begins."""
    mdep_name = step.spec.model_deployment_ref.name
    items = step.life.cluster.list_objects(
        "RollbackDecision",
        namespace=step.namespace,
        label_selector=f"{LABEL_MODEL_DEPLOYMENT}={mdep_name}",
    )
    sealed = sorted(
        (i for i in items if (i.get("status") or {}).get("audit")),
        key=lambda i: i["status"]["audit"]["sequence"],
    )
    excess = sealed[: max(0, len(sealed) - step.life.keep_decisions)]
    for item in excess:
        st = item["status"]
        if (
            st.get("phase") not in FINAL_PHASES
            or not st["audit"].get("exported")
            or review_pending(item)
        ):
            break  # the chain is pruned from its start only, and only what was exported
        try:
            step.life.cluster.delete(
                "RollbackDecision", namespace=step.namespace, name=item["metadata"]["name"]
            )
        except ApiError as err:
            if err.status != 404:
                raise
        step.life.cluster.patch_status(
            "ModelDeployment",
            namespace=step.namespace,
            name=mdep_name,
            status={
                "audit": {
                    "prunedThrough": st["audit"]["sequence"],
                    "prunedHash": st["audit"]["hash"],
                }
            },
        )
        step.life.recorder.audit.write(
            {
                "event": reasons.DECISION_PRUNED,
                "namespace": step.namespace,
                "name": item["metadata"]["name"],
                "sequence": st["audit"]["sequence"],
            }
        )


_HANDLERS = {
    "": _new,
    "PendingApproval": _pending,
    "Approved": _approved,
    "Executing": _executing,
    "Validating": _validating,
}
