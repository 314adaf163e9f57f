"""Shared building blocks of the API models: the model base classes, durations, conditions.

Models are frozen, refuse unknown fields and use camelCase aliases, so a YAML file or a
Kubernetes object round-trips through them unchanged.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Durations longer than this are refused: they are typos, not policies.
MAX_DURATION_SECONDS = 30 * 24 * 3600.0


def duration_seconds(text: str) -> float:
    """Seconds in a Go-style duration such as ``90s``, ``5m`` or ``1h30m``."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"invalid duration {text!r}: use a number with ms, s, m or h, like 30s or 1h30m"
        )
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest Go-style duration for a whole number of seconds (fractions use ms)."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot format duration of {seconds} seconds")
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return out + (f"{secs}s" if secs or not out else "")


def _check_duration(text: str) -> str:
    if duration_seconds(text) > MAX_DURATION_SECONDS:
        raise ValueError(f"duration {text!r} is longer than 30 days")
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32),
    AfterValidator(_check_duration),
]
"""A Go-style duration string (``30s``, ``5m``, ``1h30m``); negative values cannot be written."""

Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=253)]
"""A Kubernetes object name (DNS subdomain, lower case)."""

SIGNAL_NAME_PATTERN = r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9_])?$"


def _check_signal_name(text: str) -> str:
    # Checked here rather than by a pydantic pattern so the refusal says what a name may be,
    # not which regular expression it failed.
    if not re.fullmatch(SIGNAL_NAME_PATTERN, text):
        raise ValueError(
            f"{text!r} is not a valid name: start with a letter, then use letters, digits, "
            "'_' or '-', and do not end with '-'"
        )
    return text


SignalName = Annotated[
    str,
    Field(max_length=63),
    AfterValidator(_check_signal_name),
    WithJsonSchema({"type": "string", "pattern": SIGNAL_NAME_PATTERN, "maxLength": 63}),
]
"""A signal or category name: a letter, then letters, digits, ``_`` or ``-``, not ending in
``-`` (``error_rate``, ``error-rate``, ``p99-latency``); at most 63 characters."""

UnitInterval = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Model(BaseModel):
    """Base of user-owned API parts: frozen, unknown fields refused, camelCase on the wire."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        protected_namespaces=(),
        ser_json_inf_nan="strings",
    )

    def wire(self) -> dict[str, Any]:
        """The object as it is written to Kubernetes or YAML: camelCase, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(Model):
    """Base of operator-owned status parts: unknown fields are ignored, so an older operator
    can still read a status a newer one wrote."""

    model_config = ConfigDict(extra="ignore")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A standard Kubernetes condition."""

    type: str = Field(description="Condition type, such as Ready or Invalid.", max_length=64)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="UpperCamelCase reason for the last transition.", max_length=64)
    message: str = Field(default="", description="Human-readable detail.", max_length=4096)
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the condition was computed from."
    )


class LocalObjectRef(Model):
    """A reference to an object in the same namespace."""

    name: Name = Field(description="Name of the object.")


WorkloadKind = Literal["Deployment", "StatefulSet", "Rollout"]
"""The kinds of workload rollguard can guard and roll back."""

TARGET_API_VERSIONS: dict[str, str] = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Rollout": "argoproj.io/v1alpha1",
}
"""The API version of each workload kind."""


class TargetRef(Model):
    """The workload a ModelDeployment guards, in the same namespace."""

    api_version: Literal["apps/v1", "argoproj.io/v1alpha1"] = Field(
        description="apps/v1 (Deployment, StatefulSet) or argoproj.io/v1alpha1 (Rollout)."
    )
    kind: WorkloadKind = Field(description="Deployment, StatefulSet or Rollout.")
    name: Name = Field(description="Name of the workload.")

    @model_validator(mode="after")
    def _version_of_kind(self) -> TargetRef:
        if TARGET_API_VERSIONS[self.kind] != self.api_version:
            raise ValueError(
                f"kind {self.kind} has apiVersion {TARGET_API_VERSIONS[self.kind]}, "
                f"not {self.api_version}"
            )
        return self

    @classmethod
    def deployment(cls, name: str) -> TargetRef:
        """The apps/v1 Deployment ``name`` (what ``deploymentRef`` stands for)."""
        return cls(api_version="apps/v1", kind="Deployment", name=name)

    def describe(self, namespace: str) -> str:
        """``Kind namespace/name``, as messages name the workload."""
        return f"{self.kind} {namespace}/{self.name}"


class NamespacedRef(Model):
    """A reference to an object, in the same namespace unless another is named."""

    name: Name = Field(description="Name of the object.")
    namespace: Name | None = Field(
        default=None, description="Namespace of the object; the referring object's when omitted."
    )
