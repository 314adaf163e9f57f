"""A RollbackPolicy as the operator uses it: validated, resolved against its risk tier, its
queries checked with the PromQL parser and planned for batching; and its status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from rollguard.api.base import ConditionStatus
from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec, RollbackPolicyStatus
from rollguard.control import reasons
from rollguard.core import tiers
from rollguard.core.conditions import set_ready
from rollguard.files.loading import field_path, validation_summary
from rollguard.signals.promql import BatchPlan, InvalidQuery, plan, validate


class PolicyInvalid(ValueError):  # noqa: N818 - it is the condition's name
    """The policy cannot be used; the message names the field and the problem."""


@dataclass(frozen=True)
class PolicyContext:
    """A usable policy: what every cycle and every decision under it needs."""

    name: str
    namespace: str
    generation: int
    uid: str
    effective: EffectivePolicy
    spec_hash: str
    plans: Mapping[str, BatchPlan]
    allowed_namespaces: frozenset[str] = frozenset()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def usable_from(self, namespace: str) -> bool:
        """Whether ModelDeployments of ``namespace`` may use this policy."""
        return namespace == self.namespace or bool({namespace, "*"} & self.allowed_namespaces)


def load(obj: Mapping[str, Any]) -> PolicyContext:
    """``obj`` (a RollbackPolicy from the API) as a PolicyContext; ``PolicyInvalid`` if not."""
    meta = obj["metadata"]
    try:
        spec = RollbackPolicySpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        raise PolicyInvalid(validation_summary(err)) from err
    try:
        effective = tiers.resolve(spec)
    except ValueError as err:
        raise PolicyInvalid(str(err)) from err
    plans: dict[str, BatchPlan] = {}
    for index, signal in enumerate(effective.signals):
        try:
            validate(signal.query)
        except InvalidQuery as err:
            raise PolicyInvalid(query_problem(index, signal.name, err)) from err
        plans[signal.name] = plan(signal.query)
    return PolicyContext(
        name=meta["name"],
        namespace=meta["namespace"],
        generation=int(meta.get("generation") or 0),
        uid=str(meta.get("uid", "")),
        effective=effective,
        spec_hash=tiers.spec_hash(effective),
        plans=plans,
        allowed_namespaces=frozenset(spec.allowed_namespaces or ()),
    )


def query_problem(index: int, name: str, err: InvalidQuery, *, prefix: str = "") -> str:
    """A refused signal query as the Invalid condition names it: ``signals[1].query
    (latency_p99): <the parser's message>`` (``prefix`` ``spec`` for a whole object's path)."""
    return f"{field_path(('signals', index, 'query'), prefix=prefix)} ({name}): {err}"


def status_for(
    obj: Mapping[str, Any],
    *,
    context: PolicyContext | None,
    error: str | None,
    bound: int,
    metrics_error: str | None,
    now: datetime,
) -> RollbackPolicyStatus:
    """The policy's status: Ready or Invalid with the reason, plans, bound count."""
    old = RollbackPolicyStatus.model_validate(obj.get("status") or {})
    generation = int(obj["metadata"].get("generation") or 0)
    conditions = list(old.conditions)
    if context is None:
        message = error or "invalid"
        conditions = set_ready(
            conditions,
            ready="False",
            reason=reasons.POLICY_INVALID,
            message=message,
            invalid=True,
            now=now,
            generation=generation,
        )
        return old.model_copy(
            update={
                "observed_generation": generation,
                "conditions": conditions,
                "bound_model_deployments": bound,
                "queries": [],
                "spec_hash": None,
            }
        )
    queries = [context.plans[s.name].status(s.name) for s in context.effective.signals]
    per_deployment = [q.signal for q in queries if q.mode == "PerDeployment"]
    ready: ConditionStatus
    if metrics_error:
        ready, reason, message = "False", reasons.METRICS_UNAVAILABLE, metrics_error
    elif per_deployment:
        ready, reason = "True", reasons.QUERY_PER_DEPLOYMENT
        message = (
            f"signals {', '.join(per_deployment)} run one query per deployment (see status.queries)"
        )
    else:
        ready, reason, message = "True", reasons.POLICY_READY, f"{bound} ModelDeployment(s) bound"
    conditions = set_ready(
        conditions,
        ready=ready,
        reason=reason,
        message=message,
        invalid=False,
        now=now,
        generation=generation,
    )
    return old.model_copy(
        update={
            "observed_generation": generation,
            "spec_hash": context.spec_hash,
            "conditions": conditions,
            "bound_model_deployments": bound,
            "queries": queries,
        }
    )
