"""Watch caches (Kopf indexes) of what evaluation cycles read every interval: Deployments and
their ReplicaSets. In the steady state a cycle reads nothing from the API server; a cache
miss (an object the watch has not delivered yet) falls back to a live read. StatefulSets and
Argo Rollouts are read live: the operator watches no kind it may not be able to list (Argo's
CRD may be absent), and few models are served from them.

Only what the cycle needs is kept: a Deployment's identity, revision, selector, replica
counts and status; a ReplicaSet as its revision record. Decisions never act on these copies:
the lifecycle reads the live Deployment before it patches it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kopf

from rollguard.api.base import TargetRef
from rollguard.control.telemetry import CACHE_READS
from rollguard.core.revisions import RevisionRecord
from rollguard.kube.client import Cluster
from rollguard.kube.targets import LiveReads


@kopf.index("apps", "v1", "deployments")  # type: ignore[arg-type]
def deployments_by_name(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace, name): slim_deployment(body)}


@kopf.index("apps", "v1", "replicasets")  # type: ignore[arg-type]
def replica_sets_by_owner(
    namespace: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], RevisionRecord]:
    owners = body.get("metadata", {}).get("ownerReferences") or []
    owner = next(
        (o.get("uid") for o in owners if o.get("controller") and o.get("kind") == "Deployment"),
        None,
    )
    record = RevisionRecord.from_object(copy.deepcopy(dict(body)))
    if owner is None or record is None:
        return {}
    return {(namespace, str(owner)): record}


def slim_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Deployment an evaluation cycle reads."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return {
        "metadata": {
            key: copy.deepcopy(meta[key])
            for key in ("name", "namespace", "uid", "generation", "resourceVersion", "annotations")
            if key in meta
        },
        "spec": {
            key: copy.deepcopy(spec[key])
            for key in ("replicas", "selector", "paused")
            if key in spec
        },
        "status": copy.deepcopy(dict(body.get("status") or {})),
    }


class IndexedReads:
    """The cycle's reads (``control.members.Reads``) from the watch caches, live on a miss
    and for the kinds not cached."""

    def __init__(
        self,
        cluster: Cluster,
        deployments: kopf.Index[tuple[str, str], dict[str, Any]],
        replica_sets: kopf.Index[tuple[str, str], RevisionRecord],
    ) -> None:
        self.cluster = cluster
        self.live = LiveReads(cluster)
        self.deployments = deployments
        self.replica_sets_index = replica_sets

    def workload(self, target: TargetRef, *, namespace: str) -> Mapping[str, Any]:
        if target.kind != "Deployment":
            return self.live.workload(target, namespace=namespace)
        found = list(self.deployments.get((namespace, target.name), []))
        if found:
            CACHE_READS.labels(kind="Deployment", result="hit").inc()
            return found[0]
        CACHE_READS.labels(kind="Deployment", result="miss").inc()
        return self.live.workload(target, namespace=namespace)

    def history(
        self, target: TargetRef, *, namespace: str, workload: Mapping[str, Any]
    ) -> list[RevisionRecord]:
        if target.kind != "Deployment":
            return self.live.history(target, namespace=namespace, workload=workload)
        uid = str(workload["metadata"]["uid"])
        found = list(self.replica_sets_index.get((namespace, uid), []))
        if found:
            CACHE_READS.labels(kind="ReplicaSet", result="hit").inc()
            return found
        CACHE_READS.labels(kind="ReplicaSet", result="miss").inc()
        return self.live.history(target, namespace=namespace, workload=workload)
