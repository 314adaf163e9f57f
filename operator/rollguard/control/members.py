"""The ModelDeployments a cycle evaluates, each with its Deployment and ReplicaSet history.

Reads only: from the watch caches or the API server (``Reads``), and from the API server
alone where a cache may lag behind it. A ModelDeployment that cannot be evaluated comes back
as ``NotReady``, saying why; ``status`` writes that. Called by ``cycle``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pydantic import ValidationError

from rollguard.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from rollguard.control import reasons
from rollguard.control import telemetry as observe
from rollguard.control.policy_context import PolicyContext
from rollguard.core.revisions import ReplicaSetRecord, current_revision
from rollguard.core.rollout import rollout_in_progress
from rollguard.files.loading import validation_summary
from rollguard.kube.client import ApiError, Cluster


class Reads(Protocol):
    """Where a cycle reads Deployments and their ReplicaSets: the API (a ``Cluster``) or the
    operator's watch caches. A missing Deployment raises the API's 404."""

    def deployment(self, *, namespace: str, name: str) -> Mapping[str, Any]: ...

    def replica_sets(
        self, *, namespace: str, deployment: Mapping[str, Any]
    ) -> list[ReplicaSetRecord]: ...


@dataclass
class Member:
    """One bound ModelDeployment, with what was read about its Deployment."""

    obj: Mapping[str, Any]
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    deployment: Mapping[str, Any]
    records: list[ReplicaSetRecord]
    current: int

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def rollout_in_progress(self) -> bool:
        return rollout_in_progress(self.deployment)


@dataclass(frozen=True)
class NotReady:
    """A bound ModelDeployment left out of the cycle, and why (``invalid``: its own spec, or
    where it is used from, is at fault)."""

    obj: Mapping[str, Any]
    status: ModelDeploymentStatus
    reason: str
    message: str
    invalid: bool = False


def read_member(
    cluster: Cluster, reads: Reads, obj: Mapping[str, Any], policy: PolicyContext
) -> Member | NotReady:
    """The ModelDeployment with its Deployment and history, or why it cannot be evaluated."""
    meta = obj["metadata"]
    status = ModelDeploymentStatus.model_validate(obj.get("status") or {})
    if not policy.usable_from(meta["namespace"]):
        message = (
            f"RollbackPolicy {policy.namespace}/{policy.name} may not be used from namespace "
            f"{meta['namespace']} (it is not in the policy's allowedNamespaces)"
        )
        return NotReady(obj, status, reasons.POLICY_NOT_SHARED, message, invalid=True)
    try:
        spec = ModelDeploymentSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        message = validation_summary(err, prefix="spec")
        return NotReady(obj, status, reasons.SPEC_INVALID, message, invalid=True)
    try:
        deployment = reads.deployment(namespace=meta["namespace"], name=spec.deployment_ref.name)
    except ApiError as err:
        if err.status != 404:
            raise
        message = f"Deployment {meta['namespace']}/{spec.deployment_ref.name} does not exist"
        return NotReady(obj, status, reasons.DEPLOYMENT_NOT_FOUND, message)
    records = reads.replica_sets(namespace=meta["namespace"], deployment=deployment)
    current = current_revision(deployment)
    if reads is not cluster and cache_suspect(status, records, current):
        # A watch cache lags behind the API server for a while after a peering pause or a
        # burst of changes. What the cycle derives from the history (approvals dropped with
        # their ReplicaSet, the rollback target) is decided on the API server's word only.
        observe.CACHE_READS.labels(kind="ReplicaSet", result="recheck").inc()
        deployment, records, current = live_history(
            cluster, namespace=meta["namespace"], name=spec.deployment_ref.name
        )
    if current is None:
        message = "the Deployment has no revision yet"
        return NotReady(obj, status, reasons.DEPLOYMENT_NOT_FOUND, message)
    return Member(obj, spec, status, deployment, records, current)


def live_history(
    cluster: Cluster, *, namespace: str, name: str
) -> tuple[Mapping[str, Any], list[ReplicaSetRecord], int | None]:
    """The Deployment, its ReplicaSet history and current revision, read from the API server."""
    deployment = cluster.deployment(namespace=namespace, name=name)
    records = cluster.replica_sets(namespace=namespace, deployment=deployment)
    return deployment, records, current_revision(deployment)


def confirmed_member(cluster: Cluster, m: Member) -> Member:
    """``m`` with its Deployment and ReplicaSet history as the API server has them now."""
    try:
        deployment, records, current = live_history(
            cluster, namespace=m.namespace, name=m.spec.deployment_ref.name
        )
    except ApiError as err:
        if err.status != 404:
            raise
        return m  # deleted meanwhile: the decision's execution finds and records that
    if current is None:
        return m
    return replace(m, deployment=deployment, records=records, current=current)


def cache_suspect(
    status: ModelDeploymentStatus, records: Sequence[ReplicaSetRecord], current: int | None
) -> bool:
    """Whether cached history may be behind: the current revision has no ReplicaSet in it, it
    is older than the revision already recorded, or an approved revision's ReplicaSet is
    missing (pruned, or not delivered yet: only the API server can tell)."""
    hashes = {r.template_hash for r in records}
    return (
        current is None
        or current not in {r.revision for r in records}
        or (status.current_revision is not None and status.current_revision > current)
        or any(a.template_hash not in hashes for a in status.approved_revisions)
    )
