"""A decision's content: rollback target, options, boundary, approval, recommendation, evidence.

ONE_SIGNAL under the high tier: autoApprove maxScore 0.8, all actions, 1 revision back;
approvalTimeout 1h; rolloutTimeout 5m; cooldown 10m; 2 actions per 1h.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from factory import T0, policy_of, value_for_score

from rollguard.api.base import TargetRef
from rollguard.api.decision import RevisionContext, RevisionInfo, Samples
from rollguard.api.modeldeployment import Business, GuardState
from rollguard.api.policy import EffectivePolicy
from rollguard.core.decide import DecisionDraft, build_spec, decide, policy_snapshot
from rollguard.core.engine import state_to_arrays, step
from rollguard.core.evidence import last_evaluation
from rollguard.core.options import rollback_target
from rollguard.core.samples import bound_samples, measurements_from_samples
from rollguard.core.tiers import spec_hash


def rev(n: int, approved: bool) -> RevisionInfo:
    return RevisionInfo(
        revision=n, template_hash=f"h{n}", approved=approved, source="spec" if approved else None
    )


# Current 7; 6 not approved; 5 approved: the target, 2 back.
HISTORY = [rev(8, True), rev(7, False), rev(6, False), rev(5, True), rev(4, True)]
ONE_BACK = RevisionContext(current=7, history=[rev(7, False), rev(6, True)])
TWO_BACK = RevisionContext(current=7, history=HISTORY)


def samples_for(score: float, n: int = 20) -> Samples:
    return Samples(
        timestamps=[T0 - 6.0 * i for i in reversed(range(n))], values=[value_for_score(score)] * n
    )


def whole_window_policy() -> EffectivePolicy:
    """The factory policy with its newest-samples test as wide as the 20-sample windows
    here, so every number below is the whole window's."""
    return policy_of(evaluation={"recentSamples": 20})


def decision(
    score: float = 0.75,
    *,
    policy: EffectivePolicy | None = None,
    revisions: RevisionContext = ONE_BACK,
    business: Business | None = None,
    state_before: GuardState | None = None,
    now: float = T0,
) -> DecisionDraft:
    p = policy or whole_window_policy()
    before = state_before or GuardState()
    s = samples_for(score)
    r = step(p, measurements_from_samples([[s]]), state_to_arrays(p, [before]), now=now)
    return decide(
        p,
        r,
        0,
        samples=[s],
        queries=["rendered"],
        revisions=revisions,
        business=business,
        state_before=before,
        now=now,
    )


def option(d: DecisionDraft, action: str):  # type: ignore[no-untyped-def]
    return next(o for o in d.options if o.action == action)


def test_rollback_targets_the_newest_approved_revision_older_than_current() -> None:
    target = rollback_target(TWO_BACK)
    assert target.revision == rev(5, True)
    assert target.revisions_back == 2  # 6 lies between 5 and 7


def test_without_an_approved_older_revision_there_is_no_target() -> None:
    target = rollback_target(RevisionContext(current=7, history=[rev(8, True), rev(6, False)]))
    assert target.revision is None
    assert target.reason == "no approved revision older than 7 (other known revisions: 8, 6)"


def test_options_list_rollback_pause_and_hold_with_their_availability() -> None:
    d = decision()
    assert [o.action for o in d.options] == ["Rollback", "Pause", "Hold"]
    assert option(d, "Rollback").to_revision == 6
    assert not option(d, "Pause").available
    assert "no rollout in progress" in option(d, "Pause").reason
    assert option(d, "Hold").available
    rolling = decision(revisions=ONE_BACK.model_copy(update={"rollout_in_progress": True}))
    assert option(rolling, "Pause").available


def test_expected_loss_of_each_option() -> None:
    d = decision(0.75, revisions=TWO_BACK.model_copy(update={"rollout_in_progress": True}))
    s = d.impact.score
    assert option(d, "Hold").expected_loss == pytest.approx(s * 1.0)
    assert option(d, "Pause").expected_loss == pytest.approx(s * 1.0 * 0.5)
    assert option(d, "Rollback").expected_loss == pytest.approx(s * 5 / 60 + 0.02 * 2)
    assert option(d, "Hold").expected_money_loss is None


