"""The watch caches an evaluation cycle reads from: what they keep, the live read on a miss,
and the heap freeze that keeps full collections of a settled operator short."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollguard.api.base import TargetRef
from rollguard.control.members import Member, read_member
from rollguard.core.revisions import RevisionRecord
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

    def replica_sets(self, *, namespace: str, deployment: dict[str, Any]) -> list[RevisionRecord]:
        self.reads.append(f"replicasets {namespace}/{deployment['metadata']['name']}")
        return []


def _reads(
    deployments: dict[tuple[str, str], list[dict[str, Any]]],
    replica_sets: dict[tuple[str, str], list[RevisionRecord]],
) -> tuple[IndexedReads, _Cluster]:
    cluster = _Cluster()
    return IndexedReads(cluster, deployments, replica_sets), cluster  # type: ignore[arg-type]


def test_hits_read_nothing_from_the_api_server() -> None:
    record = RevisionRecord.from_object(_rs("a", "1", OWNER))
    assert record is not None
    slim = slim_deployment(DEPLOYMENT)
    reads, cluster = _reads({("ml", "fraud"): [slim]}, {("ml", "u-1"): [record]})
    found = reads.workload(TargetRef.deployment("fraud"), namespace="ml")
    assert found == slim
    assert reads.history(TargetRef.deployment("fraud"), namespace="ml", workload=found) == [record]
    assert cluster.reads == []


def test_misses_read_live_and_a_missing_deployment_is_the_api_servers_404() -> None:
    reads, cluster = _reads({}, {})
    found = reads.workload(TargetRef.deployment("fraud"), namespace="ml")
    assert reads.history(TargetRef.deployment("fraud"), namespace="ml", workload=found) == []
    with pytest.raises(ApiException) as err:
        reads.workload(TargetRef.deployment("gone"), namespace="ml")
    assert err.value.status == 404
    assert cluster.reads == ["deployment ml/fraud", "replicasets ml/fraud", "deployment ml/gone"]


def test_the_settled_heap_is_frozen_once_after_a_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "HEAP_SETTLE", 0.0)
    kept = [[n] for n in range(1000)]  # long-lived objects, tracked by the collector
    try:
        asyncio.run(runtime.freeze_settled_heap())
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()


class _Policy:
    namespace, name = "ml", "standard"

    def usable_from(self, namespace: str) -> bool:
        return True


def _record(name: str, revision: int) -> RevisionRecord:
    record = RevisionRecord.from_object(_rs(name, str(revision), OWNER))
    assert record is not None
    return record


def _member_obj(approved: list[tuple[int, str]], current: int | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "approvedRevisions": [
            {"revision": r, "templateHash": h, "approvedAt": "2026-01-01T00:00:00Z",
             "source": "bake"}
            for r, h in approved
        ],
    }  # fmt: skip
    if current is not None:
        status["currentRevision"] = current
    return {
        "metadata": {"name": "fraud", "namespace": "ml", "uid": "m-1", "resourceVersion": "7"},
        "spec": {"deploymentRef": {"name": "fraud"}, "policyRef": {"name": "standard"}},
        "status": status,
    }


class _LiveHistory(_Cluster):
    """The API server's view: revision 2 current, revision 1 (h-a) still there."""

    def replica_sets(self, *, namespace: str, deployment: dict[str, Any]) -> list[RevisionRecord]:
        super().replica_sets(namespace=namespace, deployment=deployment)
        return [_record("a", 1), _record("b", 2)]


@pytest.mark.parametrize(
    ("cached", "obj", "why"),
    [
        ([_record("b", 2)], _member_obj([(1, "h-a")], 2), "an approved ReplicaSet is missing"),
        ([_record("a", 1)], _member_obj([(1, "h-a")], 1), "the current revision has none"),
        ([_record("a", 1), _record("b", 2)], _member_obj([], 3), "older than recorded"),
    ],
)
def test_a_cached_history_that_may_lag_is_read_again_from_the_api_server(
    cached: list[RevisionRecord], obj: dict[str, Any], why: str
) -> None:
    """After a peering pause the caches refill while the first cycles run: an approval is
    never dropped, and no target picked, on the word of a history the cache has not
    finished delivering."""
    live = _LiveHistory()
    reads = IndexedReads(  # type: ignore[arg-type]
        live, {("ml", "fraud"): [slim_deployment(DEPLOYMENT)]}, {("ml", "u-1"): cached}
    )
    member = read_member(live, reads, obj, _Policy())  # type: ignore[arg-type]
    assert isinstance(member, Member), why
    assert [r.template_hash for r in member.records] == ["h-a", "h-b"], why
    assert live.reads == ["deployment ml/fraud", "replicasets ml/fraud"], why


def test_a_cached_history_that_agrees_with_the_status_is_trusted() -> None:
    live = _LiveHistory()
    cached = [_record("a", 1), _record("b", 2)]
    reads = IndexedReads(  # type: ignore[arg-type]
        live, {("ml", "fraud"): [slim_deployment(DEPLOYMENT)]}, {("ml", "u-1"): cached}
    )
    obj = _member_obj([(1, "h-a")], 2)
    member = read_member(live, reads, obj, _Policy())  # type: ignore[arg-type]
    assert isinstance(member, Member) and member.records == cached
    assert live.reads == []
