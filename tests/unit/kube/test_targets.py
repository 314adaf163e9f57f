"""What each kind of target patches: a Rollout's canary aborted or its template replaced, a
StatefulSet paused by a partition that a rollback lifts again, a Rollout without a template
of its own refused; always behind the generation test."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from rollguard.api.base import TargetRef
from rollguard.kube.rollback import pause, rollback
from rollguard.kube.targets import HOLD_PARTITION, target_of

ROLLOUT = TargetRef(api_version="argoproj.io/v1alpha1", kind="Rollout", name="model")
STS = TargetRef(api_version="apps/v1", kind="StatefulSet", name="model")


def _template(profile: str, hash_label: str | None = None) -> dict[str, Any]:
    labels = {"app": "model"} | ({hash_label: profile} if hash_label else {})
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "model", "image": f"m:{profile}"}]},
    }


class _Cluster:
    """Objects by plural; every JSON Patch recorded with the status flag it came with."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.patches: list[tuple[str, bool, list[dict[str, Any]]]] = []

    def read_object(
        self, group: str, version: str, plural: str, *, namespace: str, name: str
    ) -> dict[str, Any]:
        return copy.deepcopy(next(o for o in self.objects[plural] if o["metadata"]["name"] == name))

    def list_of(
        self, group: str, version: str, plural: str, *, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        assert label_selector == "app=model"
        return copy.deepcopy(self.objects[plural])

    def json_patch(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str,
        name: str,
        generation: int,
        operations: Sequence[Mapping[str, Any]],
        status: bool = False,
    ) -> None:
        assert generation == 7
        self.patches.append((plural, status, [dict(op) for op in operations]))


OWNED = [{"uid": "u-1", "controller": True}]


def _rollback(cluster: _Cluster, target: TargetRef, from_revision: int, to: str) -> Any:
    return rollback(
        cluster=cluster,  # type: ignore[arg-type]
        namespace="ml",
        target=target,
        from_revision=from_revision,
        to_template_hash=to,
    )


def _rollout_world(**status: Any) -> _Cluster:
    def rs(hash_: str, revision: int) -> dict[str, Any]:
        return {
            "metadata": {
                "name": f"model-{hash_}",
                "annotations": {"rollout.argoproj.io/revision": str(revision)},
                "labels": {"rollouts-pod-template-hash": hash_},
                "ownerReferences": OWNED,
            },
            "spec": {"template": _template(hash_, "rollouts-pod-template-hash")},
        }

    rollout = {
        "metadata": {
            "name": "model",
            "uid": "u-1",
            "generation": 7,
            "annotations": {"rollout.argoproj.io/revision": "3"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "model"}},
            "template": _template("bad"),
        },
        "status": {"observedGeneration": "7", **status},
    }
    return _Cluster({"rollouts": [rollout], "replicasets": [rs("good", 2), rs("bad", 3)]})


def test_a_canary_judged_bad_is_aborted_when_stable_is_the_target() -> None:
    cluster = _rollout_world(stableRS="good", currentPodHash="bad", phase="Paused")
    result = _rollback(cluster, ROLLOUT, 3, "good")
    assert result.verdict == "Patched", result.message
    assert result.message.startswith("Aborted the update of Rollout ml/model at revision 3")
    # Only if the update is still the one judged: a promotion moves the status alone.
    assert cluster.patches == [
        (
            "rollouts",
            True,
            [
                {"op": "test", "path": "/status/stableRS", "value": "good"},
                {"op": "test", "path": "/status/currentPodHash", "value": "bad"},
                {"op": "add", "path": "/status/abort", "value": True},
            ],
        )
    ]


def test_a_paused_canary_is_aborted_and_resumed_so_that_argo_scales_it_down() -> None:
    cluster = _rollout_world(stableRS="good", currentPodHash="bad", phase="Paused")
    cluster.objects["rollouts"][0]["spec"]["paused"] = True
    result = _rollback(cluster, ROLLOUT, 3, "good")
    assert result.verdict == "Patched" and "resumed it" in result.message, result.message
    assert [(status, ops[-1]) for _, status, ops in cluster.patches] == [
        (True, {"op": "add", "path": "/status/abort", "value": True}),
        (False, {"op": "replace", "path": "/spec/paused", "value": False}),
    ]


def test_an_aborted_canary_is_already_done() -> None:
    cluster = _rollout_world(stableRS="good", currentPodHash="bad", abort=True)
    # From revision 2: what an aborted Rollout serves, its stable revision.
    result = _rollback(cluster, ROLLOUT, 2, "good")
    assert result.verdict == "AlreadyDone", result.message
    assert cluster.patches == []


