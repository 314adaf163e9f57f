"""Rolling a real StatefulSet back through its ControllerRevisions: exactly once, never over
someone else's edit, and a pause that holds its rolling update (kube-controller-manager runs
the StatefulSet; kwok makes its Pods ready)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from devenv.testing import stateful_set_manifest
from rollguard.api.base import TargetRef
from rollguard.core.revisions import current_revision, history
from rollguard.core.rollout import rollout_complete
from rollguard.kube.client import Cluster
from rollguard.kube.rollback import pause, rollback
from rollguard.kube.targets import HOLD_PARTITION, LiveReads

pytestmark = pytest.mark.integration
MODEL = TargetRef(api_version="apps/v1", kind="StatefulSet", name="model")


def _set_profile(apps: client.AppsV1Api, namespace: str, profile: str) -> None:
    container = {"name": "model", "env": [{"name": "SIM_PROFILE", "value": profile}]}
    apps.patch_namespaced_stateful_set(
        "model", namespace, {"spec": {"template": {"spec": {"containers": [container]}}}}
    )


def _read(cluster: Cluster, namespace: str) -> tuple[dict[str, Any], int | None, list[Any]]:
    reads = LiveReads(cluster)
    live = dict(reads.workload(MODEL, namespace=namespace))
    records = history(reads.history(MODEL, namespace=namespace, workload=live))
    return live, current_revision(live, "StatefulSet", records), records


def _wait_settled(cluster: Cluster, namespace: str, revision: int) -> list[Any]:
    """Until the StatefulSet serves ``revision`` on every replica; its history then."""
    deadline = time.monotonic() + 60
    live: dict[str, Any] = {}
    while time.monotonic() < deadline:
        live, current, records = _read(cluster, namespace)
        if current == revision and rollout_complete(live, "StatefulSet"):
            return records
        time.sleep(0.3)
    raise AssertionError(f"revision {revision} never settled: {live.get('status')}")


@pytest.fixture
def two_revisions(api_client: client.ApiClient, namespace: str) -> tuple[Cluster, str, str]:
    """A StatefulSet at revision 2 (errors) whose revision 1 (healthy) is the target."""
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_stateful_set(namespace, stateful_set_manifest("model"))
    cluster = Cluster(api_client)
    _wait_settled(cluster, namespace, 1)
    _set_profile(apps, namespace, "errors")
    records = _wait_settled(cluster, namespace, 2)
    return cluster, namespace, next(r.template_hash for r in records if r.revision == 1)


def _env(live: dict[str, Any]) -> list[dict[str, str]]:
    return list(live["spec"]["template"]["spec"]["containers"][0]["env"])


def test_rollback_restores_the_revision_once_and_the_statefulset_rolls_to_it(
    two_revisions: tuple[Cluster, str, str],
) -> None:
    cluster, namespace, target = two_revisions
    first = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=target
    )
    assert first.verdict == "Patched", first.message
    assert first.message.startswith(f"Patched StatefulSet {namespace}/model from revision 2")
    # Like `kubectl rollout undo statefulset`, the target's ControllerRevision becomes the
    # newest revision (3), and every replica runs it.
    records = _wait_settled(cluster, namespace, 3)
    assert records[0].template_hash == target
    live, _, _ = _read(cluster, namespace)
    assert _env(live) == [{"name": "SIM_PROFILE", "value": "healthy"}]

    again = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=target
    )
    assert again.verdict == "AlreadyDone", again.message
    assert _read(cluster, namespace)[0]["metadata"]["generation"] == live["metadata"]["generation"]


def test_rollback_leaves_a_statefulset_alone_when_someone_moved_it_on(
    two_revisions: tuple[Cluster, str, str], api_client: client.ApiClient
) -> None:
    cluster, namespace, target = two_revisions
    _set_profile(client.AppsV1Api(api_client), namespace, "latency")  # a human's edit
    _wait_settled(cluster, namespace, 3)
    result = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=target
    )
    assert result.verdict == "Conflict", result.message
    assert _env(_read(cluster, namespace)[0])[0]["value"] == "latency"


def test_pause_holds_the_rolling_update_and_a_rollback_lifts_it(
    two_revisions: tuple[Cluster, str, str],
) -> None:
    cluster, namespace, target = two_revisions
    paused = pause(cluster=cluster, namespace=namespace, target=MODEL, from_revision=2)
    assert paused.verdict == "Patched", paused.message
    live, _, _ = _read(cluster, namespace)
    assert live["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == HOLD_PARTITION
    again = pause(cluster=cluster, namespace=namespace, target=MODEL, from_revision=2)
    assert again.verdict == "AlreadyDone"

    back = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=target
    )
    assert back.verdict == "Patched", back.message
    assert "lifted the partition" in back.message
    _wait_settled(cluster, namespace, 3)
    live, _, _ = _read(cluster, namespace)
    # The partition it had before the pause: the API server's default, 0.
    assert live["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 0
    assert "rollguard.dev/paused-partition" not in (live["metadata"].get("annotations") or {})