def test_expected_money_loss_uses_revenue_at_risk() -> None:
    d = decision(0.75, revisions=TWO_BACK, business=Business(revenue_per_hour=1200.0))
    money = d.impact.money_at_risk
    assert money is not None
    assert money.per_hour == pytest.approx(900.0)
    assert option(d, "Hold").expected_money_loss == pytest.approx(900.0)
    assert option(d, "Rollback").expected_money_loss == pytest.approx(
        900.0 * 5 / 60 + 0.02 * 2 * 1200.0
    )
    assert "expected money loss 900 USD" in option(d, "Hold").reason


def test_inside_the_boundary_no_approval_is_needed() -> None:
    d = decision(0.75)
    assert d.recommended.action == "Rollback"
    assert option(d, "Rollback").within_boundary
    assert not d.requires_approval
    assert d.approval_reason.startswith(
        "within the auto-approval boundary: score 0.75 ≤ autoApprove.maxScore 0.8"
    )


def test_a_score_above_max_score_needs_approval_and_says_so() -> None:
    d = decision(0.86)
    assert d.requires_approval
    assert d.approval_reason == (
        "outside the auto-approval boundary: score 0.86 > autoApprove.maxScore 0.8"
    )


def test_going_back_too_far_needs_approval() -> None:
    d = decision(0.75, revisions=TWO_BACK)
    assert d.requires_approval
    assert "2 revisions back > autoApprove.maxRevisionsBack 1" in d.approval_reason
    assert not option(d, "Rollback").within_boundary


def test_an_action_outside_auto_approve_actions_needs_approval() -> None:
    d = decision(0.75, policy=policy_of(riskTier="critical"))
    assert d.recommended.action == "Rollback"
    assert d.requires_approval
    assert "Rollback not in autoApprove.actions [Pause, Hold]" in d.approval_reason
    assert "score 0.75 > autoApprove.maxScore 0.5" in d.approval_reason


def test_cooldown_makes_an_action_need_approval() -> None:
    d = decision(0.75, state_before=GuardState(action_times=[T0 - 240], changed_at=T0 - 240))
    assert d.requires_approval
    assert d.approval_reason == (
        "outside the auto-approval boundary: cooldown: the last revision change was 4m ago "
        "< safety.cooldown 10m"
    )
    assert not option(d, "Rollback").within_boundary
    assert option(d, "Hold").within_boundary  # Hold is never blocked


def test_a_spent_budget_makes_an_action_need_approval() -> None:
    p = policy_of(safety={"cooldown": "0s"})
    d = decision(0.75, policy=p, state_before=GuardState(action_times=[T0 - 600, T0 - 300]))
    assert d.requires_approval
    assert (
        "budget: 2 executed actions in the last 1h ≥ safety.maxActionsPerWindow 2 per 1h"
        in d.approval_reason
    )
    zero = policy_of(safety={"maxActionsPerWindow": {"count": 0, "window": "1h"}})
    d = decision(0.75, policy=zero)
    assert "safety.maxActionsPerWindow.count is 0" in d.approval_reason


def test_a_rollback_without_target_becomes_a_hold_that_needs_no_approval() -> None:
    d = decision(0.9, revisions=RevisionContext(current=3, history=[rev(3, False)]))
    assert d.trigger.action == "Rollback"
    assert d.recommended.action == "Hold"
    assert d.recommended.to_revision is None
    assert d.recommended.reason.startswith("Rollback wanted but no approved revision older than 3")
    assert not d.requires_approval
    assert not option(d, "Rollback").available


def test_a_pause_without_a_rollout_in_progress_becomes_a_hold() -> None:
    p = policy_of(triggers=[{"action": "Pause", "minScore": 0.5, "sustainedFor": "0s"}])
    d = decision(0.75, policy=p)
    assert d.recommended.action == "Hold"
    assert d.recommended.reason.startswith("Pause wanted but no rollout in progress")
    rolling = decision(
        0.75, policy=p, revisions=ONE_BACK.model_copy(update={"rollout_in_progress": True})
    )
    assert rolling.recommended.action == "Pause"
    assert rolling.recommended.to_revision is None
    assert not rolling.requires_approval


def test_a_fired_hold_needs_no_approval() -> None:
    p = policy_of(
        triggers=[{"action": "Hold", "minScore": 0.5, "sustainedFor": "0s"}],
        authorization={"autoApprove": {"actions": []}},
    )
    d = decision(0.75, policy=p)
    assert d.recommended.action == "Hold"
    assert not d.requires_approval
    assert d.approval_reason == "Hold only records the decision; no approval needed"


