"""``rollguard explain``: a decision in plain words, with its numbers."""

from __future__ import annotations

from typing import Any

from rollguard.api.decision import (
    RollbackDecisionSpec,
    RollbackDecisionStatus,
)
from rollguard.commands.errors import CommandError
from rollguard.kube.client import (
    ApiError,
    Cluster,
    api_message,
)


def explain(*, cluster: Cluster, namespace: str, name: str) -> str:
    """The decision in plain words, with its numbers."""
    try:
        obj = cluster.get("RollbackDecision", namespace=namespace, name=name)
    except ApiError as err:
        raise CommandError(f"RollbackDecision {namespace}/{name}: {api_message(err)}") from err
    return explain_text(obj)


def explain_text(obj: dict[str, Any]) -> str:
    spec = RollbackDecisionSpec.model_validate(obj["spec"])
    status = RollbackDecisionStatus.model_validate(obj.get("status") or {})
    rec, trig, impact = spec.recommended, spec.trigger, spec.impact
    lines = [
        f"RollbackDecision {obj['metadata']['namespace']}/{obj['metadata']['name']} "
        f"for ModelDeployment {spec.model_deployment_ref.name} ({spec.target.kind} {spec.target.name})",
        f"  Evaluated {spec.evaluated_at.isoformat()} under RollbackPolicy {spec.policy.namespace}/{spec.policy.name} "
        f"(generation {spec.policy.generation}, tier {spec.policy.effective.risk_tier}, mode {spec.mode})",
        "",
        f"Why: impact score {impact.score:.3f} stayed >= {trig.min_score} for {trig.sustained_seconds:.0f}s "
        f"(curve point {trig.index}: {trig.action} after {trig.sustained_for}).",
    ]
    if impact.forced_by:
        lines.append(
            f"  Impact forced to 1 by key signal(s) {', '.join(impact.forced_by)} at severity 1 "
            "(a key signal at severity 1 counts whatever the weights); the weighted mean of "
            "category severities does not count:"
        )
    else:
        lines.append("  Impact = weighted mean of category severities:")
    for c in impact.categories:
        lines.append(f"    {c.name:<20} weight {c.weight:<6g} severity {c.severity:.3f}")
    if impact.money_at_risk:
        m = impact.money_at_risk
        lines.append(f"  Money at risk: {m.per_hour:,.2f} {m.currency} per hour")
    lines.append("  Signals (bound given the benefit of the doubt vs objective + margin):")
    keys = {s.name for s in spec.policy.effective.signals if s.key}
    for s in spec.signals:
        name = f"{s.name} (key)" if s.name in keys else s.name
        lines.append(f"    {name:<20} {s.status:<12} severity {s.severity:.3f}  {s.message}")
    lines += ["", "Options (expected loss in impact-hours):"]
    for o in spec.options:
        target = f" to revision {o.to_revision}" if o.to_revision is not None else ""
        where = "inside" if o.within_boundary else "outside"
        avail = "" if o.available else " [not available]"
        lines.append(
            f"  {o.action}{target}: {o.expected_loss:.3f}, {where} the auto-approval boundary{avail}; {o.reason}"
        )
    target = (
        f" revision {rec.from_revision} -> {rec.to_revision}" if rec.to_revision is not None else ""
    )
    lines += ["", f"Recommended: {rec.action}{target}. {rec.reason}"]
    lines.append(
        f"Approval: {'required: ' if spec.requires_approval else 'not required: '}{spec.approval_reason}"
    )
    if spec.approval:
        lines.append(f"  {spec.approval.decision} by {spec.approval.by}: {spec.approval.reason}")
    lines.append(f"Phase: {status.phase or 'New'}. {status.message}")
    if status.validation:
        v = status.validation
        lines.append(
            f"Validation: {v.verdict or 'in progress'} (score below {v.criteria.clear_below} for {v.criteria.window} "
            f"after the rollout, within {v.criteria.rollout_timeout}); max observed {v.observed_max_score}"
        )
    if status.outcome:
        lines.append(f"Outcome: {status.outcome.summary}")
    for n in status.notifications:
        why = f": {n.reason}" if n.reason else ""
        tries = f" after {n.attempts} attempt(s)" if n.attempts > 1 else ""
        lines.append(f"Notified {n.receiver} of {n.transition}: {n.state}{tries}{why}")
    if spec.review:
        r = spec.review
        lines.append(
            f"Review: {r.verdict}, regression {r.regression}, by {r.by} at "
            f"{r.reviewed_at.isoformat()}: {r.notes}"
        )
    if status.audit:
        lines.append(
            f"Audit: #{status.audit.sequence} {status.audit.hash} (previous {status.audit.previous_hash})"
        )
    return "\n".join(lines)
