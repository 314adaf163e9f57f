"""Rolling a real Argo Rollout back (the Argo Rollouts controller runs it, kwok makes its Pods
ready): a bad canary in progress aborted, a promoted bad revision given the stable template
back, each once; a person's edit never overwritten; a pause that Argo honours."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from devenv.testing import rollout_manifest
from rollguard.api.base import TargetRef
from rollguard.core.revisions import current_revision, history
from rollguard.core.rollout import rollout_complete, rollout_in_progress
from rollguard.kube.client import Cluster
from rollguard.kube.rollback import pause, rollback
from rollguard.kube.targets import LiveReads

pytestmark = pytest.mark.integration
MODEL = TargetRef(api_version="argoproj.io/v1alpha1", kind="Rollout", name="model")
CANARY = [{"setWeight": 50}, {"pause": {}}]


def _read(cluster: Cluster, namespace: str) -> tuple[dict[str, Any], int | None, list[Any]]:
    reads = LiveReads(cluster)
    live = dict(reads.workload(MODEL, namespace=namespace))
    records = history(reads.history(MODEL, namespace=namespace, workload=live))
    return live, current_revision(live, "Rollout", records), records


def _wait(cluster: Cluster, namespace: str, what: str, done: Any) -> list[Any]:
    deadline = time.monotonic() + 60
    live: dict[str, Any] = {}
    while time.monotonic() < deadline:
        live, current, records = _read(cluster, namespace)
        if done(live, current):
            return records
        time.sleep(0.3)
    raise AssertionError(f"{what} never happened: {live.get('status')}")


def _set_profile(cluster: Cluster, namespace: str, profile: str) -> None:
    env = [{"name": "SIM_PROFILE", "value": profile}]
    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "rollouts",
        "model",
        [{"op": "replace", "path": "/spec/template/spec/containers/0/env", "value": env}],
        _content_type="application/json-patch+json",
    )


def _env(live: dict[str, Any]) -> str:
    return str(live["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"])


def _start(api_client: client.ApiClient, namespace: str, steps: list[Any]) -> tuple[Cluster, str]:
    """A Rollout at revision 2 (errors), its revision 1 (healthy) stable; the stable hash."""
    cluster = Cluster(api_client)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "rollouts", rollout_manifest("model", steps=steps)
    )
    records = _wait(
        cluster,
        namespace,
        "revision 1 Healthy",
        lambda live, current: current == 1 and rollout_complete(live, "Rollout"),
    )
    _set_profile(cluster, namespace, "errors")
    return cluster, records[0].template_hash


def test_a_bad_canary_in_progress_is_aborted_once(
    api_client: client.ApiClient, namespace: str
) -> None:
    cluster, stable = _start(api_client, namespace, CANARY)
    _wait(
        cluster,
        namespace,
        "the canary paused at 50%",
        lambda live, current: current == 2 and (live.get("status") or {}).get("phase") == "Paused",
    )
    live, _, _ = _read(cluster, namespace)
    assert rollout_in_progress(live, "Rollout")
    first = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=stable
    )
    assert first.verdict == "Patched", first.message
    assert first.message.startswith(f"Aborted the update of Rollout {namespace}/model")
    _wait(
        cluster,
        namespace,
        "stable alone serving",
        lambda live, current: current == 1 and rollout_complete(live, "Rollout"),
    )
    live, _, _ = _read(cluster, namespace)
    assert live["status"]["abort"] is True and _env(live) == "errors"  # Argo keeps the spec
    again = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=stable
    )
    assert again.verdict == "AlreadyDone", again.message


def test_a_promoted_bad_revision_gets_the_stable_template_back_once(
    api_client: client.ApiClient, namespace: str
) -> None:
    cluster, stable = _start(api_client, namespace, [])
    _wait(
        cluster,
        namespace,
        "revision 2 promoted",
        lambda live, current: current == 2 and rollout_complete(live, "Rollout"),
    )
    first = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=stable
    )
    assert first.verdict == "Patched", first.message
    # Like `kubectl argo rollouts undo`: revision 1's ReplicaSet becomes revision 3.
    records = _wait(
        cluster,
        namespace,
        "revision 3 Healthy",
        lambda live, current: current == 3 and rollout_complete(live, "Rollout"),
    )
    assert records[0].template_hash == stable
    live, _, _ = _read(cluster, namespace)
    assert _env(live) == "healthy"
    assert "rollouts-pod-template-hash" not in live["spec"]["template"]["metadata"]["labels"]
    again = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=stable
    )
    assert again.verdict == "AlreadyDone", again.message


def test_a_person_moving_the_rollout_on_is_never_overwritten(
    api_client: client.ApiClient, namespace: str
) -> None:
    cluster, stable = _start(api_client, namespace, [])
    _wait(cluster, namespace, "revision 2", lambda live, current: current == 2)
    _set_profile(cluster, namespace, "latency")  # a person's own fix
    _wait(cluster, namespace, "revision 3", lambda live, current: current == 3)
    result = rollback(
        cluster=cluster, namespace=namespace, target=MODEL, from_revision=2, to_template_hash=stable
    )
    assert result.verdict == "Conflict", result.message
    assert _env(_read(cluster, namespace)[0]) == "latency"


def test_a_canary_is_paused_as_argo_pauses_it(api_client: client.ApiClient, namespace: str) -> None:
    cluster, _ = _start(api_client, namespace, [{"setWeight": 50}, {"setWeight": 100}])
    _wait(cluster, namespace, "revision 2", lambda live, current: current == 2)
    paused = pause(cluster=cluster, namespace=namespace, target=MODEL, from_revision=2)
    assert paused.verdict == "Patched", paused.message
    _wait(
        cluster,
        namespace,
        "Argo to hold the rollout",
        lambda live, current: (live.get("status") or {}).get("message") == "manually paused",
    )
    again = pause(cluster=cluster, namespace=namespace, target=MODEL, from_revision=2)
    assert again.verdict == "AlreadyDone"