def test_the_recommendation_reason_states_the_arithmetic() -> None:
    d = decision(0.75)
    reason = d.recommended.reason
    assert reason.startswith("Rollback 7 → 6: score 0.75 = (revenue 1x0.75) / 1; ")
    assert "trigger 0 (Rollback): score 0.75 ≥ 0.7 sustained 0s ≥ 0s" in reason
    assert (
        "worst signals: error_rate: lower bound 0.085 (mean 0.085, n=20, 95% CI) > limit 0.01"
        in reason
    )
    assert d.recommended.to_template_hash == "h6"
    assert d.recommended.from_revision == 7


def test_the_trigger_hit_records_the_dwell() -> None:
    p = policy_of()
    before = GuardState(above_since={"1": T0 - 150, "2": T0 - 150})
    d = decision(0.5, policy=p, state_before=before)
    assert (d.trigger.index, d.trigger.action, d.trigger.min_score) == (1, "Rollback", 0.4)
    assert d.trigger.sustained_seconds == 150.0
    assert d.trigger.above_since.timestamp() == T0 - 150
    assert "sustained 2m30s ≥ 2m" in d.recommended.reason


def test_deciding_without_a_fired_trigger_is_an_error() -> None:
    p = policy_of()
    s = samples_for(0.1)
    r = step(p, measurements_from_samples([[s]]), state_to_arrays(p, [GuardState()]), now=T0)
    with pytest.raises(ValueError, match="no trigger fired"):
        decide(
            p,
            r,
            0,
            samples=[s],
            queries=["q"],
            revisions=ONE_BACK,
            business=None,
            state_before=GuardState(),
            now=T0,
        )


def test_signal_evidence_records_exactly_the_samples_used() -> None:
    d = decision(0.75)
    (ev,) = d.signals
    assert ev.samples == samples_for(0.75)
    assert (ev.name, ev.query, ev.window, ev.status) == ("error_rate", "rendered", "2m", "Breach")
    assert ev.value == pytest.approx(0.085)
    assert ev.severity == pytest.approx(0.75)


def test_build_spec_adds_references_and_the_policy_snapshot() -> None:
    p = policy_of()
    d = decision(0.75, policy=p)
    snap = policy_snapshot(name="fraud-policy", namespace="ml", generation=3, effective=p)
    spec = build_spec(
        d,
        model_deployment="fraud",
        target=TargetRef.deployment("fraud-v2"),
        policy=snap,
        operator_version="0.1.0",
    )
    assert spec.policy.spec_hash == spec_hash(p)
    assert spec.evaluated_at.timestamp() == T0
    assert (spec.model_deployment_ref.name, spec.deployment_ref.name) == ("fraud", "fraud-v2")
    assert spec.recommended == d.recommended
    assert spec.approval is None


def test_bound_samples_keeps_the_newest_finite_samples_in_time_order() -> None:
    ts = np.arange(400.0)[::-1]
    vs = ts * 2
    vs[5] = np.nan  # timestamp 394
    kept_ts, kept_vs = bound_samples(ts, vs)
    assert len(kept_ts) == 300
    assert kept_ts == sorted(kept_ts)
    assert kept_ts[-1] == 399.0
    assert 394.0 not in kept_ts
    assert kept_ts[0] == 99.0  # 300 newest finite: 99..399 without 394
    assert kept_vs == [t * 2 for t in kept_ts]
    in_range, _ = bound_samples([1, 2, 3, 4], [1, 1, 1, 1], since=2, until=3)
    assert in_range == [2.0, 3.0]
    with pytest.raises(ValueError, match="differ in length"):
        bound_samples([1, 2], [1])


def test_last_evaluation_summarises_the_step_for_the_status() -> None:
    p = whole_window_policy()
    s = samples_for(0.75)
    r = step(
        p, measurements_from_samples([[s], [None]]), state_to_arrays(p, [GuardState()] * 2), now=T0
    )
    ok = last_evaluation(p, r, 0, now=T0)
    assert ok.score == pytest.approx(0.75)
    assert ok.signals[0].status == "Breach"
    assert ok.signals[0].samples == 20
    assert ok.categories[0].severity == pytest.approx(0.75)
    down = last_evaluation(p, r, 1, now=T0)
    assert down.score is None
    assert down.signals[0].status == "Inconclusive"
    assert down.signals[0].value is None
    assert math.isclose(down.time.timestamp(), T0)
