"""The three custom resources as whole objects, with their names and printer columns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from rollguard.api import API_VERSION
from rollguard.api.decision import RollbackDecisionSpec, RollbackDecisionStatus
from rollguard.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from rollguard.api.policy import RollbackPolicySpec, RollbackPolicyStatus

CATEGORY = "rollguard"


class ObjectMeta(BaseModel):
    """The parts of metadata rollguard reads; anything else is kept as it is."""

    model_config = ConfigDict(
        extra="allow", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


SpecT = TypeVar("SpecT", bound=BaseModel)
StatusT = TypeVar("StatusT", bound=BaseModel)


class Resource(BaseModel, Generic[SpecT, StatusT]):
    """A custom resource: apiVersion, kind, metadata, spec, status."""

    model_config = ConfigDict(
        extra="ignore", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    api_version: str = API_VERSION
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SpecT

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RollbackPolicy(Resource[RollbackPolicySpec, RollbackPolicyStatus]):
    kind: Literal["RollbackPolicy"] = "RollbackPolicy"
    status: RollbackPolicyStatus | None = None


class ModelDeployment(Resource[ModelDeploymentSpec, ModelDeploymentStatus]):
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    status: ModelDeploymentStatus | None = None


class RollbackDecision(Resource[RollbackDecisionSpec, RollbackDecisionStatus]):
    kind: Literal["RollbackDecision"] = "RollbackDecision"
    status: RollbackDecisionStatus | None = None


@dataclass(frozen=True)
class KindInfo:
    """Names and printer columns of one kind."""

    kind: str
    plural: str
    singular: str
    short_names: list[str]
    resource: type[Resource[Any, Any]]
    columns: list[dict[str, Any]]


def _column(
    name: str, path: str, type_: str = "string", priority: int = 0, desc: str = ""
) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    if desc:
        col["description"] = desc
    return col


_AGE = _column("Age", ".metadata.creationTimestamp", "date")

# Columns are for people: what they look for first comes first, numbers are the rounded
# strings the operator writes into status (a number column prints every digit), reasons are
# one short sentence, and the priority-0 columns of a realistic listing fit a 120-column
# terminal (tests/unit/control/test_columns.py). The arithmetic is for `rollguard explain`.
KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind="RollbackPolicy",
        plural="rollbackpolicies",
        singular="rollbackpolicy",
        short_names=["rbp"],
        resource=RollbackPolicy,
        columns=[
            _column("Tier", ".spec.riskTier", desc="Risk tier"),
            _column("Mode", ".spec.mode", desc="Enforce or DryRun"),
            _column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            _column(
                "Bound", ".status.boundModelDeployments", "integer", desc="Bound ModelDeployments"
            ),
            _column(
                "Reason",
                '.status.conditions[?(@.type=="Ready")].reason',
                desc="Why it is or is not Ready",
            ),
            _AGE,
        ],
    ),
    KindInfo(
        kind="ModelDeployment",
        plural="modeldeployments",
        singular="modeldeployment",
        short_names=["mdep"],
        resource=ModelDeployment,
        columns=[
            _column("Phase", ".status.phase"),
            _column(
                "Score",
                ".status.lastEvaluation.scoreText",
                desc="Impact score of the newest evaluation, two decimals",
            ),
            _column("Revision", ".status.currentRevision", "integer", desc="Current revision"),
            _column(
                "Stable",
                ".status.stableRevision",
                "integer",
                desc="Newest approved revision (the rollback target)",
            ),
            _column("Target", ".status.target", desc="The guarded workload, as Kind/name"),
            _column("Policy", ".spec.policyRef.name"),
            _column("Decision", ".status.lastDecision", priority=1, desc="Newest RollbackDecision"),
            _column("Model", ".spec.model.version", priority=1, desc="Model version"),
            _AGE,
        ],
    ),
    KindInfo(
        kind="RollbackDecision",
        plural="rollbackdecisions",
        singular="rollbackdecision",
        short_names=["rbd"],
        resource=RollbackDecision,
        columns=[
            _column("Action", ".spec.recommended.action"),
            _column("From", ".spec.recommended.fromRevision", "integer", desc="Revision before"),
            _column("To", ".spec.recommended.toRevision", "integer", desc="Rollback target"),
            _column("Score", ".status.scoreText", desc="Impact score, two decimals"),
            _column("Phase", ".status.phase"),
            _column("Approval", ".spec.requiresApproval", "boolean", desc="Requires approval"),
            _column("Model", ".spec.modelDeploymentRef.name", priority=1, desc="ModelDeployment"),
            _column("By", ".spec.approval.by", priority=1, desc="Who approved or rejected"),
            _column("Verdict", ".status.validation.verdict", priority=1),
            _column(
                "Reason",
                ".status.reasonText",
                priority=1,
                desc="The recommendation in one sentence",
            ),
            _AGE,
        ],
    ),
)
