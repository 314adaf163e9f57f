"""Where a workload's rollout stands, read from its status as ``kubectl rollout status`` (and
``kubectl argo rollouts status``) reads it. PURE: takes the object as the API returns it.

Deployment. In progress: the controller has not yet seen the latest spec, not every replica
runs the new template, or old replicas are still around. Complete: the latest spec seen,
exactly the wanted replicas, all updated and available, and the Available condition True. A
Deployment can be neither (every replica updated, not all of them available yet).

StatefulSet. In progress: the latest spec unseen, or ``updateRevision`` not yet every
replica's (``currentRevision`` differs, or fewer updated replicas than wanted). Complete: the
latest spec seen, one revision, every replica updated and ready.

Argo Rollouts Rollout. In progress: the latest spec unseen, or the canary (or preview) pod
template hash differs from the stable one, unless the update was aborted. Complete: Argo's own
verdict, ``status.phase`` Healthy on the latest spec; an aborted update is complete once the
stable ReplicaSet alone serves, with every replica available (Argo calls that Degraded:
the spec still names the aborted template).

Called by the operator's cycle (a decision records whether a rollout was in progress, and a
Pause needs one: ``machine.recommend``) and by a decision's validation (a rollback must
complete within its rollout timeout).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollguard.api.base import WorkloadKind


def _replicas(deployment: Mapping[str, Any]) -> tuple[Mapping[str, Any], int, bool]:
    """The status, the wanted replicas and whether the latest spec has been observed."""
    status = deployment.get("status") or {}
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    seen = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    return status, replicas, seen


def rollout_in_progress(workload: Mapping[str, Any], kind: WorkloadKind = "Deployment") -> bool:
    """Whether the workload is still rolling out its latest spec."""
    if kind == "StatefulSet":
        return _stateful_set_in_progress(workload)
    if kind == "Rollout":
        return _rollout_in_progress(workload)
    status, replicas, seen = _replicas(workload)
    return bool(
        not seen
        or status.get("updatedReplicas", 0) < replicas
        or status.get("replicas", 0) > replicas
    )


def rollout_complete(workload: Mapping[str, Any], kind: WorkloadKind = "Deployment") -> bool:
    """Whether the workload has rolled out its latest spec and every replica is available."""
    if kind == "StatefulSet":
        return _stateful_set_complete(workload)
    if kind == "Rollout":
        return _rollout_complete(workload)
    status, replicas, seen = _replicas(workload)
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return bool(
        seen
        and status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and conditions.get("Available") == "True"
    )


def _stateful_set_in_progress(sts: Mapping[str, Any]) -> bool:
    status, replicas, seen = _replicas(sts)
    return bool(
        not seen
        or status.get("updateRevision") != status.get("currentRevision")
        or status.get("updatedReplicas", 0) < replicas
    )


def _stateful_set_complete(sts: Mapping[str, Any]) -> bool:
    status, replicas, seen = _replicas(sts)
    return bool(
        seen
        and status.get("updateRevision")
        and status.get("updateRevision") == status.get("currentRevision")
        and status.get("updatedReplicas", 0) == replicas
        and status.get("readyReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
    )


def rollout_aborted(rollout: Mapping[str, Any]) -> bool:
    """Whether an Argo Rollout's update was aborted (``status.abort``): the stable ReplicaSet
    serves again while the spec still names the aborted template."""
    return bool((rollout.get("status") or {}).get("abort"))


def _rollout_seen(rollout: Mapping[str, Any]) -> bool:
    # Argo writes status.observedGeneration as a string.
    status = rollout.get("status") or {}
    generation = (rollout.get("metadata") or {}).get("generation", 0)
    return str(status.get("observedGeneration", "")) == str(generation)


def _rollout_in_progress(rollout: Mapping[str, Any]) -> bool:
    status = rollout.get("status") or {}
    if not _rollout_seen(rollout):
        return True
    if rollout_aborted(rollout):
        return False
    return bool(status.get("currentPodHash") != status.get("stableRS"))


def _rollout_complete(rollout: Mapping[str, Any]) -> bool:
    status = rollout.get("status") or {}
    replicas = (rollout.get("spec") or {}).get("replicas", 1)
    if not _rollout_seen(rollout):
        return False
    if rollout_aborted(rollout):
        return bool(
            status.get("availableReplicas", 0) >= replicas and status.get("updatedReplicas", 0) == 0
        )
    return bool(
        status.get("phase") == "Healthy" and status.get("currentPodHash") == status.get("stableRS")
    )
