"""ModelDeployment: one model service under rollguard's protection."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from rollguard.api.base import (
    Condition,
    Duration,
    Finite,
    LocalObjectRef,
    Model,
    NamespacedRef,
    StatusModel,
    TargetRef,
)
from rollguard.api.policy import Action, Mode

Phase = Literal[
    "Healthy",
    "Degraded",
    "Inconclusive",
    "AwaitingApproval",
    "RollingBack",
    "Validating",
    "Cooldown",
    "Escalated",
]
ApprovalSource = Literal["spec", "bake", "human"]
SignalStatus = Literal["Ok", "Breach", "Inconclusive"]


class ModelInfo(Model):
    """Which model this is."""

    name: str = Field(min_length=1, max_length=253, description="Model name.")
    version: str | None = Field(default=None, max_length=128, description="Model version.")


class Owner(Model):
    """A stakeholder of the model service."""

    name: str = Field(min_length=1, max_length=253, description="Person or team.")
    role: str | None = Field(default=None, max_length=128, description="For example model-owner.")
    contact: str | None = Field(default=None, max_length=253, description="Email or channel.")


class Business(Model):
    """Business figures the impact model may use to state money at risk."""

    revenue_per_hour: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = Field(
        default=None, description="Revenue flowing through this service per hour."
    )
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, like USD."
    )
    customers: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Customers served."
    )
    figures: dict[str, Finite] | None = Field(
        default=None, max_length=32, description="Further free numbers, by name."
    )


class ApprovedRevisionRef(Model):
    """A revision approved through Git: by Deployment revision number, pod-template-hash, or
    the first container's image."""

    revision: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Deployment revision number."
    )
    template_hash: str | None = Field(
        default=None, max_length=64, description="The ReplicaSet's pod-template-hash label."
    )
    image: str | None = Field(
        default=None, max_length=512, description="Image of the first container."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ApprovedRevisionRef:
        if sum(v is not None for v in (self.revision, self.template_hash, self.image)) != 1:
            raise ValueError(
                "an approved revision names exactly one of revision, templateHash, image"
            )
        return self


class ModelDeploymentSpec(Model):
    """One model service under protection."""

    deployment_ref: LocalObjectRef | None = Field(
        default=None,
        description="The apps/v1 Deployment, same namespace: shorthand for a targetRef of kind "
        "Deployment. Exactly one of deploymentRef and targetRef is set.",
    )
    target_ref: TargetRef | None = Field(
        default=None,
        description="The workload, same namespace: a Deployment, a StatefulSet or an Argo "
        "Rollouts Rollout. Exactly one of deploymentRef and targetRef is set.",
    )
    policy_ref: NamespacedRef = Field(description="The RollbackPolicy that judges it.")
    model: ModelInfo | None = Field(default=None, description="Which model it serves.")
    owners: list[Owner] | None = Field(default=None, max_length=32, description="Stakeholders.")
    business: Business | None = Field(default=None, description="Business figures.")
    approved_revisions: list[ApprovedRevisionRef] | None = Field(
        default=None, max_length=64, description="Revisions approved through Git."
    )
    bake_time: Duration | None = Field(
        default=None,
        description="A revision that stays healthy this long becomes approved automatically.",
    )
    mode: Mode | None = Field(default=None, description="Overrides the policy's mode.")

    @model_validator(mode="after")
    def _one_target(self) -> ModelDeploymentSpec:
        if (self.deployment_ref is None) == (self.target_ref is None):
            raise ValueError("name the workload with exactly one of deploymentRef and targetRef")
        return self

    @property
    def target(self) -> TargetRef:
        """The guarded workload, whichever way the spec names it."""
        if self.target_ref is not None:
            return self.target_ref
        assert self.deployment_ref is not None  # _one_target
        return TargetRef.deployment(self.deployment_ref.name)


class ApprovedRevision(StatusModel):
    """A revision rollbacks may target."""

    revision: int = Field(description="Deployment revision number.")
    template_hash: str = Field(description="pod-template-hash of its ReplicaSet.")
    approved_at: datetime = Field(description="When it was approved.")
    source: ApprovalSource = Field(description="spec, bake or human.")


class SignalEvaluation(StatusModel):
    """One signal at one evaluation."""

    name: str
    status: SignalStatus
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    samples: int = 0
    severity: float = 0.0
    message: str = ""
    warming_up: bool = Field(
        default=False,
        exclude_if=lambda warming: not warming,
        description="Too few samples because the series is younger than the window (after a "
        "rollout or a rollback): Inconclusive whatever onMissingData says.",
    )


class CategoryEvaluation(StatusModel):
    name: str
    severity: float


class LastEvaluation(StatusModel):
    """The most recent evaluation, in numbers."""

    time: datetime
    score: float | None = Field(default=None, description="Impact score in [0, 1].")
    score_text: str | None = Field(
        default=None,
        max_length=16,
        description="The impact score with two decimals, as kubectl get shows it; absent while "
        "the score is unknown.",
    )
    signals: list[SignalEvaluation] = Field(default_factory=list)
    categories: list[CategoryEvaluation] = Field(default_factory=list)


class GuardState(StatusModel):
    """State the decision core carries between evaluations, kept in status so that a restart
    continues where it stopped."""

    above_since: dict[str, float] = Field(
        default_factory=dict,
        max_length=16,
        description="Per trigger index, since when (Unix seconds) the score has stayed at or "
        "above that point's minScore.",
    )
    degraded: bool = Field(
        default=False, description="Whether the score has not yet cleared clearBelow."
    )
    episode_action: Action | None = Field(
        default=None, description="Action of the most severe trigger point fired in this episode."
    )
    episode_min_score: float | None = Field(
        default=None, description="minScore of the most severe trigger point fired in this episode."
    )
    action_times: list[float] = Field(
        default_factory=list,
        max_length=101,
        description="Unix seconds of recent executed Rollbacks and Pauses (the action budget).",
    )
    changed_at: float | None = Field(
        default=None,
        description="Unix seconds of the newest executed revision change (a Rollback): the "
        "cooldown runs from it.",
    )
    reoffer_at: float | None = Field(
        default=None,
        description="A trigger point blocked by cooldown is offered again at this time (the "
        "cooldown's end) if the episode persists.",
    )
    reoffer_action: Action | None = Field(
        default=None, description="Action of the point blocked by cooldown."
    )
    reoffer_min_score: float | None = Field(
        default=None, description="minScore of the point blocked by cooldown."
    )


class AuditHead(StatusModel):
    """The newest link of this ModelDeployment's decision hash chain, and where the chain
    legitimately begins after old decisions were exported and garbage-collected."""

    sequence: int = Field(default=0, description="Sequence number of the newest decision.")
    hash: str = Field(default="", description="Audit hash of the newest decision.")
    pruned_through: int = Field(
        default=0, description="Decisions up to this sequence were exported and deleted."
    )
    pruned_hash: str = Field(default="", description="Audit hash of the last deleted decision.")


class ModelDeploymentStatus(StatusModel):
    """What the operator observed and decided about the model service."""

    phase: Phase | None = Field(default=None, description="Where the service stands.")
    message: str = Field(default="", description="Why, in one sentence.")
    target: str | None = Field(
        default=None, max_length=300, description="The guarded workload, as Kind/name."
    )
    current_revision: int | None = Field(default=None, description="The workload's revision now.")
    stable_revision: int | None = Field(
        default=None, description="Newest approved revision (the rollback target)."
    )
    approved_revisions: list[ApprovedRevision] = Field(
        default_factory=list, description="Revisions rollbacks may target, newest first."
    )
    last_evaluation: LastEvaluation | None = Field(default=None, description="Newest evaluation.")
    last_decision: str | None = Field(default=None, description="Newest RollbackDecision.")
    guard: GuardState = Field(default_factory=GuardState, description="Decision-core state.")
    policy_hash: str | None = Field(
        default=None,
        description="Hash of the judging fields (evaluation, signals, impact, triggers, "
        "clearBelow) of the policy the guard state belongs to: an edit of anything else keeps it.",
    )
    healthy_since: float | None = Field(
        default=None, description="Unix seconds since the current revision is healthy (bake)."
    )
    escalated_at: datetime | None = Field(
        default=None, description="When automatic actions stopped, waiting for a human."
    )
    escalation_reason: str | None = Field(default=None, description="Why it escalated.")
    audit: AuditHead = Field(default_factory=AuditHead, description="Decision hash chain head.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Invalid.")
    observed_generation: int | None = Field(default=None, description="Generation last seen.")
