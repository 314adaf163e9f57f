"""RollbackDecision: one decision, its evidence and its outcome.

The spec is the evidence, written once by the operator and immutable afterwards (the CRD's
CEL rules enforce it); ``spec.approval`` and, after the end, ``spec.review`` are the fields
humans write, each once. Everything a
replay needs is in the spec: the samples, the effective policy, the revision history and the
state carried in from earlier evaluations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from rollguard.api.base import (
    Condition,
    Duration,
    Finite,
    LocalObjectRef,
    Model,
    StatusModel,
    TargetRef,
)
from rollguard.api.modeldeployment import ApprovalSource, GuardState, SignalStatus
from rollguard.api.policy import Action, EffectivePolicy, Mode, NotifyOn
from rollguard.api.signal import Margin, Objective, OnMissingData

DecisionPhase = Literal[
    "PendingApproval",
    "Approved",
    "Rejected",
    "Expired",
    "Executing",
    "Validating",
    "Succeeded",
    "Failed",
    "DryRun",
    "Superseded",
]
FINAL_PHASES: frozenset[str] = frozenset(
    {"Rejected", "Expired", "Succeeded", "Failed", "DryRun", "Superseded"}
)
ApprovalVerdict = Literal["Approve", "Reject"]
ReviewVerdict = Literal["Achieved", "Partial", "NotAchieved"]
RegressionFinding = Literal["Real", "FalseAlarm", "Unclear"]

# Bounds keep every decision small enough for etcd and let the API server price its CEL rules.
MAX_SAMPLES = 300
MAX_SIGNALS = 32
Text = Annotated[str, Field(max_length=4096)]
ShortText = Annotated[str, Field(max_length=253)]


class PolicySnapshot(Model):
    """The policy as it was when the decision was made."""

    name: ShortText = Field(description="RollbackPolicy name.")
    namespace: ShortText = Field(description="RollbackPolicy namespace.")
    generation: int = Field(description="Its metadata.generation.")
    spec_hash: Annotated[str, Field(max_length=80)] = Field(
        description="SHA-256 of the effective policy."
    )
    effective: EffectivePolicy = Field(description="The policy with tier defaults filled in.")


class TriggerHit(Model):
    """Which point of the threshold curve fired, and why."""

    index: int = Field(ge=0, description="Index of the curve point in the effective policy.")
    action: Action = Field(description="The point's action.")
    min_score: float = Field(description="The point's minScore.")
    sustained_for: Duration = Field(description="The point's required dwell time.")
    score: float = Field(description="Impact score at evaluation.")
    above_since: datetime = Field(
        description="Since when the score has stayed at or above minScore."
    )
    sustained_seconds: float = Field(description="How long it had stayed there, in seconds.")


class Samples(Model):
    """Raw samples of one signal over the window (bounded), as two aligned arrays."""

    timestamps: list[Finite] = Field(max_length=MAX_SAMPLES, description="Unix seconds.")
    values: list[Finite] = Field(max_length=MAX_SAMPLES, description="Sample values.")
    step: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Seconds between the times the query was evaluated at, from the window's "
        "start (the range query's step): where the samples lie in the window, which shows a "
        "series that began inside it (warming up).",
    )

    @model_validator(mode="after")
    def _aligned(self) -> Samples:
        if len(self.timestamps) != len(self.values):
            raise ValueError("samples: timestamps and values differ in length")
        return self


class SignalEvidence(Model):
    """One signal as measured for the decision."""

    name: Annotated[str, Field(max_length=63)] = Field(description="Signal name.")
    query: Text = Field(description="The PromQL as rendered for this deployment.")
    window: Duration = Field(description="Range sampled.")
    samples: Samples = Field(description="The samples the value was computed from.")
    status: SignalStatus = Field(description="Ok, Breach or Inconclusive.")
    value: Finite | None = Field(default=None, description="Mean over the window.")
    lower: Finite | None = Field(default=None, description="Lower confidence bound.")
    upper: Finite | None = Field(default=None, description="Upper confidence bound.")
    objective: Objective = Field(description="Objective.")
    margin: Margin = Field(description="Margin.")
    critical: Finite = Field(description="Value of full severity.")
    on_missing_data: OnMissingData = Field(description="What missing data counts as.")
    severity: float = Field(description="Severity in [0, 1].")
    message: Text = Field(default="", description="How the severity was reached.")
    # Left out while false, so the audit hash of a decision recorded before the field existed
    # does not change.
    warming_up: bool = Field(
        default=False,
        exclude_if=lambda warming: not warming,
        description="Too few samples because the series is younger than the window (after a "
        "rollout or a rollback): Inconclusive whatever onMissingData says.",
    )


class CategoryImpact(Model):
    name: Annotated[str, Field(max_length=63)] = Field(description="Category name.")
    weight: float = Field(description="Category weight.")
    severity: float = Field(description="Category severity in [0, 1].")


class MoneyAtRisk(Model):
    per_hour: float = Field(
        description="Revenue at risk per hour (revenue severity x revenuePerHour)."
    )
    currency: Annotated[str, Field(max_length=3)] = Field(description="Currency code.")
    revenue_per_hour: float | None = Field(
        default=None,
        description="The ModelDeployment's business.revenuePerHour it was computed from, so a "
        "replay reproduces it.",
    )


class ImpactEvidence(Model):
    """The impact score and how it was composed."""

    score: float = Field(
        description="Weighted mean of category severities, in [0, 1]; 1 when forcedBy is set."
    )
    categories: list[CategoryImpact] = Field(max_length=16, description="Per category.")
    money_at_risk: MoneyAtRisk | None = Field(
        default=None, description="When business figures allow."
    )
    # Left out while empty, so the audit hash of a decision recorded before the field existed
    # does not change.
    forced_by: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list,
        max_length=MAX_SIGNALS,
        exclude_if=lambda names: not names,
        description="Key signals (signals[].key) whose severity reached 1 and so set the score "
        "to 1 whatever the weights; left out when the score is the weighted mean.",
    )


class RevisionInfo(Model):
    """A Deployment revision known at decision time."""

    revision: int = Field(description="Deployment revision number.")
    template_hash: Annotated[str, Field(max_length=64)] = Field(description="pod-template-hash.")
    approved: bool = Field(description="Whether rollbacks may target it.")
    source: ApprovalSource | None = Field(default=None, description="Why it is approved.")


class RevisionContext(Model):
    """The Deployment's revisions when the decision was made."""

    current: int = Field(description="Current revision.")
    rollout_in_progress: bool = Field(
        default=False, description="Whether the Deployment was still rolling out."
    )
    history: list[RevisionInfo] = Field(max_length=64, description="Known revisions, newest first.")
    born: Finite | None = Field(
        default=None,
        description="Unix seconds since which the current revision can have data (its "
        "ReplicaSet's creation, or the rollback that made it current): a signal with too few "
        "samples less than a window after it was warming up. Unknown when absent.",
    )


