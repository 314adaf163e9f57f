"""Where a Deployment's rollout stands, read from its status as ``kubectl rollout status``
reads it. PURE: takes the Deployment as the API returns it.

In progress: the controller has not yet seen the latest spec, not every replica runs the
new template, or old replicas are still around. Complete: the latest spec seen, exactly the
wanted replicas, all updated and available, and the Available condition True. A Deployment
can be neither (every replica updated, not all of them available yet).

Called by the operator's cycle (a decision records whether a rollout was in progress, and a
Pause needs one: ``machine.recommend``) and by a decision's validation (a rollback must
complete within its rollout timeout).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _replicas(deployment: Mapping[str, Any]) -> tuple[Mapping[str, Any], int, bool]:
    """The status, the wanted replicas and whether the latest spec has been observed."""
    status = deployment.get("status") or {}
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    seen = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    return status, replicas, seen


def rollout_in_progress(deployment: Mapping[str, Any]) -> bool:
    """Whether the Deployment is still rolling out its latest spec."""
    status, replicas, seen = _replicas(deployment)
    return bool(
        not seen
        or status.get("updatedReplicas", 0) < replicas
        or status.get("replicas", 0) > replicas
    )


def rollout_complete(deployment: Mapping[str, Any]) -> bool:
    """Whether the Deployment has rolled out its latest spec and every replica is available."""
    status, replicas, seen = _replicas(deployment)
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return bool(
        seen
        and status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and conditions.get("Available") == "True"
    )
