"""The content of a RollbackDecision for one batch member whose trigger fired.

Callers: the ModelDeployment handler (after ``engine.step``, for each member with
``fired >= 0``), ``rollguard simulate`` and ``replay``. PURE and scalar.

The recommendation is the fired point's action, except that a Rollback without an approved
older revision, or a Pause without a rollout in progress, becomes a Hold with the reason
(``machine.recommend``).
Approval is never needed for a Hold; otherwise it is needed exactly when the recommended
option lies outside the auto-approval boundary (see ``options``), and ``approvalReason``
names each failed condition with its numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rollguard.api.base import LocalObjectRef, TargetRef, format_duration
from rollguard.api.decision import (
    Approval,
    ImpactEvidence,
    Option,
    PolicySnapshot,
    Recommendation,
    RevisionContext,
    RollbackDecisionSpec,
    Samples,
    SignalEvidence,
    TriggerHit,
)
from rollguard.api.modeldeployment import Business, GuardState
from rollguard.api.policy import Action, EffectivePolicy, Mode
from rollguard.core.engine import StepResult
from rollguard.core.evidence import impact_evidence, signal_evidence
from rollguard.core.machine import recommend
from rollguard.core.options import (
    blocked_detail,
    boundary_failures,
    list_options,
    num,
    pair,
    rollback_target,
    within_summary,
)
from rollguard.core.scoring import ImpactModel, weighted_score
from rollguard.core.tiers import spec_hash
from rollguard.core.times import to_datetime

MAX_WORST_SIGNALS = 3


@dataclass(frozen=True)
class DecisionDraft:
    """Exactly the RollbackDecisionSpec fields the decision core decides; ``build_spec`` adds
    the references, the policy snapshot and the operator version."""

    evaluated_at: datetime
    mode: Mode
    trigger: TriggerHit
    signals: list[SignalEvidence]
    impact: ImpactEvidence
    revisions: RevisionContext
    state_before: GuardState
    options: list[Option]
    recommended: Recommendation
    requires_approval: bool
    approval_reason: str


def _score_composition(
    policy: EffectivePolicy, impact: ImpactEvidence, signals: Sequence[SignalEvidence]
) -> str:
    total = 0.0
    for c in impact.categories:
        total += c.weight
    terms = " + ".join(f"{c.name} {num(c.weight)}x{c.severity:.2f}" for c in impact.categories)
    mean = f"({terms}) / {num(total)}"
    if not impact.forced_by:
        return f"score {impact.score:.2f} = {mean}"
    severity = {s.name: s.severity for s in signals}
    keys = ", ".join(f"{name} at severity {severity[name]:.2f}" for name in impact.forced_by)
    weighted = weighted_score(ImpactModel.of(policy), [c.severity for c in impact.categories])
    plural = "s" if len(impact.forced_by) > 1 else ""
    return (
        f"score {impact.score:.2f}: key signal{plural} {keys} (the weighted mean {mean} = "
        f"{weighted:.2f} does not count once a key signal reaches severity 1)"
    )


def _worst_signals(signals: Sequence[SignalEvidence]) -> str:
    ranked = sorted((s for s in signals if s.severity > 0), key=lambda s: -s.severity)[
        :MAX_WORST_SIGNALS
    ]
    if not ranked:
        return "no signal beyond its limit"
    return "worst signals: " + "; ".join(s.message for s in ranked)


def decide(
    policy: EffectivePolicy,
    result: StepResult,
    b: int,
    *,
    samples: Sequence[Samples | None],
    queries: Sequence[str],
    revisions: RevisionContext,
    business: Business | None,
    state_before: GuardState,
    now: float,
    mode: Mode | None = None,
) -> DecisionDraft:
    """The decision for member ``b`` of ``result``, whose trigger fired at ``now``.

    ``samples`` and ``queries`` are per policy signal: the bounded samples the step was
    computed from (None where the query failed) and the PromQL as rendered for this
    deployment. ``state_before`` is the member's guard state passed into the step; ``mode``
    overrides the policy's (ModelDeployment.spec.mode).
    """
    fired = int(result.fired[b])
    if fired < 0:
        raise ValueError(f"member {b}: no trigger fired, so there is nothing to decide")
    point = policy.triggers[fired]
    score = float(result.score[b])
    since = float(result.state.above_since[b, fired])
    sustained = now - since
    trigger = TriggerHit(
        index=fired,
        action=point.action,
        min_score=point.min_score,
        sustained_for=point.sustained_for,
        score=score,
        above_since=to_datetime(since),
        sustained_seconds=sustained,
    )
    signals = signal_evidence(policy, result, b, samples=samples, queries=queries)
    impact = impact_evidence(policy, result, b, business=business)
    target = rollback_target(revisions)
    blocked = blocked_detail(policy, str(result.blocked[b]), state_before, now)
    choices = list_options(
        policy, score=score, impact=impact, revisions=revisions, target=target, blocked=blocked
    )
    by_action = {o.action: o for o in choices}

    wanted: Action = point.action
    action, why_not = recommend(
        wanted,
        has_target=target.revision is not None,
        rollout_in_progress=revisions.rollout_in_progress,
    )
    fallback = ""
    if action != wanted:
        because = target.reason if wanted == "Rollback" else why_not
        fallback = f"{wanted} wanted but {because}; holding instead. "
    chosen = by_action[action]

    held, need = pair(score, point.min_score)
    dwell = (
        f"trigger {fired} ({point.action}): score {held} ≥ {need} sustained "
        f"{format_duration(float(round(max(sustained, 0.0))))} ≥ {point.sustained_for}"
    )
    to_revision = target.revision.revision if action == "Rollback" and target.revision else None
    move = f"{action} {revisions.current} → {to_revision}" if to_revision else action
    recommended = Recommendation(
        action=action,
        from_revision=revisions.current,
        to_revision=to_revision,
        to_template_hash=target.revision.template_hash if to_revision and target.revision else None,
        reason=(
            f"{fallback}{move}: {_score_composition(policy, impact, signals)}; {dwell}; "
            f"{_worst_signals(signals)}"
        )[:4096],
    )

    if action == "Hold":
        requires, why = False, "Hold only records the decision; no approval needed"
    else:
        failures = boundary_failures(
            policy, action, score, target.revisions_back if action == "Rollback" else 0, blocked
        )
        requires = not chosen.within_boundary
        why = (
            "outside the auto-approval boundary: " + "; ".join(failures)
            if failures
            else within_summary(policy, action, score, target.revisions_back)
        )
    return DecisionDraft(
        evaluated_at=to_datetime(now),
        mode=mode or policy.mode,
        trigger=trigger,
        signals=signals,
        impact=impact,
        revisions=revisions,
        state_before=state_before,
        options=choices,
        recommended=recommended,
        requires_approval=requires,
        approval_reason=why,
    )


def policy_snapshot(
    *, name: str, namespace: str, generation: int, effective: EffectivePolicy
) -> PolicySnapshot:
    """The policy as a decision records it, with its spec hash."""
    return PolicySnapshot(
        name=name,
        namespace=namespace,
        generation=generation,
        spec_hash=spec_hash(effective),
        effective=effective,
    )


def build_spec(
    draft: DecisionDraft,
    *,
    model_deployment: str,
    target: TargetRef,
    policy: PolicySnapshot,
    operator_version: str,
    approval: Approval | None = None,
) -> RollbackDecisionSpec:
    """The full RollbackDecision spec from a draft and what only the caller knows."""
    return RollbackDecisionSpec(
        model_deployment_ref=LocalObjectRef(name=model_deployment),
        **RollbackDecisionSpec.refs(target),
        policy=policy,
        operator_version=operator_version,
        evaluated_at=draft.evaluated_at,
        mode=draft.mode,
        trigger=draft.trigger,
        signals=draft.signals,
        impact=draft.impact,
        revisions=draft.revisions,
        state_before=draft.state_before,
        options=draft.options,
        recommended=draft.recommended,
        requires_approval=draft.requires_approval,
        approval_reason=draft.approval_reason,
        approval=approval,
    )
