"""Candidate actions of a decision: the rollback target, each option's expected loss, and the
auto-approval boundary with the exact condition that fails.

Callers: ``decide`` (and through it the operator, the simulator and ``replay``). PURE, scalar.

Expected loss, in impact-hours (score x hours of exposure, plus a risk term):
- Hold:     score x approvalTimeout. The degradation continues until a human acts, at worst
            until the approval times out.
- Pause:    score x approvalTimeout x 0.5, only while a rollout is in progress: pausing stops
            the new revision from spreading, assumed to halve the exposure.
- Rollback: score x rolloutTimeout + 0.02 x revisions back. The impact lasts until the old
            revision serves again; every revision skipped adds a small risk of its own.
Money, when the money at risk is known: revenue at risk per hour x the same exposure hours,
plus the risk term x revenuePerHour (the risk counts as hours of full revenue impact).
An unavailable option (no target, no rollout to pause) is listed with Hold's cost.

Auto-approval boundary: the action is in autoApprove.actions, score <= autoApprove.maxScore,
revisions back <= autoApprove.maxRevisionsBack (Rollback), and, for Rollback and Pause, the
step did not block it (cooldown, budget). Hold is never blocked and never needs approval.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollguard.api.base import duration_seconds, format_duration
from rollguard.api.decision import ImpactEvidence, Option, RevisionContext, RevisionInfo
from rollguard.api.modeldeployment import GuardState
from rollguard.api.policy import Action, EffectivePolicy
from rollguard.core.engine import (
    BLOCKED_BUDGET,
    BLOCKED_COOLDOWN,
    actions_in_window,
    state_to_arrays,
)

PAUSE_FACTOR = 0.5
ROLLBACK_RISK_PER_REVISION = 0.02  # impact-hours per revision skipped back


@dataclass(frozen=True)
class RollbackTarget:
    """Where a Rollback would go: the newest approved revision older than the current one."""

    revision: RevisionInfo | None
    revisions_back: int
    reason: str


def rollback_target(revisions: RevisionContext) -> RollbackTarget:
    """Like ``kubectl rollout undo --to-revision``, but only ever to an approved revision.
    Revisions back = known revisions strictly between target and current, plus 1."""
    current = revisions.current
    older = [r for r in revisions.history if r.approved and r.revision < current]
    if not older:
        known = sorted({r.revision for r in revisions.history if r.revision != current})
        listed = ", ".join(str(r) for r in reversed(known)) or "none"
        return RollbackTarget(
            None,
            0,
            f"no approved revision older than {current} (other known revisions: {listed})",
        )
    target = max(older, key=lambda r: r.revision)
    between = {r.revision for r in revisions.history if target.revision < r.revision < current}
    back = len(between) + 1
    return RollbackTarget(
        target,
        back,
        f"revision {target.revision} ({target.template_hash}) is the newest approved revision "
        f"older than {current}, {back} back",
    )


def num(x: float) -> str:
    return f"{x:.4g}"


def pair(value: float, threshold: float) -> tuple[str, str]:
    """A measured value with at least 2 decimals, and enough to tell it from the threshold,
    which is shown as the policy wrote it."""
    for places in range(2, 17):
        shown = f"{value:.{places}f}"
        if value == threshold or float(shown) != threshold:
            return shown, f"{threshold:g}"
    return repr(value), repr(threshold)


def blocked_detail(
    policy: EffectivePolicy, blocked: str, state_before: GuardState, now: float
) -> str:
    if blocked == BLOCKED_COOLDOWN:
        if state_before.changed_at is None:
            return f"cooldown: safety.cooldown {policy.safety.cooldown} is still running"
        ago = max(0.0, now - state_before.changed_at)
        return (
            f"cooldown: the last revision change was {format_duration(float(round(ago)))} ago "
            f"< safety.cooldown {policy.safety.cooldown}"
        )
    if blocked == BLOCKED_BUDGET:
        budget = policy.safety.max_actions_per_window
        if budget.count == 0:
            return "budget: safety.maxActionsPerWindow.count is 0, so nothing is automatic"
        arrays = state_to_arrays(policy, [state_before])
        used = int(actions_in_window(policy, arrays.action_times, now)[0])
        return (
            f"budget: {used} executed actions in the last {budget.window} ≥ "
            f"safety.maxActionsPerWindow {budget.count} per {budget.window}"
        )
    return ""


def boundary_failures(
    policy: EffectivePolicy, action: Action, score: float, revisions_back: int, blocked: str
) -> list[str]:
    """Each condition of the auto-approval boundary that ``action`` fails, with the numbers.
    ``blocked`` is the explanation of a cooldown or budget block, or ""."""
    auto = policy.authorization.auto_approve
    failures: list[str] = []
    if action not in auto.actions:
        failures.append(f"{action} not in autoApprove.actions [{', '.join(auto.actions)}]")
    if score > auto.max_score:
        s, m = pair(score, auto.max_score)
        failures.append(f"score {s} > autoApprove.maxScore {m}")
    if action == "Rollback" and revisions_back > auto.max_revisions_back:
        failures.append(
            f"{revisions_back} revisions back > autoApprove.maxRevisionsBack "
            f"{auto.max_revisions_back}"
        )
    if blocked and action != "Hold":
        failures.append(blocked)
    return failures


def within_summary(
    policy: EffectivePolicy, action: Action, score: float, revisions_back: int
) -> str:
    auto = policy.authorization.auto_approve
    s, m = pair(score, auto.max_score)
    parts = [f"score {s} ≤ autoApprove.maxScore {m}", f"{action} in autoApprove.actions"]
    if action == "Rollback":
        parts.append(
            f"{revisions_back} revisions back ≤ autoApprove.maxRevisionsBack "
            f"{auto.max_revisions_back}"
        )
    parts.append("no cooldown, budget left")
    return "within the auto-approval boundary: " + ", ".join(parts)


@dataclass(frozen=True)
class _Plan:
    action: Action
    exposure_h: float  # hours the current impact lasts if this option is taken
    risk: float  # impact-hours the option adds by itself
    cost: str  # how the expected loss is composed, or why the option is unavailable
    available: bool = True
    to_revision: int | None = None
    revisions_back: int = 0


def _plans(
    policy: EffectivePolicy, score: float, revisions: RevisionContext, target: RollbackTarget
) -> list[_Plan]:
    approval = policy.authorization.approval_timeout
    approval_h = duration_seconds(approval) / 3600
    rollout = policy.validation.rollout_timeout
    hold = _Plan("Hold", approval_h, 0.0, f"score {score:.2f} x approvalTimeout {approval}")
    if target.revision is None:
        rollback = _Plan("Rollback", approval_h, 0.0, target.reason, available=False)
    else:
        back = target.revisions_back
        rollback = _Plan(
            "Rollback",
            duration_seconds(rollout) / 3600,
            ROLLBACK_RISK_PER_REVISION * back,
            f"score {score:.2f} x rolloutTimeout {rollout} + {ROLLBACK_RISK_PER_REVISION} x "
            f"{back} revisions back",
            to_revision=target.revision.revision,
            revisions_back=back,
        )
    if revisions.rollout_in_progress:
        pause = _Plan(
            "Pause",
            approval_h * PAUSE_FACTOR,
            0.0,
            f"score {score:.2f} x approvalTimeout {approval} x {PAUSE_FACTOR}",
        )
    else:
        pause = _Plan("Pause", approval_h, 0.0, "no rollout in progress", available=False)
    return [rollback, pause, hold]


_EFFECT: dict[Action, str] = {
    "Rollback": "the impact lasts until the old revision serves again",
    "Pause": "pausing stops the new revision from spreading",
    "Hold": "the impact lasts until a human acts",
}


def list_options(
    policy: EffectivePolicy,
    *,
    score: float,
    impact: ImpactEvidence,
    revisions: RevisionContext,
    target: RollbackTarget,
    blocked: str,
) -> list[Option]:
    money = impact.money_at_risk
    options: list[Option] = []
    for plan in _plans(policy, score, revisions, target):
        loss = score * plan.exposure_h + plan.risk
        cash: float | None = None
        cash_text = ""
        if money is not None and money.revenue_per_hour is not None:
            cash = money.per_hour * plan.exposure_h + plan.risk * money.revenue_per_hour
            cash_text = f"; expected money loss {num(cash)} {money.currency}"
        if not plan.available:
            options.append(
                Option(
                    action=plan.action,
                    expected_loss=loss,
                    expected_money_loss=cash,
                    within_boundary=False,
                    available=False,
                    reason=f"unavailable: {plan.cost}; it would amount to Hold",
                )
            )
            continue
        failures = boundary_failures(policy, plan.action, score, plan.revisions_back, blocked)
        boundary = (
            "outside the auto-approval boundary: " + "; ".join(failures)
            if failures
            else "within the auto-approval boundary"
        )
        target_text = f"; {target.reason}" if plan.action == "Rollback" else ""
        options.append(
            Option(
                action=plan.action,
                to_revision=plan.to_revision,
                expected_loss=loss,
                expected_money_loss=cash,
                within_boundary=not failures,
                reason=f"{plan.cost} = {num(loss)} impact-hours{cash_text}: "
                f"{_EFFECT[plan.action]}{target_text}; {boundary}",
            )
        )
    return options
