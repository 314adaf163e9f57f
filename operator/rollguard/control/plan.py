"""What a cycle decides for its members, as values: no reads, no writes.

``judge_batch`` runs the decision core once over the whole batch; ``judge`` says, per member,
what its evaluation found and which RollbackDecision to create, if any; once the decision is
created (or refused), ``plan_member`` returns the ``MemberPlan``: the status to write, whether
it is worth writing (the status rules are in ``status``), and the Events to post. ``cycle``
calls them; ``writes`` carries them out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from rollguard.api.base import duration_seconds
from rollguard.api.decision import RevisionContext, RollbackDecisionSpec, Samples
from rollguard.api.labels import CLEAR_ANNOTATION
from rollguard.api.modeldeployment import (
    ApprovedRevision,
    AuditHead,
    GuardState,
    LastEvaluation,
    ModelDeploymentStatus,
)
from rollguard.control import reasons
from rollguard.control.members import Member
from rollguard.control.policy_context import PolicyContext
from rollguard.control.records import DecisionSummary, next_link
from rollguard.control.status import (
    TRANSITION_REASONS,
    evaluated_status,
    phase_of,
    worth_writing,
)
from rollguard.core import engine, machine
from rollguard.core.decide import build_spec, decide, policy_snapshot
from rollguard.core.evidence import last_evaluation
from rollguard.core.revisions import (
    approved_revisions,
    parse_human_hashes,
    revision_born,
    revision_context,
)
from rollguard.core.tiers import default_bake_time
from rollguard.core.times import api_seconds, to_datetime
from rollguard.signals.measure import MeasurementBatch, to_measurements


@dataclass(frozen=True)
class Event:
    """An Event (and its audit line) to post about ``obj``; ``extra`` goes to the audit line."""

    obj: Mapping[str, Any]
    reason: str
    message: str
    warning: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Escalation:
    """Whether a member is escalated to humans at the start of the cycle; when a human has
    cleared it since it escalated, the status update and the Event that say so."""

    escalated: bool
    update: Mapping[str, Any] = field(default_factory=dict)
    cleared: Event | None = None


def escalation_now(m: Member) -> Escalation:
    """The member's escalation at the start of the cycle (``rollguard clear`` ends one)."""
    escalated_at = m.status.escalated_at
    cleared = cleared_at(m.obj)
    if escalated_at is None or cleared is None or cleared <= escalated_at:
        return Escalation(escalated_at is not None)
    event = Event(
        m.obj,
        reasons.ESCALATION_CLEARED,
        f"ModelDeployment {m.namespace}/{m.name}: escalation cleared by a human; "
        "automatic actions resume",
    )
    return Escalation(False, {"escalated_at": None, "escalation_reason": None}, event)


def cleared_at(obj: Mapping[str, Any]) -> datetime | None:
    """When a human last cleared an escalation (``rollguard clear``), from the annotation."""
    raw = (obj["metadata"].get("annotations") or {}).get(CLEAR_ANNOTATION)
    seconds = api_seconds(raw)
    return None if seconds is None else to_datetime(seconds)


@dataclass(frozen=True)
class Batch:
    """One cycle's members as the decision core judged them at ``now``: the guard states
    before and after its step, and what a decision made now records as evidence."""

    policy: PolicyContext
    members: Sequence[Member]
    measured: MeasurementBatch
    samples: Sequence[Sequence[Samples | None]]
    born: Sequence[float | None]
    escalations: Sequence[Escalation]
    result: engine.StepResult
    before: Sequence[GuardState]
    after: Sequence[GuardState]
    judging: str  # the judging hash of the policy
    operator_version: str
    now: float

    def wants_decision(self, b: int, active: DecisionSummary | None) -> bool:
        """Whether member ``b`` fired a point that becomes a decision now."""
        return (
            int(self.result.fired[b]) >= 0 and active is None and not self.escalations[b].escalated
        )