def test_a_promoted_bad_revision_gets_the_stable_template_back() -> None:
    cluster = _rollout_world(stableRS="bad", currentPodHash="bad", phase="Healthy")
    result = _rollback(cluster, ROLLOUT, 3, "good")
    assert result.verdict == "Patched", result.message
    [(plural, status, operations)] = cluster.patches
    assert (plural, status) == ("rollouts", False)
    assert operations == [{"op": "replace", "path": "/spec/template", "value": _template("good")}]


def test_a_rollout_with_a_workload_ref_is_refused_with_the_reason() -> None:
    why = target_of("Rollout").unsupported(
        {"spec": {"workloadRef": {"kind": "Deployment", "name": "web"}}}
    )
    assert why is not None and "spec.workloadRef" in why and "Deployment web" in why
    assert target_of("Rollout").unsupported({"spec": {"template": {}}}) is None


def _sts_world(strategy: dict[str, Any], annotations: dict[str, str] | None = None) -> _Cluster:
    def cr(hash_: str, revision: int) -> dict[str, Any]:
        return {
            "metadata": {
                "name": f"model-{hash_}",
                "labels": {"controller.kubernetes.io/hash": hash_},
                "ownerReferences": OWNED,
            },
            "data": {"spec": {"template": {**_template(hash_), "$patch": "replace"}}},
            "revision": revision,
        }

    sts = {
        "metadata": {"name": "model", "uid": "u-1", "generation": 7}
        | ({"annotations": annotations} if annotations is not None else {}),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "model"}},
            "template": _template("bad"),
            "updateStrategy": strategy,
        },
        "status": {"observedGeneration": 7, "updateRevision": "model-bad"},
    }
    return _Cluster({"statefulsets": [sts], "controllerrevisions": [cr("good", 1), cr("bad", 2)]})


@pytest.mark.parametrize(
    ("strategy", "recorded"),
    [
        ({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}, "0"),
        ({"type": "RollingUpdate", "rollingUpdate": {"partition": 1, "maxUnavailable": 2}}, "1"),
        ({"type": "RollingUpdate"}, ""),
    ],
)
def test_a_statefulset_pauses_at_a_partition_of_every_replica_noting_the_one_it_had(
    strategy: dict[str, Any], recorded: str
) -> None:
    cluster = _sts_world(strategy)
    result = pause(cluster=cluster, namespace="ml", target=STS, from_revision=2)  # type: ignore[arg-type]
    assert result.verdict == "Patched", result.message
    [(_, _, operations)] = cluster.patches
    assert operations[0] == {"op": "add", "path": "/metadata/annotations", "value": {}}
    assert operations[1]["value"] == recorded
    rolling = operations[2]["value"]["rollingUpdate"]
    assert rolling["partition"] == HOLD_PARTITION  # above every ordinal, a scale-up's too
    assert rolling.get("maxUnavailable") == strategy.get("rollingUpdate", {}).get("maxUnavailable")


def test_a_rollback_of_a_paused_statefulset_puts_its_partition_back() -> None:
    paused = {"type": "RollingUpdate", "rollingUpdate": {"partition": HOLD_PARTITION}}
    cluster = _sts_world(paused, {"rollguard.dev/paused-partition": "1"})
    assert (
        pause(cluster=cluster, namespace="ml", target=STS, from_revision=2).verdict == "AlreadyDone"
    )  # type: ignore[arg-type]
    result = _rollback(cluster, STS, 2, "good")
    assert result.verdict == "Patched", result.message
    [(_, _, operations)] = cluster.patches
    assert operations == [
        {"op": "replace", "path": "/spec/template", "value": _template("good")},
        {"op": "add", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": 1},
        {"op": "remove", "path": "/metadata/annotations/rollguard.dev~1paused-partition"},
    ]


def test_a_partition_a_person_lowered_is_no_pause_and_ondelete_is_refused() -> None:
    lowered = {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    cluster = _sts_world(lowered, {"rollguard.dev/paused-partition": ""})
    result = pause(cluster=cluster, namespace="ml", target=STS, from_revision=2)  # type: ignore[arg-type]
    assert result.verdict == "Patched", result.message
    [(_, _, operations)] = cluster.patches
    assert operations[0]["value"] == ""  # the partition it had before its own first pause
    why = target_of("StatefulSet").unsupported({"spec": {"updateStrategy": {"type": "OnDelete"}}})
    assert why is not None and "OnDelete" in why
