"""StatefulSets and Argo Rollouts: their revisions, the revision they serve and where their
rollout stands, read from objects shaped as the API server and the controllers write them."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rollguard.core.revisions import (
    RevisionRecord,
    current_revision,
    history,
    rollback_template,
    serves,
)
from rollguard.core.rollout import rollout_aborted, rollout_complete, rollout_in_progress


def _controller_revision(name: str, revision: int, profile: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"model-{name}",
            "labels": {"app": "model", "controller.kubernetes.io/hash": name},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "data": {
            "spec": {
                "template": {
                    "$patch": "replace",
                    "metadata": {"labels": {"app": "model"}},
                    "spec": {"containers": [{"name": "model", "image": f"m:{profile}"}]},
                }
            }
        },
        "revision": revision,
    }


def _rollout_rs(hash_: str, revision: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"model-{hash_}",
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "labels": {"app": "model", "rollouts-pod-template-hash": hash_},
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "model", "rollouts-pod-template-hash": hash_}},
                "spec": {"containers": [{"name": "model", "image": f"m:{hash_}"}]},
            }
        },
    }


def test_a_controller_revision_is_a_revision_with_its_template_and_hash() -> None:
    record = RevisionRecord.from_object(_controller_revision("abc", 3, "v2"), "StatefulSet")
    assert record is not None
    assert (record.name, record.revision, record.template_hash, record.image) == (
        "model-abc",
        3,
        "abc",
        "m:v2",
    )
    assert "$patch" not in record.template  # the controller's merge directive is not template
    assert record.created is not None


def test_a_rollouts_replica_set_is_read_by_argos_annotation_and_label() -> None:
    record = RevisionRecord.from_object(_rollout_rs("h1", 4), "Rollout")
    assert record is not None and (record.revision, record.template_hash) == (4, "h1")
    # Not a Deployment's ReplicaSet: that one carries deployment.kubernetes.io/revision.
    assert RevisionRecord.from_object(_rollout_rs("h1", 4), "Deployment") is None
    labels = rollback_template(record)["metadata"]["labels"]
    assert labels == {"app": "model"}  # like `kubectl argo rollouts undo`


def _stateful_set(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "model", "generation": 2},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, **status},
    }


def test_a_statefulset_serves_its_update_revision() -> None:
    records = [
        r
        for o in (_controller_revision("a", 1, "v1"), _controller_revision("b", 2, "v2"))
        if (r := RevisionRecord.from_object(o, "StatefulSet")) is not None
    ]
    sts = _stateful_set(updateRevision="model-b", currentRevision="model-a")
    assert current_revision(sts, "StatefulSet", records) == 2
    assert current_revision(_stateful_set(), "StatefulSet", records) is None


def test_a_statefulset_rolls_until_one_revision_runs_every_replica_ready() -> None:
    settled = {"updateRevision": "model-b", "currentRevision": "model-b", "replicas": 2}
    rolling = _stateful_set(**{**settled, "currentRevision": "model-a", "updatedReplicas": 1})
    assert rollout_in_progress(rolling, "StatefulSet")
    assert not rollout_complete(rolling, "StatefulSet")
    not_ready = _stateful_set(**settled, updatedReplicas=2, readyReplicas=1)
    assert not rollout_in_progress(not_ready, "StatefulSet")
    assert not rollout_complete(not_ready, "StatefulSet")
    done = _stateful_set(**settled, updatedReplicas=2, readyReplicas=2)
    assert rollout_complete(done, "StatefulSet")
    unseen = {**done, "metadata": {"name": "model", "generation": 3}}
    assert rollout_in_progress(unseen, "StatefulSet") and not rollout_complete(
        unseen, "StatefulSet"
    )


def _rollout(revision: int, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "model",
            "generation": 5,
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
        },
        "spec": {"replicas": 2},
        "status": {"observedGeneration": "5", **status},  # Argo writes it as a string
    }


def test_a_rollout_serves_its_revision_and_an_aborted_one_its_stable_revision() -> None:
    records = history(
        r
        for o in (_rollout_rs("stable", 1), _rollout_rs("canary", 2))
        if (r := RevisionRecord.from_object(o, "Rollout")) is not None
    )
    canary = _rollout(2, stableRS="stable", currentPodHash="canary", phase="Paused")
    assert current_revision(canary, "Rollout", records) == 2
    aborted = _rollout(2, stableRS="stable", currentPodHash="canary", abort=True)
    assert rollout_aborted(aborted)
    assert current_revision(aborted, "Rollout", records) == 1
    assert serves(aborted, "Rollout", records, "stable")
    assert not serves(canary, "Rollout", records, "stable")


def test_a_rollout_is_in_progress_while_its_canary_differs_from_stable() -> None:
    healthy = _rollout(1, stableRS="s", currentPodHash="s", phase="Healthy")
    assert not rollout_in_progress(healthy, "Rollout") and rollout_complete(healthy, "Rollout")
    canary = _rollout(2, stableRS="s", currentPodHash="c", phase="Paused")
    assert rollout_in_progress(canary, "Rollout") and not rollout_complete(canary, "Rollout")
    stale = {**healthy, "status": {**healthy["status"], "observedGeneration": "4"}}
    assert rollout_in_progress(stale, "Rollout") and not rollout_complete(stale, "Rollout")


def test_an_aborted_rollout_is_complete_once_stable_alone_serves_every_replica() -> None:
    aborting = _rollout(
        2, stableRS="s", currentPodHash="c", abort=True, availableReplicas=2, updatedReplicas=1
    )
    assert not rollout_in_progress(aborting, "Rollout")
    assert not rollout_complete(aborting, "Rollout")
    aborted = _rollout(
        2, stableRS="s", currentPodHash="c", abort=True, availableReplicas=2, updatedReplicas=0
    )
    assert rollout_complete(aborted, "Rollout")


@given(
    replicas=st.integers(0, 5),
    updated=st.integers(0, 5),
    ready=st.integers(0, 5),
    same=st.booleans(),
    seen=st.booleans(),
)
def test_a_statefulset_is_never_both_rolling_and_complete(
    replicas: int, updated: int, ready: int, same: bool, seen: bool
) -> None:
    sts = {
        "metadata": {"generation": 2},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 2 if seen else 1,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "updateRevision": "b",
            "currentRevision": "b" if same else "a",
        },
    }
    assert not (rollout_in_progress(sts, "StatefulSet") and rollout_complete(sts, "StatefulSet"))


@given(
    stable=st.sampled_from(["s", "c"]),
    phase=st.sampled_from(["Healthy", "Paused", "Progressing", "Degraded"]),
    abort=st.booleans(),
    seen=st.booleans(),
    available=st.integers(0, 3),
    updated=st.integers(0, 3),
)
def test_a_rollout_is_never_both_rolling_and_complete(
    stable: str, phase: str, abort: bool, seen: bool, available: int, updated: int
) -> None:
    rollout = _rollout(
        2,
        stableRS=stable,
        currentPodHash="c",
        phase=phase,
        abort=abort,
        availableReplicas=available,
        updatedReplicas=updated,
    )
    if not seen:
        rollout["status"]["observedGeneration"] = "4"
    assert not (rollout_in_progress(rollout, "Rollout") and rollout_complete(rollout, "Rollout"))