def judge_batch(
    policy: PolicyContext,
    members: Sequence[Member],
    decisions: Mapping[tuple[str, str], Sequence[DecisionSummary]],
    measured: MeasurementBatch,
    escalations: Sequence[Escalation],
    *,
    operator_version: str,
    now: float,
) -> Batch:
    """One step of the decision core over every member at once."""
    eff = policy.effective
    judging = machine.judging_hash(eff)
    states: list[GuardState] = []
    open_now: list[bool] = []
    for m in members:
        guard = machine.carried_state(
            m.status.guard, stored_hash=m.status.policy_hash, policy_hash=judging
        )
        mine = decisions.get((m.namespace, m.name), ())
        executed = [(d.executed_at, d.action) for d in mine if d.executed_at is not None]
        states.append(machine.absorb_executions(guard, executed))
        open_now.append(any(not d.final for d in mine))
    # Since when each current revision can have data: a younger series is warming up.
    born = [
        revision_born(m.records, current=m.current, changed_at=st.changed_at)
        for m, st in zip(members, states, strict=True)
    ]
    measurements, samples = to_measurements(measured, born=born)
    can_fire = np.array(
        [
            machine.may_fire(open_decision=o, escalated=e.escalated)
            for o, e in zip(open_now, escalations, strict=True)
        ],
        dtype=np.bool_,
    )
    result = engine.step(
        eff, measurements, engine.state_to_arrays(eff, states), now=now, can_fire=can_fire
    )
    return Batch(
        policy=policy,
        members=members,
        measured=measured,
        samples=samples,
        born=born,
        escalations=escalations,
        result=result,
        before=states,
        after=engine.arrays_to_states(eff, result.state),
        judging=judging,
        operator_version=operator_version,
        now=now,
    )


def decision_name(member: Member, trigger_index: int, since: float, sequence: int) -> str:
    """Deterministic per episode, trigger point and place in the chain: a crash between
    creating a decision and recording it makes the next cycle find the same name, not create
    a second decision; a point offered again (after a cooldown) gets a name of its own."""
    uid = member.obj["metadata"].get("uid", "")
    seed = f"{uid}|{trigger_index}|{since:.0f}|{sequence}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:10]
    return f"{member.name[:200]}-{digest}"


@dataclass(frozen=True)
class NewDecision:
    """A RollbackDecision to create, linked after ``audit_head`` and the ``known`` ones."""

    name: str
    spec: RollbackDecisionSpec
    audit_head: AuditHead
    known: Sequence[DecisionSummary]


@dataclass(frozen=True)
class Judged:
    """A member's evaluation, before the decision it makes (if any) is created."""

    member: Member
    evaluation: LastEvaluation
    healthy_since: float | None
    approved: list[ApprovedRevision]
    active: DecisionSummary | None  # its decision still open
    decision: NewDecision | None


def judge(
    batch: Batch, b: int, m: Member, known: Sequence[DecisionSummary], audit_head: AuditHead
) -> Judged:
    """Member ``b`` (``m``, as last read) with its ``known`` decisions and chain head."""
    eff, now = batch.policy.effective, batch.now
    active = next((d for d in known if not d.final), None)
    evaluation = last_evaluation(eff, batch.result, b, now=now)
    healthy_since = machine.healthy_since(
        previous=m.status.healthy_since,
        same_revision=m.status.current_revision == m.current,
        score=evaluation.score,
        degraded=bool(batch.result.state.degraded[b]),
        clear_below=eff.clear_below,
        now=now,
    )
    approved = approved_revisions(
        records=m.records,
        previous=m.status.approved_revisions,
        spec_refs=m.spec.approved_revisions or [],
        human_hashes=parse_human_hashes(m.obj["metadata"].get("annotations")),
        current=m.current,
        healthy_since=healthy_since,
        bake_time=m.spec.bake_time or default_bake_time(eff.risk_tier),
        now=now,
    )
    decision = None
    if batch.wants_decision(b, active):
        context = revision_context(
            records=m.records,
            approved=approved,
            current=m.current,
            rollout_in_progress=m.rollout_in_progress,
            born=batch.born[b],
        )
        decision = _new_decision(batch, b, m, context, known=known, audit_head=audit_head)
    return Judged(m, evaluation, healthy_since, approved, active, decision)


def _new_decision(
    batch: Batch,
    b: int,
    m: Member,
    context: RevisionContext,
    *,
    known: Sequence[DecisionSummary],
    audit_head: AuditHead,
) -> NewDecision:
    policy, eff = batch.policy, batch.policy.effective
    draft = decide(
        eff,
        batch.result,
        b,
        samples=batch.samples[b],
        queries=[s.query for s in batch.measured.samples[b]],
        revisions=context,
        business=m.spec.business,
        state_before=batch.before[b],
        now=batch.now,
        mode=m.spec.mode,
    )
    snapshot = policy_snapshot(
        name=policy.name, namespace=policy.namespace, generation=policy.generation, effective=eff
    )
    spec = build_spec(
        draft,
        model_deployment=m.name,
        target=m.spec.target,
        policy=snapshot,
        operator_version=batch.operator_version,
    )
    sequence, _ = next_link(known, audit_head)
    since = draft.trigger.above_since.timestamp()
    name = decision_name(m, int(batch.result.fired[b]), since, sequence)
    return NewDecision(name, spec, audit_head, known)


