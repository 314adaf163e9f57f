"""A measured signal of a RollbackPolicy: its PromQL query, the objective it should meet, the
margin tolerated beyond that, the value of full severity and what missing data counts as;
as written (``Signal``) and with its margin resolved from the risk tier (``EffectiveSignal``).

Part of ``rollguard.api.policy``'s models; ``rollguard.core.tiers`` resolves the margin and
checks the critical value once the tier's margin is known (``check_critical``), and decisions
record the objective and margin as evidence (``rollguard.api.decision``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rollguard.api.base import Finite, Model, SignalName

OnMissingData = Literal["Inconclusive", "Breach"]


class Objective(Model):
    """The objective of a signal: exactly one of max (stay at or below) or min (at or above)."""

    max: Finite | None = Field(default=None, description="The value must stay at or below this.")
    min: Finite | None = Field(default=None, description="The value must stay at or above this.")

    @model_validator(mode="after")
    def _one_side(self) -> Objective:
        if (self.max is None) == (self.min is None):
            raise ValueError("objective needs exactly one of max or min")
        return self

    @property
    def direction(self) -> Literal["max", "min"]:
        return "max" if self.max is not None else "min"

    @property
    def value(self) -> float:
        return self.max if self.max is not None else self.min  # type: ignore[return-value]


class Margin(Model):
    """The tolerated zone beyond the objective: exactly one of absolute or relative."""

    absolute: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = Field(
        default=None, description="Tolerance in the signal's own unit."
    )
    relative: Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)] | None = Field(
        default=None, description="Tolerance as a fraction of the objective (0.1 = 10%)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Margin:
        if (self.absolute is None) == (self.relative is None):
            raise ValueError("margin needs exactly one of absolute or relative")
        return self

    def width(self, objective: float) -> float:
        """The margin in the signal's unit, for a given objective value."""
        if self.absolute is not None:
            return self.absolute
        return abs(objective) * (self.relative or 0.0)


class Signal(Model):
    """One measured signal: a PromQL query written for one deployment, and its limits."""

    name: SignalName = Field(description="Name the impact categories refer to.")
    description: str | None = Field(default=None, max_length=1024, description="What it measures.")
    query: str = Field(
        min_length=1,
        max_length=4096,
        description=(
            "PromQL for one deployment, with placeholders $namespace, $deployment and $revision "
            "or ${namespace}, ${deployment} and ${revision} inside label-matcher values (filled "
            "with escaped label values). Must return one series."
        ),
    )
    objective: Objective = Field(description="Where the signal should stay.")
    margin: Margin | None = Field(
        default=None,
        description="Tolerated zone beyond the objective; the risk tier's default when omitted.",
    )
    critical: Finite = Field(description="The value at which this signal's severity reaches 1.")
    on_missing_data: OnMissingData = Field(
        default="Inconclusive",
        description="Inconclusive (default): missing data never triggers; Breach: it counts as "
        "severity 1. A series younger than the window after a rollout is warming up, never "
        "missing: Inconclusive either way.",
    )
    key: bool = Field(
        default=False,
        description=(
            "A key signal (Keptn's key SLI): when its severity reaches 1 the impact score is 1 "
            "whatever the weights. Inconclusive never forces anything; missing data under "
            "onMissingData Breach counts as severity 1 and does."
        ),
    )

    def limit(self, margin: Margin) -> float:
        """Objective plus margin, on the side that is tolerated."""
        width = margin.width(self.objective.value)
        if self.objective.direction == "max":
            return self.objective.value + width
        return self.objective.value - width

    @model_validator(mode="after")
    def _critical_beyond_limit(self) -> Signal:
        # Without a margin only objective vs critical can be checked here; the resolver checks
        # critical against objective + the tier's margin once that is known.
        check_critical(self.name, self.objective, self.margin, self.critical)
        return self


def check_critical(name: str, objective: Objective, margin: Margin | None, critical: float) -> None:
    """Refuse a signal whose critical value does not lie beyond objective + margin."""
    width = margin.width(objective.value) if margin is not None else 0.0
    if objective.direction == "max":
        limit = objective.value + width
        if not critical > limit:
            raise ValueError(
                f"signal {name}: critical ({critical}) must be above objective.max + margin ({limit})"
            )
    else:
        limit = objective.value - width
        if not critical < limit:
            raise ValueError(
                f"signal {name}: critical ({critical}) must be below objective.min - margin ({limit})"
            )


class EffectiveSignal(Model):
    """A signal with its margin resolved."""

    name: SignalName = Field(description="Signal name.")
    query: str = Field(max_length=4096, description="PromQL as written, with placeholders.")
    objective: Objective = Field(description="Where the signal should stay.")
    margin: Margin = Field(description="Tolerated zone beyond the objective.")
    critical: Finite = Field(description="The value of full severity.")
    on_missing_data: OnMissingData = Field(description="What missing data counts as.")
    # Left out of every dump while false, so the spec hash of a policy without key signals and
    # the audit hash of a decision recorded before the field existed do not change.
    key: bool = Field(
        default=False,
        exclude_if=lambda key: not key,
        description="Key signal: severity 1 makes the impact score 1 whatever the weights.",
    )
