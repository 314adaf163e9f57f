"""RollbackPolicy: how a model deployment is judged and what may be done about it.

Fields left out are filled from the risk tier's defaults by ``rollguard.core.tiers``; the
result, an ``EffectivePolicy``, is what every decision records and replays from. Each signal
(its query, objective, margin and critical value) is a model of ``rollguard.api.signal``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rollguard.api.base import (
    Condition,
    Duration,
    Model,
    SignalName,
    StatusModel,
    UnitInterval,
)
from rollguard.api.signal import EffectiveSignal, Signal

RiskTier = Literal["low", "medium", "high", "critical"]
Action = Literal["Rollback", "Pause", "Hold"]
Mode = Literal["Enforce", "DryRun"]
OnTimeout = Literal["Reject", "Execute"]

NotifyOn = Literal[
    "PendingApproval",
    "Approved",
    "Rejected",
    "Expired",
    "Executed",
    "Succeeded",
    "ValidationFailed",
    "Failed",
    "Escalated",
    "DryRun",
]
"""What a policy can subscribe a receiver to: a decision's phase, or one of its moments
(``Executed``: the workload was changed; ``ValidationFailed``: the change did not help;
``Escalated``: automatic actions stopped until a human clears them). ``core.notices`` maps a
transition to these."""

RISK_TIERS: tuple[RiskTier, ...] = ("low", "medium", "high", "critical")
ACTIONS: tuple[Action, ...] = ("Rollback", "Pause", "Hold")


class Evaluation(Model):
    """How often and over what range signals are measured."""

    interval: Duration | None = Field(
        default=None, description="How often the policy is evaluated."
    )
    window: Duration | None = Field(
        default=None, description="Range each signal is sampled over at every evaluation."
    )
    min_samples: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        default=None, description="Fewer samples in the window make that signal Inconclusive."
    )
    confidence: Annotated[float, Field(ge=0.5, lt=1.0, allow_inf_nan=False)] | None = Field(
        default=None,
        description=(
            "Level of the confidence interval put around each measured value. The bound that "
            "gives the deployment the benefit of the doubt is compared with the limit."
        ),
    )
    recent_samples: Annotated[int, Field(ge=2, le=10_000)] | None = Field(
        default=None,
        description=(
            "Also test the newest this-many samples of the window, and judge each signal by "
            "whichever test finds it more severe, so a step change is seen before it moves "
            "the mean of the whole window. Both tests then run at 1 - (1 - confidence) / 2, "
            "which keeps the false-alarm rate of the pair at that of one test. The newest "
            "samples need only their own count (not minSamples). Unset: the tier's default "
            "(4 for low and medium, 3 for high and critical)."
        ),
    )


class ImpactCategory(Model):
    """A business impact category: how much it weighs and which signals drive it."""

    name: SignalName = Field(
        description="Conventionally revenue, customerExperience, regulatory or market."
    )
    weight: Annotated[float, Field(ge=0.0, le=1000.0, allow_inf_nan=False)] = Field(
        description="Weight of this category in the impact score (weights are normalised)."
    )
    signals: dict[SignalName, Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]] = (
        Field(
            min_length=1,
            description="Signal name to sensitivity: category severity = clamp(sum of "
            "sensitivity x signal severity, 0, 1).",
        )
    )


class Impact(Model):
    """How signal severities map to business impact."""

    categories: list[ImpactCategory] = Field(
        min_length=1, max_length=16, description="Impact categories; weights must not all be 0."
    )


class Trigger(Model):
    """A point of the threshold curve: an action fires once the score has stayed at or above
    minScore for sustainedFor."""

    action: Action = Field(description="Rollback, Pause or Hold.")
    min_score: UnitInterval = Field(description="Impact score at or above which this point counts.")
    sustained_for: Duration = Field(
        description="How long the score must stay there (0s = at once)."
    )


class ActionBudget(Model):
    """At most count automatic actions per window; beyond it, humans decide."""

    count: Annotated[int, Field(ge=0, le=100)] = Field(description="Automatic actions allowed.")
    window: Duration = Field(description="The sliding window the count applies to.")


class Safety(Model):
    """Guards against false alarms and oscillation."""

    cooldown: Duration | None = Field(
        default=None,
        description="No new automatic action on the same ModelDeployment for this long.",
    )
    max_actions_per_window: ActionBudget | None = Field(
        default=None,
        description="Action budget; beyond it the operator escalates instead of acting.",
    )


class AutoApprove(Model):
    """The pre-approved boundary inside which the operator acts alone."""

    max_score: UnitInterval | None = Field(
        default=None, description="Highest impact score the operator may act on alone."
    )
    actions: list[Action] | None = Field(
        default=None, max_length=3, description="Actions the operator may take alone."
    )
    max_revisions_back: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=None, description="How far back (in revisions) an automatic rollback may go."
    )


class Authorization(Model):
    """Who may approve what."""

    auto_approve: AutoApprove | None = Field(
        default=None, description="The auto-approval boundary."
    )
    approvers: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        default=None,
        max_length=64,
        description="Usernames allowed to approve outside the boundary; empty means anyone RBAC "
        "lets patch decisions.",
    )
    approval_timeout: Duration | None = Field(
        default=None, description="How long a decision waits for a human."
    )
    on_timeout: OnTimeout | None = Field(
        default=None, description="Reject (default) or Execute when the approval times out."
    )


class Validation(Model):
    """The success criteria of a rollback, written into every decision."""

    rollout_timeout: Duration | None = Field(
        default=None, description="The rolled-back workload must be available within this."
    )
    window: Duration | None = Field(
        default=None, description="Then the score must stay below clearBelow this long."
    )


class Notify(Model):
    """A receiver (from the operator's receivers file) to tell of these transitions."""

    transitions: list[NotifyOn] = Field(
        min_length=1, max_length=10, description="Transitions to tell of."
    )
    receiver: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] = (
        Field(description="Receiver name, as the operator's receivers file defines it.")
    )


