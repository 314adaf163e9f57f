"""What an evaluation cycle does when its watch caches are behind the API server, as after a
peering pause (Kopf's re-listing adds objects but never removes those deleted meanwhile):
decisions are created on the API server's word, recorded actions are never overwritten,
and deleted objects drop out instead of failing every cycle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollguard.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from rollguard.control.members import Member, confirmed_member
from rollguard.control.records import DecisionSummary, confirmed_history
from rollguard.control.writes import GoneError, mark_not_ready, write_status
from rollguard.core.revisions import RevisionRecord
from rollguard.handlers.policies import Ghosts

NOW = 1_800_000_000.0


def _md(version: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "fraud", "namespace": "ml", "uid": "m-1", "resourceVersion": version},
        "spec": {"deploymentRef": {"name": "fraud"}, "policyRef": {"name": "standard"}},
        "status": status,
    }


def _decision(name: str, phase: str, sequence: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"modelDeploymentRef": {"name": "fraud"}, "recommended": {"action": "Rollback"}},
        "status": {"phase": phase, "audit": {"sequence": sequence, "hash": f"sha256:{name}"}},
    }


class _Cluster:
    """The API server's view, with every request recorded."""

    def __init__(self, stored: dict[str, Any] | None, decisions: list[dict[str, Any]]) -> None:
        self.stored = stored
        self.decisions = decisions
        self.requests: list[tuple[str, Any]] = []
        self.written: dict[str, Any] | None = None

    def _stored(self) -> dict[str, Any]:
        if self.stored is None:
            raise ApiException(status=404, reason="Not Found")
        return self.stored

    def list_objects(self, kind: str, *, namespace: str, label_selector: str) -> list[Any]:
        self.requests.append(("list", (kind, namespace, label_selector)))
        return self.decisions

    def get(self, kind: str, *, namespace: str, name: str) -> dict[str, Any]:
        self.requests.append(("get", (kind, namespace, name)))
        return self._stored()

    def replace_status(
        self, kind: str, *, namespace: str, name: str, status: Any, resource_version: str = ""
    ) -> dict[str, Any]:
        self.requests.append(("replace_status", resource_version))
        stored = self._stored()
        if resource_version and resource_version != stored["metadata"]["resourceVersion"]:
            raise ApiException(status=422, reason="resourceVersion test failed")
        self.written = status
        return stored


def test_a_decision_is_created_on_the_api_servers_list_and_chain_head() -> None:
    head = {"sequence": 4, "hash": "sha256:d4", "prunedThrough": 2, "prunedHash": "sha256:d2"}
    cluster = _Cluster(_md("9", audit=head), [_decision("d3", "Succeeded", 3)])
    known, audit = confirmed_history(cluster, _md("5"))  # type: ignore[arg-type]
    assert [(d.name, d.sequence, d.final) for d in known] == [("d3", 3, True)]
    assert (audit.sequence, audit.hash, audit.pruned_through) == (4, "sha256:d4", 2)
    assert cluster.requests == [
        ("list", ("RollbackDecision", "ml", "rollguard.dev/model-deployment=fraud")),
        ("get", ("ModelDeployment", "ml", "fraud")),
    ]


def _member(obj: dict[str, Any]) -> Member:
    return Member(
        obj=obj,
        spec=ModelDeploymentSpec.model_validate(obj["spec"]),
        status=ModelDeploymentStatus.model_validate(obj["status"]),
        deployment={},
        records=[],
        current=3,
    )


def test_actions_recorded_since_a_stale_read_survive_the_status_write() -> None:
    """The cycle read the ModelDeployment before the other replica's rollback at NOW - 60; its
    write is refused, re-read and merged, and the action stays for cooldown and budget."""
    stale = _md("5", guard={"actionTimes": [NOW - 3600]})
    cluster = _Cluster(_md("9", guard={"actionTimes": [NOW - 3600, NOW - 60]}), [])
    computed = ModelDeploymentStatus.model_validate(
        {"phase": "Healthy", "guard": {"actionTimes": [NOW - 3600]}}
    )
    assert write_status(cluster, _member(stale), computed, owns_escalation=False) == "Healthy"  # type: ignore[arg-type]
    assert cluster.written is not None
    assert cluster.written["guard"]["actionTimes"] == [NOW - 3600, NOW - 60]
    assert [r[0] for r in cluster.requests] == ["replace_status", "get", "replace_status"]


def test_a_current_read_is_written_as_computed() -> None:
    obj = _md("9", guard={"actionTimes": [NOW - 3600, NOW - 60]})
    cluster = _Cluster(obj, [])
    computed = ModelDeploymentStatus.model_validate(
        {"phase": "Healthy", "guard": {"actionTimes": [NOW - 60]}}
    )
    write_status(cluster, _member(obj), computed, owns_escalation=False)  # type: ignore[arg-type]
    assert cluster.written is not None
    assert cluster.written["guard"]["actionTimes"] == [NOW - 60]  # the engine's own pruning


def test_a_deleted_model_deployment_is_gone_not_an_error() -> None:
    cluster = _Cluster(None, [])
    with pytest.raises(GoneError):
        write_status(
            cluster,  # type: ignore[arg-type]
            _member(_md("5")),
            ModelDeploymentStatus.model_validate({"phase": "Healthy"}),
            owns_escalation=False,
        )
    # Marking it not ready (policy missing or invalid) has nothing left to say it on: the
    # write is tried once, answered 404, and that ends it.
    cluster.requests.clear()
    mark_not_ready(
        cluster,  # type: ignore[arg-type]
        _md("5"),
        reason="PolicyNotFound",
        message="RollbackPolicy ml/standard does not exist",
        now=datetime.fromtimestamp(NOW, tz=UTC),
    )
    assert cluster.requests == [("replace_status", "")]
    assert cluster.written is None


def test_ghosts_are_left_out_by_exact_version_only() -> None:
    ghosts = Ghosts()
    old, recreated = _md("5"), _md("12")
    ghosts.model_deployment_gone(old)
    assert ghosts.live_model_deployments([old, recreated]) == [recreated]
    open_ghost = DecisionSummary.of(_decision("d7", "PendingApproval", 7))
    later = DecisionSummary.of(_decision("d7", "Executing", 7))
    ghosts.decision_gone(open_ghost)
    assert ghosts.live_decisions([open_ghost, later]) == [later]


class _Live:
    """The Deployment at revision 4 (the cache still says 3), or deleted."""

    def __init__(self, exists: bool) -> None:
        self.exists = exists

    def deployment(self, *, namespace: str, name: str) -> dict[str, Any]:
        if not self.exists:
            raise ApiException(status=404, reason="Not Found")
        annotations = {"deployment.kubernetes.io/revision": "4"}
        return {"metadata": {"name": name, "namespace": namespace, "annotations": annotations}}

    def replica_sets(self, *, namespace: str, deployment: Any) -> list[RevisionRecord]:
        return [
            RevisionRecord(name=f"rs-{r}", revision=r, template_hash=f"h{r}", image=None,
                             template={})
            for r in (4, 3)
        ]  # fmt: skip


def test_a_decision_about_to_be_made_reads_the_deployment_and_its_history_live() -> None:
    cached = _member(_md("5"))
    live = confirmed_member(_Live(exists=True), cached)  # type: ignore[arg-type]
    assert (cached.current, live.current) == (3, 4)
    assert [r.revision for r in live.records] == [4, 3]
    assert live.obj is cached.obj and live.status is cached.status
    # Deleted meanwhile: decided as cached; the execution finds and records the 404.
    assert confirmed_member(_Live(exists=False), cached) is cached  # type: ignore[arg-type]
