"""The ModelDeployments a cycle evaluates, each with its workload and revision history.

Reads only: from the watch caches or the API server (``Reads``), and from the API server
alone where a cache may lag behind it. A ModelDeployment that cannot be evaluated comes back
as ``NotReady``, saying why; ``status`` writes that. Called by ``cycle``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pydantic import ValidationError

from rollguard.api.base import TargetRef
from rollguard.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from rollguard.control import reasons
from rollguard.control import telemetry as observe
from rollguard.control.policy_context import PolicyContext
from rollguard.core.revisions import RevisionRecord, current_revision
from rollguard.core.rollout import rollout_in_progress
from rollguard.files.loading import validation_summary
from rollguard.kube.client import ApiError, Cluster, api_message
from rollguard.kube.targets import LiveReads, target_of


class Reads(Protocol):
    """Where a cycle reads workloads and their revisions: the API (``LiveReads``) or the
    operator's watch caches. A missing workload raises the API's 404."""

    def workload(self, target: TargetRef, *, namespace: str) -> Mapping[str, Any]: ...

    def history(
        self, target: TargetRef, *, namespace: str, workload: Mapping[str, Any]
    ) -> list[RevisionRecord]: ...


@dataclass
class Member:
    """One bound ModelDeployment, with what was read about its workload (``deployment``: the
    object of whichever kind)."""

    obj: Mapping[str, Any]
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    deployment: Mapping[str, Any]
    records: list[RevisionRecord]
    current: int

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def rollout_in_progress(self) -> bool:
        return rollout_in_progress(self.deployment, self.spec.target.kind)


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
    target = spec.target
    ns = meta["namespace"]
    try:
        deployment = reads.workload(target, namespace=ns)
        records = reads.history(target, namespace=ns, workload=deployment)
    except ApiError as err:
        if err.status == 403:
            message = (
                f"the operator may not read {target.describe(ns)} or its revisions "
                f"({api_message(err)}): grant it the rights of deploy/rbac.yaml"
            )
            return NotReady(obj, status, reasons.TARGET_FORBIDDEN, message)
        if err.status != 404:
            raise
        return NotReady(obj, status, _not_found(target), _missing(target, ns))
    unsupported = target_of(target.kind).unsupported(deployment)
    if unsupported is not None:
        return NotReady(obj, status, reasons.TARGET_UNSUPPORTED, unsupported, invalid=True)
    current = current_revision(deployment, target.kind, records)
    cached = not isinstance(reads, LiveReads) and target.kind == "Deployment"
    if cached and cache_suspect(status, records, current):
        # A watch cache lags behind the API server for a while after a peering pause or a
        # burst of changes. What the cycle derives from the history (approvals dropped with
        # their ReplicaSet, the rollback target) is decided on the API server's word only.
        observe.CACHE_READS.labels(kind="ReplicaSet", result="recheck").inc()
        deployment, records, current = live_history(cluster, namespace=ns, target=target)
    if current is None:
        message = f"the {target.kind} has no revision yet"
        return NotReady(obj, status, _not_found(target), message)
    return Member(obj, spec, status, deployment, records, current)


def _missing(target: TargetRef, namespace: str) -> str:
    message = f"{target.describe(namespace)} does not exist"
    if target.kind == "Rollout":
        message += (
            " (if the cluster has no Rollouts at all, Argo Rollouts is not installed: the API "
            "server serves no rollouts.argoproj.io)"
        )
    return message


def _not_found(target: TargetRef) -> str:
    if target.kind == "Deployment":
        return reasons.DEPLOYMENT_NOT_FOUND
    return reasons.TARGET_NOT_FOUND


def live_history(
    cluster: Cluster, *, namespace: str, target: TargetRef
) -> tuple[Mapping[str, Any], list[RevisionRecord], int | None]:
    """The workload, its revision history and current revision, read from the API server."""
    reads = LiveReads(cluster)
    workload = reads.workload(target, namespace=namespace)
    records = reads.history(target, namespace=namespace, workload=workload)
    return workload, records, current_revision(workload, target.kind, records)


def confirmed_member(cluster: Cluster, m: Member) -> Member:
    """``m`` with its workload and revision history as the API server has them now."""
    try:
        deployment, records, current = live_history(
            cluster, namespace=m.namespace, target=m.spec.target
        )
    except ApiError as err:
        if err.status != 404:
            raise
        return m  # deleted meanwhile: the decision's execution finds and records that
    if current is None:
        return m
    return replace(m, deployment=deployment, records=records, current=current)


def cache_suspect(
    status: ModelDeploymentStatus, records: Sequence[RevisionRecord], current: int | None
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