class RollbackPolicySpec(Model):
    """How to judge a model deployment and what may be done about it."""

    risk_tier: RiskTier = Field(description="low, medium, high or critical: fills the defaults.")
    mode: Mode | None = Field(
        default=None, description="Enforce (default) or DryRun: decide and record, never act."
    )
    evaluation: Evaluation | None = Field(default=None, description="Measurement settings.")
    signals: list[Signal] = Field(min_length=1, max_length=32, description="Measured signals.")
    impact: Impact = Field(description="Mapping from signals to business impact.")
    triggers: list[Trigger] | None = Field(
        default=None, max_length=16, description="The threshold curve; the tier's when omitted."
    )
    clear_below: UnitInterval | None = Field(
        default=None,
        description="Hysteresis: a degraded deployment recovers only below this score.",
    )
    safety: Safety | None = Field(default=None, description="Cooldown and action budget.")
    authorization: Authorization | None = Field(default=None, description="Approval rules.")
    validation: Validation | None = Field(default=None, description="Post-rollback checks.")
    allowed_namespaces: (
        list[Annotated[str, Field(pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$", max_length=63)]]
        | None
    ) = Field(
        default=None,
        max_length=256,
        description="Namespaces whose ModelDeployments may use this policy besides its own "
        "(a central policy namespace); '*' for every namespace. Default: only its own.",
    )
    notify: list[Notify] | None = Field(
        default=None,
        max_length=16,
        description="Who hears of this policy's decisions, and on which transitions. Not part "
        "of the effective policy: changing it changes no decision.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RollbackPolicySpec:
        names = [s.name for s in self.signals]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"signals: duplicate name {', '.join(dupes)}")
        known = set(names)
        for category in self.impact.categories:
            unknown = sorted(set(category.signals) - known)
            if unknown:
                raise ValueError(
                    f"impact.categories[{category.name}].signals: unknown signal "
                    f"{', '.join(unknown)} (known: {', '.join(names)})"
                )
        if all(c.weight == 0 for c in self.impact.categories):
            raise ValueError("impact.categories: weights must not all be 0")
        return self


class EffectiveEvaluation(Model):
    """Measurement settings, resolved."""

    interval: Duration = Field(description="How often the policy is evaluated.")
    window: Duration = Field(description="Range each signal is sampled over.")
    min_samples: int = Field(description="Fewer samples make a signal Inconclusive.")
    confidence: float = Field(description="Level of the confidence interval.")
    recent_samples: int | None = Field(
        default=None, description="Newest samples also tested on their own; None: off."
    )


class EffectiveAutoApprove(Model):
    """The auto-approval boundary, resolved."""

    max_score: float = Field(description="Highest impact score acted on alone.")
    actions: list[Action] = Field(max_length=3, description="Actions taken alone.")
    max_revisions_back: int = Field(description="How far back a rollback may go alone.")


class EffectiveAuthorization(Model):
    """Approval rules, resolved."""

    auto_approve: EffectiveAutoApprove = Field(description="The auto-approval boundary.")
    approvers: list[Annotated[str, Field(max_length=253)]] = Field(
        max_length=64, description="Usernames allowed to approve; empty means any with RBAC."
    )
    approval_timeout: Duration = Field(description="How long a decision waits for a human.")
    on_timeout: OnTimeout = Field(description="Reject or Execute on timeout.")


class EffectiveSafety(Model):
    """Cooldown and action budget, resolved."""

    cooldown: Duration = Field(description="No new automatic action for this long.")
    max_actions_per_window: ActionBudget = Field(description="The action budget.")


class EffectiveValidation(Model):
    """Post-rollback checks, resolved."""

    rollout_timeout: Duration = Field(description="Time for the rollback to become available.")
    window: Duration = Field(description="Time the score must then stay below clearBelow.")


class EffectivePolicy(Model):
    """A policy with every default filled in: what decisions are made and replayed from."""

    risk_tier: RiskTier = Field(description="The tier the defaults came from.")
    mode: Mode = Field(description="Enforce or DryRun.")
    evaluation: EffectiveEvaluation = Field(description="Measurement settings.")
    signals: list[EffectiveSignal] = Field(max_length=32, description="Measured signals.")
    impact: Impact = Field(description="Impact categories.")
    triggers: list[Trigger] = Field(max_length=16, description="The threshold curve.")
    clear_below: float = Field(description="Hysteresis threshold.")
    safety: EffectiveSafety = Field(description="Cooldown and action budget.")
    authorization: EffectiveAuthorization = Field(description="Approval rules.")
    validation: EffectiveValidation = Field(description="Post-rollback checks.")


QueryMode = Literal["Batched", "PerDeployment"]


class QueryPlan(StatusModel):
    """How one signal's query is run."""

    signal: str = Field(description="Signal name.")
    mode: QueryMode = Field(description="Batched: one query for every bound deployment.")
    message: str = Field(default="", description="Why it could not be batched, if so.")


class RollbackPolicyStatus(StatusModel):
    """What the operator observed of the policy."""

    observed_generation: int | None = Field(default=None, description="Generation last seen.")
    spec_hash: str | None = Field(default=None, description="SHA-256 of the effective policy.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready and Invalid.")
    bound_model_deployments: int | None = Field(
        default=None, description="ModelDeployments that use this policy."
    )
    queries: list[QueryPlan] = Field(default_factory=list, description="Query plan per signal.")
