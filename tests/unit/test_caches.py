"""The watch caches an evaluation cycle reads from: what they keep, the live read on a miss,
and the heap freeze that keeps full collections of a settled operator short."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollguard.domain.revisions import ReplicaSetRecord
from rollguard.handlers import runtime
from rollguard.handlers.caches import (
    IndexedReads,
    replica_sets_by_owner,
    slim_deployment,
)

DEPLOYMENT: dict[str, Any] = {
    "metadata": {
        "name": "fraud", "namespace": "ml", "uid": "u-1", "generation": 3,
        "resourceVersion": "42", "annotations": {"deployment.kubernetes.io/revision": "2"},
        "managedFields": [{"manager": "kubectl"}], "labels": {"app": "fraud"},
    },
    "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "fraud"}},
        "template": {"spec": {"containers": [{"name": "model", "image": "m:v2"}]}},
    },
    "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2},
}  # fmt: skip


def _rs(name: str, revision: str | None, owner: dict[str, Any] | None) -> dict[str, Any]:
    annotations = {"deployment.kubernetes.io/revision": revision} if revision else {}
    return {
        "metadata": {
            "name": name, "namespace": "ml", "annotations": annotations,
            "labels": {"pod-template-hash": f"h-{name}"},
            "ownerReferences": [owner] if owner else [],
        },
        "spec": {"template": {"spec": {"containers": [{"image": f"m:{name}"}]}}},
    }  # fmt: skip


OWNER = {"kind": "Deployment", "uid": "u-1", "controller": True}


def test_a_deployment_is_kept_with_what_the_cycle_reads_only() -> None:
    slim = slim_deployment(DEPLOYMENT)
    assert slim["metadata"] == {
        k: DEPLOYMENT["metadata"][k]
        for k in ("name", "namespace", "uid", "generation", "resourceVersion", "annotations")
    }
    assert slim["spec"] == {"replicas": 2, "selector": {"matchLabels": {"app": "fraud"}}}
    assert slim["status"] == DEPLOYMENT["status"]
    slim["metadata"]["annotations"]["x"] = "y"  # a copy: the watch's object is not shared
    assert "x" not in DEPLOYMENT["metadata"]["annotations"]


def test_replica_sets_are_indexed_by_their_controlling_deployment() -> None:
    [(key, record)] = replica_sets_by_owner(namespace="ml", body=_rs("a", "1", OWNER)).items()
    assert key == ("ml", "u-1")
    assert (record.revision, record.template_hash, record.image) == (1, "h-a", "m:a")
    # No revision, no controlling Deployment: not indexed.
    assert replica_sets_by_owner(namespace="ml", body=_rs("b", None, OWNER)) == {}
    assert replica_sets_by_owner(namespace="ml", body=_rs("c", "2", None)) == {}
    not_controller = {**OWNER, "controller": False}
    assert replica_sets_by_owner(namespace="ml", body=_rs("d", "2", not_controller)) == {}


class _Cluster:
    """Live reads, counted."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def deployment(self, *, namespace: str, name: str) -> dict[str, Any]:
        self.reads.append(f"deployment {namespace}/{name}")
        if name == "gone":
            raise ApiException(status=404, reason="Not Found")
        return slim_deployment(DEPLOYMENT)

    def replica_sets(self, *, namespace: str, deployment: dict[str, Any]) -> list[ReplicaSetRecord]:
        self.reads.append(f"replicasets {namespace}/{deployment['metadata']['name']}")
        return []


def _reads(
    deployments: dict[tuple[str, str], list[dict[str, Any]]],
    replica_sets: dict[tuple[str, str], list[ReplicaSetRecord]],
) -> tuple[IndexedReads, _Cluster]:
    cluster = _Cluster()
    return IndexedReads(cluster, deployments, replica_sets), cluster  # type: ignore[arg-type]


def test_hits_read_nothing_from_the_api_server() -> None:
    record = ReplicaSetRecord.from_object(_rs("a", "1", OWNER))
    assert record is not None
    slim = slim_deployment(DEPLOYMENT)
    reads, cluster = _reads({("ml", "fraud"): [slim]}, {("ml", "u-1"): [record]})
    found = reads.deployment(namespace="ml", name="fraud")
    assert found == slim
    assert reads.replica_sets(namespace="ml", deployment=found) == [record]
    assert cluster.reads == []


def test_misses_read_live_and_a_missing_deployment_is_the_api_servers_404() -> None:
    reads, cluster = _reads({}, {})
    found = reads.deployment(namespace="ml", name="fraud")
    assert reads.replica_sets(namespace="ml", deployment=found) == []
    with pytest.raises(ApiException) as err:
        reads.deployment(namespace="ml", name="gone")
    assert err.value.status == 404
    assert cluster.reads == ["deployment ml/fraud", "replicasets ml/fraud", "deployment ml/gone"]


def test_the_settled_heap_is_frozen_once_after_a_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "HEAP_SETTLE", 0.0)
    kept = [[n] for n in range(1000)]  # long-lived objects, tracked by the collector
    try:
        asyncio.run(runtime._freeze_settled_heap())
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