class Option(Model):
    """A candidate action."""

    action: Action = Field(description="Rollback, Pause or Hold.")
    to_revision: int | None = Field(default=None, description="Target revision of a Rollback.")
    expected_loss: float = Field(description="Expected loss in impact-hours.")
    expected_money_loss: float | None = Field(default=None, description="Expected loss in money.")
    within_boundary: bool = Field(description="Inside the auto-approval boundary.")
    reason: Text = Field(description="Why it costs what it does, or why it is not available.")
    available: bool = Field(default=True, description="Whether it can be taken at all.")


class Recommendation(Model):
    action: Action = Field(description="The recommended action.")
    from_revision: int = Field(description="Current revision.")
    to_revision: int | None = Field(default=None, description="Target revision of a Rollback.")
    to_template_hash: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Target pod-template-hash of a Rollback."
    )
    reason: Text = Field(description="Why, with the arithmetic.")


class Approval(Model):
    """A human's verdict, written once; the API server checks that by is the requester."""

    decision: ApprovalVerdict = Field(description="Approve or Reject.")
    by: ShortText = Field(min_length=1, description="Username of the approver.")
    reason: Text = Field(min_length=1, description="Why.")


class Review(Model):
    """A reviewer's verdict after the decision ended, written once; the API server checks that
    by is the requester and that the decision is final."""

    verdict: ReviewVerdict = Field(
        description="Whether the decision achieved what it expected: Achieved, Partial or "
        "NotAchieved."
    )
    regression: RegressionFinding = Field(
        description="Whether the model really regressed: Real, FalseAlarm (the trigger fired "
        "on noise or on a cause the model did not have) or Unclear."
    )
    by: ShortText = Field(min_length=1, description="Username of the reviewer.")
    notes: Text = Field(min_length=1, description="What the review found.")
    reviewed_at: datetime = Field(description="When the review was written (reviewer's clock).")


