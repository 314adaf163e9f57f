"""The operator for one ModelDeployment, in memory: what ``rollguard simulate --series``,
``rollguard backtest`` and the differential test run.

PURE: numpy + rollguard.api and rollguard.core; no I/O, no clock. At every evaluation ``VirtualMember``
does what the operator's cycle and the decision's lifecycle do, in the same order and by the
same rules (``machine``, ``engine``, ``decide``, ``revisions``): absorb executed actions,
score and advance the guard (only while no decision is open and nothing is escalated), keep
the revision approvals (Git and bake), make a decision when a point fires, then move the open
decision as far as it goes now: approval (a simulated human, the policy's first approver,
approves ``approve_after`` seconds after a decision needs one, or never), execution, rollout
(done at once) and validation.

Its Deployment: revisions 1..N, N current, 1..N-1 approved through Git (``Setting``). A
rollback to a revision makes that revision's template the newest revision, as
``kubectl rollout undo`` does; nothing else changes the Deployment. Since when the current
revision can have data (``engine.Measurements.born``, warm-up) follows the operator's rule
(``revisions.revision_born``): ``Setting.born`` at the start (unknown by default), the
rollback's execution after one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from rollguard.api.decision import Approval, RevisionContext, Samples
from rollguard.api.modeldeployment import ApprovedRevision, ApprovedRevisionRef, GuardState
from rollguard.api.policy import Action, EffectivePolicy, NotifyOn
from rollguard.core import engine, machine, notices
from rollguard.core.decide import DecisionDraft, decide
from rollguard.core.revisions import (
    RevisionRecord,
    approved_revisions,
    revision_born,
    revision_context,
)
from rollguard.core.tiers import default_bake_time

APPROVER = "simulated-approver"


@dataclass(frozen=True)
class Setting:
    """What the simulation assumes about the ModelDeployment and the people around it."""

    revisions: int = 2  # revisions 1..N of the Deployment, N current, 1..N-1 approved in Git
    rollout_in_progress: bool = False  # the current revision is still rolling out at the start
    approve_after: float | None = None  # seconds until a human approves; None: nobody does
    settle: float = 0.0  # the queries' own lookback (rate(...[1m]): 60 s), for validation
    scrape_interval: float = 15.0
    bake_time: str | None = None  # ModelDeployment.spec.bakeTime; None: the tier's default
    born: float | None = None  # Unix seconds the current revision started rolling out (its
    #                            ReplicaSet's creation); None: unknown


@dataclass
class VirtualDecision:
    """One decision the operator would have made, and how far it went."""

    time: float
    trigger: int
    wanted: Action  # the fired point's action
    action: Action  # the recommendation (Hold when the wanted action could not be taken)
    score: float
    requires_approval: bool
    blocked: str  # "", "cooldown" or "budget"
    target_hash: str | None
    phase: str = ""
    executed_at: float | None = None
    completed_at: float | None = None
    first: float = 0.0  # validation: evaluations from here judge the rollback
    until: float = 0.0  # validation: the verdict is due here
    observed: int = 0  # conclusive evaluations seen during validation
    worst: float | None = None
    seen: float | None = None
    raised: list[tuple[NotifyOn, ...]] = field(default_factory=list)  # per transition

    @property
    def final(self) -> bool:
        return self.phase in FINAL


FINAL = frozenset({"Succeeded", "Failed", "Rejected", "Expired", "DryRun", "Superseded"})


@dataclass
class Escalated:
    time: float
    reason: str  # machine.ESCALATION_BUDGET or machine.ESCALATION_FAILED


@dataclass
class VirtualMember:
    """One ModelDeployment under ``policy``, evaluated at increasing times."""

    policy: EffectivePolicy
    setting: Setting = field(default_factory=Setting)
    decisions: list[VirtualDecision] = field(default_factory=list)
    escalations: list[Escalated] = field(default_factory=list)  # every time humans took over

    def __post_init__(self) -> None:
        n = max(1, self.setting.revisions)
        self.records = [
            RevisionRecord(
                name=f"rs-{k}",
                revision=k,
                template_hash=f"t{k}",
                image=None,
                template={},
                created=self.setting.born if k == n else None,
            )
            for k in range(1, n + 1)
        ]
        self.current = n
        self.rollout_in_progress = self.setting.rollout_in_progress
        self.spec_refs = [ApprovedRevisionRef(revision=k) for k in range(1, n)]
        self.approved: list[ApprovedRevision] = []
        self.healthy_since: float | None = None
        self.healthy_revision = n
        self.guard = GuardState()
        self.bake = self.setting.bake_time or default_bake_time(self.policy.risk_tier)

    @property
    def escalated(self) -> Escalated | None:
        """The escalation in force (nobody clears one in a simulation), or None."""
        return self.escalations[0] if self.escalations else None

    @property
    def open_decision(self) -> VirtualDecision | None:
        return next((d for d in self.decisions if not d.final), None)

    def evaluate(
        self,
        measured: engine.Measurements,
        *,
        now: float,
        samples: list[Samples | None],
        queries: list[str],
    ) -> engine.StepResult:
        """One evaluation at ``now`` of the member's window ``measured`` (a batch of one; its
        ``born`` is the member's own), then its open decision's lifecycle. ``samples`` are
        the same windows as bounded samples, for a decision's evidence."""
        policy = self.policy
        executed = [(d.executed_at, d.action) for d in self.decisions if d.executed_at is not None]
        state_before = machine.absorb_executions(self.guard, executed)
        born = revision_born(self.records, current=self.current, changed_at=state_before.changed_at)
        measured = replace(measured, born=np.array([math.nan if born is None else born]))
        can = machine.may_fire(
            open_decision=self.open_decision is not None, escalated=self.escalated is not None
        )
        result = engine.step(
            policy,
            measured,
            engine.state_to_arrays(policy, [state_before]),
            now=now,
            can_fire=np.array([can], dtype=np.bool_),
        )
        self.guard = engine.arrays_to_states(policy, result.state)[0]
        score = float(result.score[0])
        known = None if math.isnan(score) else score  # NaN: every signal Inconclusive
        self.healthy_since = machine.healthy_since(
            previous=self.healthy_since,
            same_revision=self.healthy_revision == self.current,
            score=known,
            degraded=bool(result.state.degraded[0]),
            clear_below=policy.clear_below,
            now=now,
        )
        self.healthy_revision = self.current
        self.approved = approved_revisions(
            records=self.records,
            previous=self.approved,
            spec_refs=self.spec_refs,
            human_hashes=(),
            current=self.current,
            healthy_since=self.healthy_since,
            bake_time=self.bake,
            now=now,
        )
        if int(result.fired[0]) >= 0 and can:
            draft = decide(
                policy,
                result,
                0,
                samples=samples,
                queries=queries,
                revisions=self.context(born),
                business=None,
                state_before=state_before,
                now=now,
            )
            self._open(draft, result, now)
        self._advance(now, known)
        return result

    def context(self, born: float | None = None) -> RevisionContext:
        return revision_context(
            records=self.records,
            approved=self.approved,
            current=self.current,
            rollout_in_progress=self.rollout_in_progress,
            born=born,
        )

    def _open(self, draft: DecisionDraft, result: engine.StepResult, now: float) -> None:
        blocked = str(result.blocked[0])
        self.decisions.append(
            VirtualDecision(
                time=now,
                trigger=draft.trigger.index,
                wanted=draft.trigger.action,
                action=draft.recommended.action,
                score=draft.trigger.score,
                requires_approval=draft.requires_approval,
                blocked=blocked,
                target_hash=draft.recommended.to_template_hash,
            )
        )
        action = draft.recommended.action
        self.guard = machine.after_decision(self.guard, blocked=blocked, action=action)
        if machine.escalation(blocked, action) is not None:
            self.escalations.append(Escalated(now, machine.ESCALATION_BUDGET))

    def _advance(self, now: float, score: float | None) -> None:
        d = self.open_decision
        if d is None:
            return
        policy = self.policy
        for _ in range(8):  # as the lifecycle: one transition a pass
            if d.final:
                return
            if d.phase == "":
                _move(
                    d,
                    machine.first_phase(
                        mode=policy.mode, action=d.action, requires_approval=d.requires_approval
                    ),
                )
            elif d.phase == "PendingApproval":
                after = self.setting.approve_after
                approvers = policy.authorization.approvers
                approval = (
                    Approval(
                        decision="Approve",
                        by=approvers[0] if approvers else APPROVER,
                        reason="simulated",
                    )
                    if after is not None and now >= d.time + after
                    else None
                )
                outcome = machine.approval_outcome(policy, approval, created=d.time, now=now)
                if outcome is None:
                    return
                _move(
                    d,
                    "Approved"
                    if outcome in ("Granted", "TimeoutExecute")
                    else ("Expired" if outcome == "Expired" else "Rejected"),
                )
            elif d.phase == "Approved":
                _move(d, "Executing")
            elif d.phase == "Executing":
                self._execute(d, now)
            elif d.phase == "Validating" and not self._validate(d, now, score):
                return

    def _execute(self, d: VirtualDecision, now: float) -> None:
        d.executed_at = now
        if d.action == "Pause":
            _move(d, "Succeeded", changed_workload=True)  # the rollout stays paused
            return
        target = next((r for r in self.records if r.template_hash == d.target_hash), None)
        if target is None:
            d.executed_at = None
            _move(d, "Failed", escalates=True)
            self._escalate(now)
            return
        newest = max(r.revision for r in self.records) + 1
        self.records = [
            RevisionRecord(
                name=r.name,
                revision=newest if r is target else r.revision,
                template_hash=r.template_hash,
                image=r.image,
                template=r.template,
                created=r.created,
            )
            for r in self.records
        ]
        self.current = newest
        self.rollout_in_progress = False
        _move(d, "Validating", changed_workload=True)

    def _validate(self, d: VirtualDecision, now: float, score: float | None) -> bool:
        """One pass of validation; False when nothing more happens now."""
        policy = self.policy
        if d.completed_at is None:
            d.completed_at = now  # the rollout completes at once
            d.first, d.until = machine.validation_span(
                policy,
                completed_at=now,
                settle=self.setting.settle,
                scrape_interval=self.setting.scrape_interval,
            )
            return True
        if score is not None and now >= d.first and (d.seen is None or now > d.seen):
            d.observed += 1
            d.worst = score if d.worst is None else max(d.worst, score)
            d.seen = now
            if machine.validation_failed(policy, score):
                _move(d, "Failed", validation_failed=True, escalates=True)
                self._escalate(now)
                return True
        if now < d.until:
            return False
        if d.observed:
            _move(d, "Succeeded")
        else:
            _move(d, "Failed", validation_failed=True, escalates=True)
            self._escalate(now)
        return True

    def _escalate(self, now: float) -> None:
        self.escalations.append(Escalated(now, machine.ESCALATION_FAILED))


def _move(
    d: VirtualDecision,
    phase: str,
    *,
    changed_workload: bool = False,
    validation_failed: bool = False,
    escalates: bool = False,
) -> None:
    """``d`` moves to ``phase``, raising what the operator's transition raises
    (``core.notices.raised``, with the same causes as ``control.steps``)."""
    d.phase = phase
    d.raised.append(
        notices.raised(
            phase,
            changed_workload=changed_workload,
            validation_failed=validation_failed,
            escalates=escalates,
        )
    )
