"""Risk tiers: the defaults a RollbackPolicy falls back on, and the resolver that applies them.

``resolve`` turns a user's ``RollbackPolicySpec`` into the ``EffectivePolicy`` every decision is
made, recorded and replayed from; ``spec_hash`` fingerprints it for ``status.specHash`` and the
decision's policy snapshot. Callers: the policy handler (validation, specHash), the
ModelDeployment handler (``default_bake_time``), ``rollguard simulate``, and the docs
(``tier_table_markdown`` renders the same table the resolver reads, so they cannot drift).

PURE: no I/O. Raises ``ValueError`` naming the offending field when a policy only becomes
invalid once its tier's defaults are known.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from rollguard.api.base import duration_seconds
from rollguard.api.decision import MAX_SAMPLES
from rollguard.api.policy import (
    ActionBudget,
    Authorization,
    AutoApprove,
    EffectiveAuthorization,
    EffectiveAutoApprove,
    EffectiveEvaluation,
    EffectivePolicy,
    EffectiveSafety,
    EffectiveValidation,
    Evaluation,
    Mode,
    OnTimeout,
    RiskTier,
    RollbackPolicySpec,
    Safety,
    Trigger,
    Validation,
)
from rollguard.api.signal import EffectiveSignal, Margin, check_critical

T = TypeVar("T")

# Evaluating more often than this gains nothing (scrapes are no faster) and only loads
# Prometheus and the API server; a zero interval would spin.
MIN_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class TierDefaults:
    """Everything a tier fills in when the policy leaves it out."""

    interval: str
    window: str
    min_samples: int
    confidence: float
    recent_samples: int
    margin_relative: float
    triggers: tuple[Trigger, ...]
    clear_below: float
    cooldown: str
    budget: ActionBudget
    auto_approve: EffectiveAutoApprove
    approval_timeout: str
    on_timeout: OnTimeout
    rollout_timeout: str
    validation_window: str
    bake_time: str
    mode: Mode = "Enforce"


def _curve(*points: tuple[str, float, str]) -> tuple[Trigger, ...]:
    return tuple(
        Trigger.model_validate({"action": a, "minScore": s, "sustainedFor": d})
        for a, s, d in points
    )


def _auto(max_score: float, actions: list[str], back: int) -> EffectiveAutoApprove:
    return EffectiveAutoApprove.model_validate(
        {"maxScore": max_score, "actions": actions, "maxRevisionsBack": back}
    )


_ALL = ["Rollback", "Pause", "Hold"]

# The single source of the tier defaults: the resolver reads it and the docs table is
# rendered from it (docs/reference/risk-tiers.md). Higher tiers: tighter margins, shorter dwell, narrower auto-approval.
TIERS: dict[RiskTier, TierDefaults] = {
    "low": TierDefaults(
        interval="60s",
        window="10m",
        min_samples=10,
        confidence=0.99,
        recent_samples=4,
        margin_relative=0.5,
        triggers=_curve(("Rollback", 0.8, "5m"), ("Rollback", 0.5, "30m"), ("Hold", 0.2, "10m")),
        clear_below=0.1,
        cooldown="30m",
        budget=ActionBudget(count=1, window="6h"),
        auto_approve=_auto(1.0, _ALL, 3),
        approval_timeout="4h",
        on_timeout="Reject",
        rollout_timeout="10m",
        validation_window="10m",
        bake_time="1h",
    ),
    "medium": TierDefaults(
        interval="30s",
        window="5m",
        min_samples=10,
        confidence=0.95,
        recent_samples=4,
        margin_relative=0.25,
        triggers=_curve(("Rollback", 0.8, "2m"), ("Rollback", 0.5, "10m"), ("Hold", 0.2, "5m")),
        clear_below=0.1,
        cooldown="20m",
        budget=ActionBudget(count=2, window="6h"),
        auto_approve=_auto(0.9, _ALL, 2),
        approval_timeout="2h",
        on_timeout="Reject",
        rollout_timeout="10m",
        validation_window="5m",
        bake_time="2h",
    ),
    "high": TierDefaults(
        interval="15s",
        window="2m",
        min_samples=8,
        confidence=0.90,
        recent_samples=3,
        margin_relative=0.1,
        triggers=_curve(("Rollback", 0.7, "0s"), ("Rollback", 0.4, "2m"), ("Hold", 0.15, "2m")),
        clear_below=0.05,
        cooldown="10m",
        budget=ActionBudget(count=2, window="1h"),
        auto_approve=_auto(0.8, _ALL, 1),
        approval_timeout="1h",
        on_timeout="Reject",
        rollout_timeout="5m",
        validation_window="3m",
        bake_time="4h",
    ),
    "critical": TierDefaults(
        interval="10s",
        window="1m",
        min_samples=4,
        confidence=0.80,
        recent_samples=3,
        margin_relative=0.05,
        triggers=_curve(("Rollback", 0.5, "0s"), ("Rollback", 0.25, "1m"), ("Hold", 0.1, "1m")),
        clear_below=0.05,
        cooldown="10m",
        budget=ActionBudget(count=3, window="1h"),
        auto_approve=_auto(0.5, ["Pause", "Hold"], 1),
        approval_timeout="30m",
        on_timeout="Reject",
        rollout_timeout="5m",
        validation_window="2m",
        bake_time="24h",
    ),
}


def _num(x: float) -> str:
    return f"{x:g}"


# Rows of the documented table: label and how each tier's cell is rendered.
_TABLE_ROWS: tuple[tuple[str, Callable[[TierDefaults], str]], ...] = (
    ("evaluation.interval", lambda t: t.interval),
    ("evaluation.window", lambda t: t.window),
    ("evaluation.minSamples", lambda t: str(t.min_samples)),
    ("evaluation.confidence", lambda t: f"{t.confidence:.2f}"),
    ("evaluation.recentSamples", lambda t: str(t.recent_samples)),
    ("signal margin (relative)", lambda t: _num(t.margin_relative)),
    (
        "triggers",
        lambda t: "; ".join(
            f"{p.action} ≥{_num(p.min_score)} for {p.sustained_for}" for p in t.triggers
        ),
    ),
    ("clearBelow", lambda t: _num(t.clear_below)),
    ("safety.cooldown", lambda t: t.cooldown),
    ("safety.maxActionsPerWindow", lambda t: f"{t.budget.count} per {t.budget.window}"),
    (
        "authorization.autoApprove",
        lambda t: (
            f"maxScore {t.auto_approve.max_score:.1f}, "
            f"[{', '.join(t.auto_approve.actions)}], "
            f"{t.auto_approve.max_revisions_back} back"
        ),
    ),
    (
        "authorization.approvalTimeout / onTimeout",
        lambda t: f"{t.approval_timeout} / {t.on_timeout}",
    ),
    (
        "validation.rolloutTimeout / window",
        lambda t: f"{t.rollout_timeout} / {t.validation_window}",
    ),
    ("bakeTime (ModelDeployment)", lambda t: t.bake_time),
    ("mode", lambda t: t.mode),
)


def tier_table_markdown() -> str:
    """The tier defaults as a Markdown table, for docs/reference/risk-tiers.md and ``rollguard tiers``."""
    tiers = list(TIERS)
    lines = [
        "| setting | " + " | ".join(tiers) + " |",
        "|---" * (len(tiers) + 1) + "|",
    ]
    for label, cell in _TABLE_ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(TIERS[t]) for t in tiers) + " |")
    return "\n".join(lines) + "\n"


def default_bake_time(tier: RiskTier) -> str:
    """How long a revision must stay healthy to be approved automatically, when the
    ModelDeployment does not say."""
    return TIERS[tier].bake_time


def _pick(value: T | None, default: T) -> T:
    # Not `or`: 0, 0.0 and [] are deliberate user choices, not omissions.
    return default if value is None else value


def resolve(spec: RollbackPolicySpec) -> EffectivePolicy:
    """The policy with every omitted setting filled from its risk tier, merged field by field.

    Raises ValueError when a signal's ``critical`` does not lie beyond objective + margin once
    the tier's margin applies (or lies so far beyond it that the span overflows), when a trigger
    point sits at or below ``clearBelow`` (the deployment would recover and degrade again at
    the same score, defeating hysteresis), when ``minSamples`` exceeds what a decision can
    record (or ``recentSamples`` does), or when the evaluation interval or window is too
    short to mean anything.
    """
    tier = TIERS[spec.risk_tier]
    ev = spec.evaluation or Evaluation()
    evaluation = EffectiveEvaluation(
        interval=_pick(ev.interval, tier.interval),
        window=_pick(ev.window, tier.window),
        min_samples=_pick(ev.min_samples, tier.min_samples),
        confidence=_pick(ev.confidence, tier.confidence),
        recent_samples=_pick(ev.recent_samples, tier.recent_samples),
    )
    if duration_seconds(evaluation.interval) < MIN_INTERVAL_SECONDS:
        raise ValueError(
            f"evaluation.interval: {evaluation.interval} is shorter than "
            f"{MIN_INTERVAL_SECONDS:g}s; the policy would be evaluated without pause"
        )
    if duration_seconds(evaluation.window) <= 0:
        raise ValueError(
            f"evaluation.window: must be longer than 0s (got {evaluation.window}), or no "
            "signal ever has a sample"
        )
    if evaluation.min_samples > MAX_SAMPLES:
        raise ValueError(
            f"evaluation.minSamples: {evaluation.min_samples} exceeds the {MAX_SAMPLES} samples "
            "a decision records per signal, so every signal would stay Inconclusive"
        )
    recent = evaluation.recent_samples
    if recent is not None and recent > MAX_SAMPLES:
        raise ValueError(
            f"evaluation.recentSamples: {recent} exceeds the {MAX_SAMPLES} samples a decision "
            "records per signal, so the newest samples could never be tested on their own"
        )

    signals: list[EffectiveSignal] = []
    for signal in spec.signals:
        margin = signal.margin or Margin(relative=tier.margin_relative)
        try:
            check_critical(signal.name, signal.objective, margin, signal.critical)
        except ValueError as exc:
            detail = str(exc).removeprefix(f"signal {signal.name}: ")
            source = "" if signal.margin else f" (margin from tier {spec.risk_tier})"
            raise ValueError(f"signals[{signal.name}].critical: {detail}{source}") from exc
        width = margin.width(signal.objective.value)
        limit = signal.objective.value + (width if signal.objective.direction == "max" else -width)
        if not math.isfinite(signal.critical - limit):
            # Severity divides by this span: an infinite one makes every severity 0.
            raise ValueError(
                f"signals[{signal.name}].critical: the span from objective and margin "
                f"({limit:g}) to critical ({signal.critical:g}) overflows, so the severity "
                "would never rise above 0"
            )
        signals.append(
            EffectiveSignal(
                name=signal.name,
                query=signal.query,
                objective=signal.objective,
                margin=margin,
                critical=signal.critical,
                on_missing_data=signal.on_missing_data,
                key=signal.key,
            )
        )

    clear_below = _pick(spec.clear_below, tier.clear_below)
    triggers = list(spec.triggers) if spec.triggers is not None else list(tier.triggers)
    for i, point in enumerate(triggers):
        if not point.min_score > clear_below:
            raise ValueError(
                f"triggers[{i}].minScore: {point.min_score} must be above clearBelow "
                f"{clear_below}, or a deployment would recover and degrade at the same score"
            )

    safety = spec.safety or Safety()
    authz = spec.authorization or Authorization()
    auto = authz.auto_approve or AutoApprove()
    validation = spec.validation or Validation()
    return EffectivePolicy(
        risk_tier=spec.risk_tier,
        mode=_pick(spec.mode, tier.mode),
        evaluation=evaluation,
        signals=signals,
        impact=spec.impact,
        triggers=triggers,
        clear_below=clear_below,
        safety=EffectiveSafety(
            cooldown=_pick(safety.cooldown, tier.cooldown),
            max_actions_per_window=_pick(safety.max_actions_per_window, tier.budget),
        ),
        authorization=EffectiveAuthorization(
            auto_approve=EffectiveAutoApprove(
                max_score=_pick(auto.max_score, tier.auto_approve.max_score),
                actions=list(_pick(auto.actions, tier.auto_approve.actions)),
                max_revisions_back=_pick(
                    auto.max_revisions_back, tier.auto_approve.max_revisions_back
                ),
            ),
            approvers=list(_pick(authz.approvers, [])),
            approval_timeout=_pick(authz.approval_timeout, tier.approval_timeout),
            on_timeout=_pick(authz.on_timeout, tier.on_timeout),
        ),
        validation=EffectiveValidation(
            rollout_timeout=_pick(validation.rollout_timeout, tier.rollout_timeout),
            window=_pick(validation.window, tier.validation_window),
        ),
    )


def canonical_json(effective: EffectivePolicy) -> str:
    """The effective policy as canonical JSON: wire names, sorted keys, no whitespace."""
    return json.dumps(
        effective.model_dump(mode="json", by_alias=True, exclude_none=True),
        sort_keys=True,
        separators=(",", ":"),
    )


def spec_hash(effective: EffectivePolicy) -> str:
    """``sha256:`` + hex digest of the canonical JSON of the effective policy.

    A signal's ``key`` is in that JSON only when true, so a policy without key signals hashes
    as it did before the field existed."""
    return "sha256:" + hashlib.sha256(canonical_json(effective).encode()).hexdigest()