@dataclass(frozen=True)
class Refused:
    """The API server refused to create the decision (403), saying ``message``."""

    message: str


@dataclass(frozen=True)
class MemberPlan:
    """What one member's evaluation writes: its status (``write``: now, or only its phase
    metric when nothing material changed), and the Events to post first."""

    member: Member
    status: ModelDeploymentStatus
    write: bool
    owns_escalation: bool  # the status sets or clears the escalation itself
    events: tuple[Event, ...]


@dataclass(frozen=True)
class _Made:
    """A member's state once its decision, if any, was created or refused."""

    guard: GuardState
    active: DecisionSummary | None
    last_decision: str | None
    escalation: Escalation
    events: tuple[Event, ...] = ()  # its escalation, when the decision escalates it
    note: str | None = None  # added to the status message
    audit: Mapping[str, Any] | None = None  # the created decision's link: the new chain head


def _made(batch: Batch, b: int, judged: Judged, made: Mapping[str, Any] | Refused | None) -> _Made:
    m, escalation = judged.member, batch.escalations[b]
    if isinstance(made, Refused):
        # Not fired yet: the next cycle tries again.
        note = f"the API server refused its RollbackDecision: {made.message}"
        return _Made(batch.before[b], judged.active, m.status.last_decision, escalation, note=note)
    if made is None or judged.decision is None:
        return _Made(batch.after[b], judged.active, m.status.last_decision, escalation)
    name = made["metadata"]["name"]
    blocked, action = str(batch.result.blocked[b]), judged.decision.spec.recommended.action
    guard = machine.after_decision(batch.after[b], blocked=blocked, action=action)
    audit = made.get("status", {}).get("audit") or {}
    if machine.escalation(blocked, action) != machine.ESCALATION_BUDGET:
        return _Made(guard, DecisionSummary.of(made), name, escalation, audit=audit)
    # Beyond the action budget humans take over: this is what stops a fight with a GitOps
    # tool that keeps re-applying the bad revision.
    budget = batch.policy.effective.safety.max_actions_per_window
    why = (
        f"action budget spent ({budget.count} executed action(s) per {budget.window}); "
        f"decision {name} waits for a human"
    )
    event = Event(
        m.obj,
        reasons.ESCALATED,
        f"ModelDeployment {m.namespace}/{m.name} escalated to humans: {why}",
        warning=True,
    )
    at = to_datetime(batch.now)
    escalated = Escalation(True, {"escalated_at": at, "escalation_reason": why})
    return _Made(guard, DecisionSummary.of(made), name, escalated, (event,), audit=audit)


def plan_member(
    batch: Batch,
    b: int,
    judged: Judged,
    made: Mapping[str, Any] | Refused | None,
    *,
    refresh: float,
) -> MemberPlan:
    """Member ``b``'s status and Events, once the decision ``judged`` asked for was created
    (``made``: the decision as created), refused, or not asked for (None)."""
    m, eff, now = judged.member, batch.policy.effective, batch.now
    after = _made(batch, b, judged, made)
    score = judged.evaluation.score
    phase, message = phase_of(
        m,
        batch.result,
        b,
        active=after.active,
        escalated=after.escalation.escalated,
        score=score,
        clear_below=eff.clear_below,
        cooldown_seconds=duration_seconds(eff.safety.cooldown),
        now=now,
    )
    if after.note is not None:
        message = f"{message}; {after.note}"
    events = list(after.events)
    changed = phase != m.status.phase and phase in TRANSITION_REASONS
    if changed and (m.status.phase is not None or phase != "Healthy"):
        events.append(
            Event(
                m.obj,
                TRANSITION_REASONS[phase],
                f"ModelDeployment {m.namespace}/{m.name}: {message}",
                warning=phase == "Degraded",
                extra={"score": score},
            )
        )
    status = evaluated_status(
        m,
        phase=phase,
        message=message,
        approved=judged.approved,
        evaluation=judged.evaluation,
        last_decision=after.last_decision,
        guard=after.guard,
        policy_hash=batch.judging,
        healthy_since=judged.healthy_since,
        escalation=after.escalation.update,
        audit=after.audit,
        now=now,
    )
    write = after.active is not None or worth_writing(m.status, status, refresh=refresh, now=now)
    return MemberPlan(m, status, write, bool(after.escalation.update), tuple(events))