class RollbackDecisionSpec(Model):
    """The evidence of one decision, immutable after creation, and its approval."""

    model_deployment_ref: LocalObjectRef = Field(description="The ModelDeployment.")
    deployment_ref: LocalObjectRef | None = Field(
        default=None,
        description="The apps/v1 Deployment, when the workload is one (else targetRef).",
    )
    target_ref: TargetRef | None = Field(
        default=None,
        description="The workload when it is not a Deployment: a StatefulSet or a Rollout.",
    )
    policy: PolicySnapshot = Field(description="The policy it was decided under.")
    operator_version: Annotated[str, Field(max_length=64)] = Field(description="Operator version.")
    evaluated_at: datetime = Field(description="Time of the evaluation.")
    mode: Mode = Field(description="Enforce, or DryRun (never acts).")
    trigger: TriggerHit = Field(description="The curve point that fired.")
    signals: list[SignalEvidence] = Field(max_length=MAX_SIGNALS, description="Measured signals.")
    impact: ImpactEvidence = Field(description="Impact score.")
    revisions: RevisionContext = Field(description="Revisions at decision time.")
    state_before: GuardState = Field(description="Guard state carried in from earlier evaluations.")
    options: list[Option] = Field(max_length=8, description="Candidate actions.")
    recommended: Recommendation = Field(description="The recommended action.")
    requires_approval: bool = Field(description="Whether a human must approve.")
    approval_reason: Text = Field(default="", description="Why approval is or is not required.")
    approval: Approval | None = Field(default=None, description="Set once, by a human.")
    review: Review | None = Field(
        default=None, description="Set once, by a human reviewer, after the decision is final."
    )

    @model_validator(mode="after")
    def _one_target(self) -> RollbackDecisionSpec:
        if (self.deployment_ref is None) == (self.target_ref is None):
            raise ValueError(
                "a decision names its workload by exactly one of deploymentRef and targetRef"
            )
        return self

    @property
    def target(self) -> TargetRef:
        """The workload decided about; a Deployment is recorded as ``deploymentRef``, as
        decisions always were, so that their audit hashes stay what they were."""
        if self.target_ref is not None:
            return self.target_ref
        assert self.deployment_ref is not None  # _one_target
        return TargetRef.deployment(self.deployment_ref.name)

    @staticmethod
    def refs(target: TargetRef) -> dict[str, Any]:
        """The ``deployment_ref``/``target_ref`` keyword arguments that record ``target``."""
        if target.kind == "Deployment":
            return {"deployment_ref": LocalObjectRef(name=target.name)}
        return {"target_ref": target}


class Execution(StatusModel):
    started_at: datetime | None = None
    finished_at: datetime | None = None
    patched: bool = False
    from_template_hash: str | None = None
    patched_template_hash: str | None = None
    message: str = ""


class ValidationCriteria(StatusModel):
    rollout_timeout: str
    window: str
    clear_below: float


Verdict = Literal["Passed", "Failed"]


class ValidationResult(StatusModel):
    criteria: ValidationCriteria
    started_at: datetime | None = None
    rollout_completed_at: datetime | None = None
    observed_max_score: float | None = None
    observed_last_score: float | None = None
    evaluations: int = 0
    last_evaluation_at: datetime | None = None
    verdict: Verdict | None = None
    message: str = ""


class Outcome(StatusModel):
    """The decision journal: what was expected and what was observed."""

    expected_score_after: float | None = None
    observed_score_after: float | None = None
    expected_loss_avoided: float | None = None
    observed_loss_avoided: float | None = None
    money_at_risk_before: float | None = None
    money_at_risk_after: float | None = None
    summary: str = ""


class Audit(StatusModel):
    sequence: int
    hash: str
    previous_hash: str
    exported: bool = False
    review_exported: bool = False


NotificationState = Literal["Pending", "Delivered", "Failed"]


class Notification(StatusModel):
    """One receiver told of one transition, at least once; never its URL or token."""

    receiver: str = Field(description="Receiver name.")
    transition: NotifyOn = Field(
        description="What it is told of (a RollbackPolicy notify.transitions value)."
    )
    state: NotificationState = Field(description="Pending, Delivered or Failed.")
    attempts: int = Field(default=0, description="Delivery attempts so far.")
    raised_at: datetime | None = Field(default=None, description="When the transition was made.")
    last_attempt_at: datetime | None = Field(default=None, description="The last attempt.")
    delivered_at: datetime | None = Field(default=None, description="When a receiver took it.")
    reason: str = Field(default="", max_length=256, description="Why the last attempt failed.")


class RollbackDecisionStatus(StatusModel):
    phase: DecisionPhase | None = None
    message: str = ""
    # Short forms of the evidence for kubectl get, written when the decision is sealed: they
    # live in status because the spec is the audited evidence and must not change.
    score_text: str | None = Field(
        default=None,
        max_length=16,
        description="spec.impact.score with two decimals, as kubectl get shows it.",
    )
    reason_text: str | None = Field(
        default=None,
        max_length=128,
        description="The recommendation in one sentence, without the arithmetic "
        "(spec.recommended.reason has it).",
    )
    conditions: list[Condition] = Field(default_factory=list)
    execution: Execution | None = None
    validation: ValidationResult | None = None
    outcome: Outcome | None = None
    audit: Audit | None = None
    observed_generation: int | None = None
    notifications: list[Notification] = Field(
        default_factory=list, max_length=64, description="Who was told, of what, and how it went."
    )
