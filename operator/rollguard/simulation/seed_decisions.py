"""The Monte Carlo's decisions: what the operator does between evaluations, for every seed of a
batch at once.

PURE: numpy + rollguard.api and rollguard.core; no I/O, no clock. Only ``rollguard.simulation.scenario_run`` uses it.

``virtual.VirtualMember`` is the operator for one member; ``Decisions`` is the same lifecycle
held in arrays, at most one open decision per seed, by the same rules: each seed whose
decision moves is moved by the machine's own functions (``machine``, ``options``), so the cost
follows the decisions, which are rare, not the seeds. What the scenario says about the
Deployment comes from ``simseries``: whether a rollout is in progress (a Pause can act) and
whether an approved older revision exists (a Rollback can act). At each evaluation, after the
guard advanced with ``may_fire`` as its ``can_fire`` mask:

1. A rollback being validated is judged by this evaluation (``machine.validation_failed``);
   at the end of its span (``machine.validation_span``, from the rollout's completion
   ``scenario.rolloutDelay`` after the execution) it succeeds if a conclusive evaluation
   judged it. A failure escalates the seed.
2. A fired point becomes a decision. Its action falls back to Hold when it cannot be taken
   (``machine.recommend``); it needs approval when outside the auto-approval boundary or
   blocked (``options.boundary_failures``, as ``decide``); a point blocked by the budget
   escalates the seed (``machine.escalation``); the decision goes to its first phase
   (``machine.first_phase``).
3. A decision waiting for approval is approved by a human ``scenario.approvalDelay`` after it
   was made (nobody when null), else its approval timeout decides
   (``machine.approval_outcome``).
4. An approved Rollback or Pause executes now: a Pause is then done, a Rollback is validated.
   The caller applies the execution to the guard state and to the series.

An escalated seed makes no new decision: nobody clears an escalation in a simulation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.api.decision import Approval
from rollguard.api.policy import ACTIONS, EffectivePolicy
from rollguard.core import machine
from rollguard.core.guard import BLOCKED_COOLDOWN
from rollguard.core.options import boundary_failures
from rollguard.simulation.scenarios import Scenario
from rollguard.simulation.seed_series import SimSeries

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
Bool = NDArray[np.bool_]

ESCALATIONS: tuple[str, ...] = (
    "",
    BLOCKED_COOLDOWN,
    machine.ESCALATION_BUDGET,
    machine.ESCALATION_FAILED,
)
"""Codes of ``Decisions.escalation``: why humans were needed at an evaluation. A decision
blocked by cooldown waits for an approval; beyond the budget, or after a failed validation,
automatic actions stop."""
_COOLDOWN, _BUDGET, _FAILED = 1, 2, 3

_IDLE, _PENDING, _VALIDATING = 0, 1, 2  # where a seed's decision stands

APPROVER = "simulated-approver"
# A rollback target is the approved revision right before the bad one.
REVISIONS_BACK = 1
# Seeds whose approval cannot be due yet are skipped; ``machine.approval_outcome`` decides for
# the rest, so this slack only has to exceed rounding.
_DUE_SLACK = 1.0


class Decisions:
    """The decisions of every seed's acted copy, B seeds over J evaluations.

    Outputs, (J, B): ``recommended[j, b]`` the action (ACTIONS index) of the decision made at
    evaluation j, -1 for none; ``executed[j, b]`` that decision was executed (then or after
    an approval); ``executions[j, b]`` an action was executed at evaluation j;
    ``escalation[j, b]`` why humans were needed at evaluation j (ESCALATIONS index).
    """

    def __init__(
        self, policy: EffectivePolicy, scenario: Scenario, series: SimSeries, *, evaluations: int
    ) -> None:
        n_b = series.seeds
        self.policy, self.series = policy, series
        auth = policy.authorization
        self.timeout = duration_seconds(auth.approval_timeout)
        delay = scenario.approval_delay
        self.delay = None if delay is None else duration_seconds(delay)
        # A human outside the policy's approvers could not approve: one of them does.
        by = auth.approvers[0] if auth.approvers else APPROVER
        self.approval = Approval(decision="Approve", by=by, reason="simulated")
        self.rollout = duration_seconds(scenario.rollout_delay)
        self.scrape = scenario.dt  # the scenario's samples are the signals: nothing to settle
        self.phase = np.zeros(n_b, dtype=np.int8)
        self.made = np.zeros(n_b, dtype=np.int64)  # evaluation of the open decision
        self.created = np.zeros(n_b)  # its time, Unix seconds
        self.due = np.zeros(n_b)  # pending: its approval or timeout is not due before this
        self.first = np.zeros(n_b)  # validating: evaluations from here judge the rollback
        self.until = np.zeros(n_b)  # validating: the verdict is due here
        self.observed = np.zeros(n_b, dtype=np.int64)  # validating: conclusive evaluations
        self.escalated = np.zeros(n_b, dtype=np.bool_)
        self.may_fire = np.ones(n_b, dtype=np.bool_)  # machine.may_fire of each seed
        self.rolled_back_at = np.full(n_b, np.nan)  # when the newest rollback took effect
        self.open = 0  # seeds with an open decision
        self.recommended = np.full((evaluations, n_b), -1, dtype=np.int8)
        self.executed = np.zeros((evaluations, n_b), dtype=np.bool_)
        self.executions = np.zeros((evaluations, n_b), dtype=np.bool_)
        self.escalation = np.zeros((evaluations, n_b), dtype=np.int8)

    def step(
        self,
        j: int,
        *,
        now: float,
        t: float,
        k: int,
        fired: I64,
        blocked: NDArray[np.str_],
        score: F64,
    ) -> tuple[I64, I64]:
        """Move every decision as far as it goes at evaluation ``j`` (Unix time ``now``, ``t``
        seconds from the start, newest sample ``k``) after the guard fired ``fired`` (B,),
        blocked ``blocked`` (B,), on the acted copies' scores ``score`` (B,). Returns the
        seeds whose Rollback and whose Pause execute now, already recorded as executed."""
        if self.open:
            self._validate(j, now, score)
        ready = self._decide(j, now=now, t=t, k=k, fired=fired, blocked=blocked, score=score)
        if self.open:
            ready += self._approvals(now)
        go = np.array(sorted(ready), dtype=np.int64)
        if not go.size:
            return go, go
        rollback = ACTIONS.index("Rollback")
        self.executions[j, go] = True
        self.executed[self.made[go], go] = True
        is_rollback = self.recommended[self.made[go], go] == rollback
        rollbacks, pauses = go[is_rollback], go[~is_rollback]
        for b, rolls in zip(go.tolist(), is_rollback.tolist(), strict=True):
            self._set(b, _VALIDATING if rolls else _IDLE)  # a Pause is done once executed
        completed = now + self.rollout
        first, until = machine.validation_span(
            self.policy, completed_at=completed, settle=0.0, scrape_interval=self.scrape
        )
        self.first[rollbacks], self.until[rollbacks] = first, until
        self.observed[rollbacks] = 0
        self.rolled_back_at[rollbacks] = t + self.rollout
        return rollbacks, pauses

    def _set(self, b: int, phase: int) -> None:
        self.open += int(phase != _IDLE) - int(self.phase[b] != _IDLE)
        self.phase[b] = phase
        self.may_fire[b] = machine.may_fire(
            open_decision=phase != _IDLE, escalated=bool(self.escalated[b])
        )

    def _escalate(self, j: int, b: int, code: int) -> None:
        self.escalation[j, b] = code
        self.escalated[b] = True
        self._set(b, int(self.phase[b]))

    def _decide(
        self,
        j: int,
        *,
        now: float,
        t: float,
        k: int,
        fired: I64,
        blocked: NDArray[np.str_],
        score: F64,
    ) -> list[int]:
        """Open a decision for every fired seed; the seeds whose decision is approved at once."""
        new = np.flatnonzero(fired >= 0)
        if not new.size:
            return []
        policy = self.policy
        has_target = self.series.rollback_target(self.rolled_back_at[new], at=t)
        rolling = self.series.rolling_out(new, at=t, index=k)
        approved: list[int] = []
        for i, b in enumerate(new.tolist()):
            wanted = policy.triggers[int(fired[b])].action
            why = str(blocked[b])
            action, _ = machine.recommend(
                wanted, has_target=bool(has_target[i]), rollout_in_progress=bool(rolling[i])
            )
            back = REVISIONS_BACK if action == "Rollback" else 0
            requires = action != "Hold" and bool(
                boundary_failures(policy, action, float(score[b]), back, why)
            )
            phase = machine.first_phase(mode=policy.mode, action=action, requires_approval=requires)
            self.recommended[j, b] = ACTIONS.index(action)
            if machine.escalation(why, action) is not None:
                self._escalate(j, b, _BUDGET)
            elif why == BLOCKED_COOLDOWN and phase == "PendingApproval":
                self.escalation[j, b] = _COOLDOWN
            if phase not in ("Approved", "PendingApproval"):
                continue  # DryRun or Hold: recorded, nothing to wait for
            self.made[b], self.created[b] = j, now
            if phase == "Approved":
                approved.append(b)
            else:
                wait = self.timeout if self.delay is None else min(self.delay, self.timeout)
                self.due[b] = now + wait - _DUE_SLACK
                self._set(b, _PENDING)
        return approved

    def _approvals(self, now: float) -> list[int]:
        """Resolve the approvals due at ``now``; the seeds whose decision is approved."""
        approved: list[int] = []
        for b in np.flatnonzero((self.phase == _PENDING) & (self.due <= now)).tolist():
            created = float(self.created[b])
            human = self.delay is not None and now >= created + self.delay
            outcome = machine.approval_outcome(
                self.policy, self.approval if human else None, created=created, now=now
            )
            if outcome in ("Granted", "TimeoutExecute"):
                approved.append(b)
            elif outcome is not None:  # rejected, expired or not allowed: nothing executes
                self._set(b, _IDLE)
        return approved

    def _validate(self, j: int, now: float, score: F64) -> None:
        """One evaluation of every rollback being validated."""
        validating = np.flatnonzero(self.phase == _VALIDATING)
        if not validating.size:
            return
        judged = validating[(now >= self.first[validating]) & ~np.isnan(score[validating])]
        for b in judged.tolist():
            self.observed[b] += 1
            if machine.validation_failed(self.policy, float(score[b])):
                self._set(b, _IDLE)
                self._escalate(j, b, _FAILED)
        ending = validating[
            (self.phase[validating] == _VALIDATING) & (now >= self.until[validating])
        ]
        for b in ending.tolist():
            self._set(b, _IDLE)
            if not self.observed[b]:  # nothing conclusive to judge the rollback by
                self._escalate(j, b, _FAILED)
