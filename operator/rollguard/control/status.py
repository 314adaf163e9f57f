"""What a ModelDeployment's status says after an evaluation, decided without writing: its
phase and message, and whether the new status is worth a write; and, for one that is not
evaluated, the status that says why. Called by ``plan`` and ``writes``, which writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rollguard.api.modeldeployment import (
    ApprovedRevision,
    GuardState,
    LastEvaluation,
    ModelDeploymentStatus,
    Phase,
)
from rollguard.control import reasons
from rollguard.control.members import Member, NotReady
from rollguard.control.records import DecisionSummary
from rollguard.core import engine
from rollguard.core.conditions import set_ready
from rollguard.core.times import to_datetime

SCORE_STEP = 0.05  # a change of the impact score this large is written at once
ACTIVE_TO_PHASE: dict[str, Phase] = {
    "PendingApproval": "AwaitingApproval",
    "Approved": "RollingBack",
    "Executing": "RollingBack",
    "Validating": "Validating",
}
TRANSITION_REASONS: dict[str, str] = {
    "Degraded": reasons.BECAME_DEGRADED,
    "Healthy": reasons.RECOVERED,
    "Inconclusive": reasons.BECAME_INCONCLUSIVE,
}
"""The phases whose change is an Event about the ModelDeployment, with its reason."""


def evaluated_status(
    m: Member,
    *,
    phase: Phase,
    message: str,
    approved: list[ApprovedRevision],
    evaluation: LastEvaluation,
    last_decision: str | None,
    guard: GuardState,
    policy_hash: str,
    healthy_since: float | None,
    escalation: Mapping[str, Any],
    audit: Mapping[str, Any] | None,
    now: float,
) -> ModelDeploymentStatus:
    """The member's status after an evaluation at ``now``; ``escalation``: the escalation
    fields it sets or clears; ``audit``: the link of a decision just created, the chain's new
    head."""
    generation = m.obj["metadata"].get("generation")
    conditions = set_ready(
        m.status.conditions,
        ready="True",
        reason=reasons.EVALUATED,
        message=message,
        invalid=False,
        now=to_datetime(now),
        generation=generation,
    )
    stable = next((a.revision for a in approved if a.revision <= m.current), None)
    status = m.status.model_copy(
        update={
            "phase": phase,
            "message": message,
            "target": f"{m.spec.target.kind}/{m.spec.target.name}",
            "current_revision": m.current,
            "stable_revision": stable,
            "approved_revisions": approved,
            "last_evaluation": evaluation,
            "last_decision": last_decision,
            "guard": guard,
            "policy_hash": policy_hash,
            "healthy_since": healthy_since,
            "conditions": conditions,
            "observed_generation": generation,
            **escalation,
        }
    )
    if audit is None:
        return status
    head = {"sequence": audit.get("sequence", 0), "hash": audit.get("hash", "")}
    return status.model_copy(update={"audit": m.status.audit.model_copy(update=head)})


def phase_of(
    m: Member,
    result: engine.StepResult,
    b: int,
    *,
    active: DecisionSummary | None,
    escalated: bool,
    score: float | None,
    clear_below: float,
    cooldown_seconds: float,
    now: float,
) -> tuple[Phase, str]:
    """The member's phase and the status message that explains it."""
    if escalated:
        return (
            "Escalated",
            m.status.escalation_reason or "automatic actions stopped; a human must clear it",
        )
    if active is not None and active.phase in ACTIVE_TO_PHASE:
        return ACTIVE_TO_PHASE[active.phase], f"decision {active.name} is {active.phase}"
    if active is not None and not active.phase and active.acts:
        # Just created; its first lifecycle step follows at once.
        phase: Phase = "AwaitingApproval" if active.requires_approval else "RollingBack"
        return phase, f"decision {active.name} was just made"
    changed = m.status.guard.changed_at
    cooldown = changed is not None and now - changed < cooldown_seconds
    if score is None:
        return "Inconclusive", "no signal had enough data to judge"
    if bool(result.state.degraded[b]):
        return "Degraded", f"impact score {score:.3f}; recovers below clearBelow {clear_below}"
    if cooldown:
        return "Cooldown", f"impact score {score:.3f}; cooling down after an automatic action"
    return "Healthy", f"impact score {score:.3f}"


def _material(status: ModelDeploymentStatus) -> dict[str, Any]:
    """What a human or a restart needs from the status, without what moves every evaluation:
    the last evaluation's numbers, the message quoting them, the conditions' wording."""
    wire = status.wire()
    for key in ("lastEvaluation", "message", "conditions"):
        wire.pop(key, None)
    wire["conditions"] = [(c.type, c.status, c.reason) for c in status.conditions]
    return wire


def worth_writing(
    stored: ModelDeploymentStatus, new: ModelDeploymentStatus, *, refresh: float, now: float
) -> bool:
    """Whether an evaluation's status must be written: anything material changed (phase,
    decision-core state, revisions, chain, escalation, conditions), the score moved by
    SCORE_STEP or between known and unknown, or the stored evaluation is ``refresh`` old. A
    steady fleet writes each status every ``refresh`` seconds, not every interval."""
    before, after = stored.last_evaluation, new.last_evaluation
    if before is None or after is None or _material(stored) != _material(new):
        return True
    if (before.score is None) != (after.score is None):
        return True
    old, score = before.score, after.score
    if old is not None and score is not None and abs(score - old) >= SCORE_STEP:
        return True
    return now - before.time.timestamp() >= refresh


def not_ready_status(n: NotReady, *, now: datetime) -> ModelDeploymentStatus | None:
    """The status that says why a ModelDeployment is not evaluated; None when it says so
    already."""
    generation = n.obj["metadata"].get("generation")
    conditions = set_ready(
        n.status.conditions,
        ready="False",
        reason=n.reason,
        message=n.message,
        invalid=n.invalid,
        now=now,
        generation=generation,
    )
    if n.status.conditions == conditions:
        return None
    return n.status.model_copy(
        update={"conditions": conditions, "message": n.message, "observed_generation": generation}
    )
