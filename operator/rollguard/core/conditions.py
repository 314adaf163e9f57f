"""Standard status conditions, Kubebuilder style: lastTransitionTime changes only when the
status does. PURE."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rollguard.api.base import Condition, ConditionStatus


def set_condition(
    conditions: Sequence[Condition],
    *,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """``conditions`` with ``type_`` set; its transition time is kept when status is unchanged."""
    out = [c for c in conditions if c.type != type_]
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    out.append(
        Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message[:4096],
            last_transition_time=since,
            observed_generation=generation,
        )
    )
    return sorted(out, key=lambda c: c.type)


def condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_ready(
    conditions: Sequence[Condition],
    *,
    ready: ConditionStatus,
    reason: str,
    message: str,
    invalid: bool,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """The Ready/Invalid pair every rollguard object carries: Invalid is True only when the
    object's own spec is at fault, and then says why."""
    out = set_condition(
        conditions,
        type_="Ready",
        status=ready,
        reason=reason,
        message=message,
        now=now,
        generation=generation,
    )
    return set_condition(
        out,
        type_="Invalid",
        status="True" if invalid else "False",
        reason=reason,
        message=message if invalid else "",
        now=now,
        generation=generation,
    )
