"""Rolling a real Deployment back: exactly once, never over someone else's edit."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devenv.testing import deployment_manifest
from rollguard.api.base import TargetRef
from rollguard.core.revisions import history
from rollguard.kube.client import Cluster
from rollguard.kube.rollback import pause, rollback

pytestmark = pytest.mark.integration
SCORER = TargetRef.deployment("scorer")


def _set_profile(apps: client.AppsV1Api, namespace: str, name: str, profile: str) -> None:
    container = {"name": "model", "env": [{"name": "SIM_PROFILE", "value": profile}]}
    apps.patch_namespaced_deployment(
        name, namespace, {"spec": {"template": {"spec": {"containers": [container]}}}}
    )


def _wait_revision(cluster: Cluster, namespace: str, name: str, revision: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = cluster.deployment(namespace=namespace, name=name)
        records = cluster.replica_sets(namespace=namespace, deployment=live)
        annotations = live["metadata"].get("annotations") or {}
        if annotations.get("deployment.kubernetes.io/revision") == str(revision) and any(
            r.revision == revision for r in records
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"revision {revision} never appeared")


@pytest.fixture
def two_revisions(api_client: client.ApiClient, namespace: str) -> tuple[Cluster, str, str]:
    """A Deployment at revision 2 (errors) whose revision 1 (healthy) is the target."""
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment_manifest("scorer"))
    cluster = Cluster(api_client)
    _wait_revision(cluster, namespace, "scorer", 1)
    _set_profile(apps, namespace, "scorer", "errors")
    _wait_revision(cluster, namespace, "scorer", 2)
    live = cluster.deployment(namespace=namespace, name="scorer")
    healthy = next(
        r for r in cluster.replica_sets(namespace=namespace, deployment=live) if r.revision == 1
    )
    return cluster, namespace, healthy.template_hash


def test_rollback_patches_template_to_target_once_then_reports_already_done(
    two_revisions: tuple[Cluster, str, str],
) -> None:
    cluster, namespace, target = two_revisions
    first = rollback(
        cluster=cluster,
        namespace=namespace,
        target=SCORER,
        from_revision=2,
        to_template_hash=target,
    )
    assert first.verdict == "Patched", first.message
    live = cluster.deployment(namespace=namespace, name="scorer")
    env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "SIM_PROFILE", "value": "healthy"}]
    assert "pod-template-hash" not in live["spec"]["template"]["metadata"]["labels"]

    # Like `kubectl rollout undo`, the target's ReplicaSet becomes the newest revision (3).
    _wait_revision(cluster, namespace, "scorer", 3)
    records = history(cluster.replica_sets(namespace=namespace, deployment=live))
    assert records[0].template_hash == target

    again = rollback(
        cluster=cluster,
        namespace=namespace,
        target=SCORER,
        from_revision=2,
        to_template_hash=target,
    )
    assert again.verdict == "AlreadyDone"
    assert (
        cluster.deployment(namespace=namespace, name="scorer")["metadata"]["generation"]
        == live["metadata"]["generation"]
    )


def test_rollback_leaves_a_deployment_alone_when_someone_moved_it_on(
    two_revisions: tuple[Cluster, str, str], api_client: client.ApiClient
) -> None:
    cluster, namespace, target = two_revisions
    _set_profile(client.AppsV1Api(api_client), namespace, "scorer", "latency")  # a human's edit
    _wait_revision(cluster, namespace, "scorer", 3)
    result = rollback(
        cluster=cluster,
        namespace=namespace,
        target=SCORER,
        from_revision=2,
        to_template_hash=target,
    )
    assert result.verdict == "Conflict"
    live = cluster.deployment(namespace=namespace, name="scorer")
    assert live["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "latency"


def test_patch_with_a_stale_generation_is_refused_by_the_api_server(
    two_revisions: tuple[Cluster, str, str], api_client: client.ApiClient
) -> None:
    cluster, namespace, _ = two_revisions
    stale = cluster.deployment(namespace=namespace, name="scorer")["metadata"]["generation"]
    client.AppsV1Api(api_client).patch_namespaced_deployment(
        "scorer",
        namespace,
        {"spec": {"replicas": 3}},  # a human's edit
    )
    with pytest.raises(ApiException) as refused:
        cluster.patch_deployment(
            namespace=namespace,
            name="scorer",
            generation=stale,
            operations=[{"op": "add", "path": "/spec/paused", "value": True}],
        )
    assert refused.value.status in (409, 422)
    assert not cluster.deployment(namespace=namespace, name="scorer")["spec"].get("paused")


def test_pause_sets_spec_paused_once(two_revisions: tuple[Cluster, str, str]) -> None:
    cluster, namespace, _ = two_revisions
    assert (
        pause(cluster=cluster, namespace=namespace, target=SCORER, from_revision=2).verdict
        == "Patched"
    )
    assert cluster.deployment(namespace=namespace, name="scorer")["spec"]["paused"] is True
    assert (
        pause(cluster=cluster, namespace=namespace, target=SCORER, from_revision=2).verdict
        == "AlreadyDone"
    )


def test_rollback_to_a_pruned_revision_is_reported_not_attempted(
    two_revisions: tuple[Cluster, str, str],
) -> None:
    cluster, namespace, _ = two_revisions
    result = rollback(
        cluster=cluster,
        namespace=namespace,
        target=SCORER,
        from_revision=2,
        to_template_hash="nope",
    )
    assert result.verdict == "TargetMissing"
