"""The decision machine's rules between evaluations: what the operator does with a fired
trigger point, and how a decision moves from creation to its end.

PURE: rollguard.api and the decision core only; no I/O, no clock (``now`` is an argument).
Callers, each for every choice it makes: the operator's evaluation cycle
(``control.cycle``) and decision lifecycle (``control.lifecycle``), the recorded-series
simulator (``rollguard.simulation.virtual``, behind ``rollguard simulate --series`` and ``backtest``) and
the Monte Carlo (``rollguard.simulation.scenario_run``). A rule changed here changes all of them at once; the
differential test (tests/unit/control/test_differential.py) runs the simulator and the
operator's control code on the same data and compares their decision timelines.

The rules, in the order an evaluation meets them:
1. Executions since the last evaluation are absorbed into the guard state
   (``absorb_executions``): budget spent, and for a Rollback the cooldown started and the
   dwell timers reset.
2. A member may fire only while it has no open decision and is not escalated (``may_fire``).
3. A fired point becomes a decision. Its action falls back to Hold when it cannot be taken
   (``recommend``): a Rollback without an approved older revision, a Pause without a rollout
   in progress. A Hold is never an action: it spends no budget and starts no cooldown.
4. A point blocked by the action budget escalates the member to humans (``escalation``).
5. The decision's lifecycle: its first phase (``first_phase``), approval or its timeout
   (``approval_outcome``), and validation after a rollback (``validation_span``,
   ``validation_failed``); a failed rollback escalates too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Literal

from rollguard.api.base import duration_seconds
from rollguard.api.decision import Approval
from rollguard.api.modeldeployment import GuardState
from rollguard.api.policy import Action, EffectivePolicy, Mode

FirstPhase = Literal["DryRun", "Succeeded", "PendingApproval", "Approved"]
ApprovalOutcome = Literal["NotAllowed", "Granted", "Rejected", "TimeoutExecute", "Expired"]

ESCALATION_BUDGET = "budget"
ESCALATION_FAILED = "failed"

# The fields that judge: a change of any of them restarts the evaluation state (dwell timers),
# a change of anything else (approvers, timeouts, notify, mode) leaves it alone.
JUDGING_FIELDS = ("evaluation", "signals", "impact", "triggers", "clear_below")


def judging_hash(policy: EffectivePolicy) -> str:
    """``sha256:`` digest of the fields of ``policy`` that judge (JUDGING_FIELDS)."""
    dumped = policy.model_dump(mode="json", by_alias=True, include=set(JUDGING_FIELDS))
    text = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def carried_state(state: GuardState, *, stored_hash: str | None, policy_hash: str) -> GuardState:
    """The guard state to evaluate with after the policy may have changed: unchanged when the
    judging fields are the same; otherwise the dwell timers restart (trigger indices may mean
    other points now), while the episode, the executed actions and a waiting re-offer are
    kept, so an edit never makes a decision fire twice."""
    if stored_hash == policy_hash or not state.above_since:
        return state
    return state.model_copy(update={"above_since": {}})


def absorb_executions(state: GuardState, executed: Iterable[tuple[float, Action]]) -> GuardState:
    """``state`` with every executed action in ``executed`` ((time, action) pairs, Rollback or
    Pause) accounted for: its time among the action times (the budget) and, for the newest
    Rollback, the cooldown's start. A Rollback not seen before also resets the dwell timers and
    cancels a waiting re-offer, as ``guard.record_action`` does when it happens."""
    known = set(state.action_times)
    done = sorted(set(executed))
    if not done:
        return state
    update: dict[str, object] = {}
    new_times = {t for t, _ in done} - known
    if new_times:
        update["action_times"] = sorted(known | new_times)
    rollbacks = [t for t, action in done if action == "Rollback"]
    newest = max(rollbacks, default=None)
    if newest is not None and (state.changed_at is None or newest > state.changed_at):
        update["changed_at"] = newest
        if newest in new_times:
            update.update(
                above_since={}, reoffer_at=None, reoffer_action=None, reoffer_min_score=None
            )
    return state.model_copy(update=update) if update else state


def may_fire(*, open_decision: bool, escalated: bool) -> bool:
    """Whether a member may fire a trigger point now: one decision at a time, and none while
    humans have taken over."""
    return not open_decision and not escalated


def escalation(blocked: str, action: Action) -> str | None:
    """Why a decision recommending ``action`` for a point fired with ``blocked`` escalates
    its member to humans, or None: beyond the action budget automatic actions stop (this is
    what ends a fight with a GitOps tool that keeps re-applying the bad revision). A cooldown
    only asks a human for this one decision, and a Hold needs nobody."""
    return ESCALATION_BUDGET if blocked == "budget" and action != "Hold" else None


def after_decision(state: GuardState, *, blocked: str, action: Action) -> GuardState:
    """The guard state once a decision recommends ``action`` for a point the guard fired with
    ``blocked``. A point blocked by cooldown waits for the cooldown's end to be offered again;
    but when it fell back to a Hold there is nothing to offer again (a Hold is never blocked),
    so the episode rises to it like any other fired point."""
    if blocked != "cooldown" or action != "Hold" or state.reoffer_min_score is None:
        return state
    return state.model_copy(
        update={
            "episode_action": state.reoffer_action,
            "episode_min_score": state.reoffer_min_score,
            "reoffer_at": None,
            "reoffer_action": None,
            "reoffer_min_score": None,
        }
    )


def recommend(wanted: Action, *, has_target: bool, rollout_in_progress: bool) -> tuple[Action, str]:
    """The action a decision recommends for a fired point of action ``wanted``, and "" or why
    it fell back to Hold: a Rollback needs an approved older revision, a Pause a rollout in
    progress."""
    if wanted == "Rollback" and not has_target:
        return "Hold", "no target"
    if wanted == "Pause" and not rollout_in_progress:
        return "Hold", "no rollout in progress"
    return wanted, ""


def healthy_since(
    *,
    previous: float | None,
    same_revision: bool,
    score: float | None,
    degraded: bool,
    clear_below: float,
    now: float,
) -> float | None:
    """Since when the current revision has been healthy (conclusive, below clearBelow, no
    episode open), for approval by bake time; None while it is not."""
    healthy = score is not None and score < clear_below and not degraded
    if not healthy:
        return None
    return (previous if same_revision else None) or now


def first_phase(*, mode: Mode, action: Action, requires_approval: bool) -> FirstPhase:
    """Where a new decision goes first: DryRun records only, a Hold is done at once, an action
    outside the auto-approval boundary waits for a human, anything else is approved."""
    if mode == "DryRun":
        return "DryRun"
    if action == "Hold":
        return "Succeeded"
    return "PendingApproval" if requires_approval else "Approved"


def approval_outcome(
    policy: EffectivePolicy, approval: Approval | None, *, created: float, now: float
) -> ApprovalOutcome | None:
    """What a pending decision's approval says at ``now``, or None while it still waits: an
    approver outside the policy's list is refused, an approval or rejection is taken, and at
    approvalTimeout ``onTimeout`` decides."""
    authorization = policy.authorization
    if approval is not None:
        if authorization.approvers and approval.by not in authorization.approvers:
            return "NotAllowed"
        return "Granted" if approval.decision == "Approve" else "Rejected"
    if now - created < duration_seconds(authorization.approval_timeout):
        return None
    return "TimeoutExecute" if authorization.on_timeout == "Execute" else "Expired"


def validation_span(
    policy: EffectivePolicy, *, completed_at: float, settle: float, scrape_interval: float
) -> tuple[float, float]:
    """(first, until): evaluations at or after ``first`` judge a rollback that finished rolling
    out at ``completed_at``; the verdict is due at ``until``. Evaluations right after the
    rollout still see the bad revision: through their window, through the ranges inside the
    queries (``settle``: rate(...[1m]) looks back a minute) and through one scrape interval."""
    first = completed_at + duration_seconds(policy.evaluation.window) + settle + scrape_interval
    return first, first + duration_seconds(policy.validation.window)


def validation_failed(policy: EffectivePolicy, score: float) -> bool:
    """Whether one conclusive evaluation during validation fails the rollback."""
    return score >= policy.clear_below
