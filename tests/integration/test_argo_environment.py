"""The local environment's Argo Rollouts: the real controller (built from its Go module) with
its CRDs, and a canary that kwok's Pods carry to Healthy, to its pause step and back to stable
on an abort."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from kubernetes import client

from devenv.launcher import EnvInfo, Environment
from devenv.testing import poll

pytestmark = pytest.mark.integration

ROLLOUTS = ("argoproj.io", "v1alpha1")
CRDS = (
    "rollouts.argoproj.io",
    "analysisruns.argoproj.io",
    "analysistemplates.argoproj.io",
    "clusteranalysistemplates.argoproj.io",
    "experiments.argoproj.io",
)
WAIT = 60.0
HASH = "rollouts-pod-template-hash"


@pytest.fixture
def argo(env: EnvInfo, local_environment: Environment | None) -> EnvInfo:
    """The environment, with its Argo Rollouts controller running."""
    if local_environment is None:
        pytest.skip("needs the session's own environment, which starts Argo Rollouts")
    if not env.argo_rollouts_healthz_url:
        pytest.fail(
            "the environment started without Argo Rollouts: it is not built "
            "(tools/controlplane/build.sh builds it along with the control plane)",
            pytrace=False,
        )
    return env


def _rollout(name: str, *, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "/".join(ROLLOUTS),
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        },
    }


class Rollouts:
    """One namespace's Rollouts and the Pods of their ReplicaSets."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.ns = namespace

    def create(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(*ROLLOUTS, self.ns, "rollouts", body)

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            *ROLLOUTS, self.ns, "rollouts", name
        )
        return obj

    def patch(self, name: str, body: dict[str, Any], *, status: bool = False) -> None:
        if status:
            self.custom.patch_namespaced_custom_object_status(
                *ROLLOUTS, self.ns, "rollouts", name, body
            )
        else:
            self.custom.patch_namespaced_custom_object(*ROLLOUTS, self.ns, "rollouts", name, body)

    def in_phase(self, name: str, phase: str) -> dict[str, Any] | None:
        """The Rollout once the controller has seen its latest spec and put it in ``phase``."""
        obj = self.get(name)
        status = obj.get("status", {})
        seen = str(status.get("observedGeneration")) == str(obj["metadata"]["generation"])
        return obj if seen and status.get("phase") == phase else None

    def ready_pods(self, pod_hash: str) -> int:
        pods = self.core.list_namespaced_pod(self.ns, label_selector=f"{HASH}={pod_hash}").items
        return len(
            [
                p
                for p in pods
                if p.metadata.deletion_timestamp is None
                and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            ]
        )

    def replicas_of(self, pod_hash: str) -> int:
        sets = self.apps.list_namespaced_replica_set(
            self.ns, label_selector=f"{HASH}={pod_hash}"
        ).items
        return sum(rs.spec.replicas or 0 for rs in sets)


@pytest.fixture
def rollouts(argo: EnvInfo, api_client: client.ApiClient, namespace: str) -> Rollouts:
    return Rollouts(api_client, namespace)


def test_argo_rollouts_crds_are_established_and_the_controller_is_running(
    argo: EnvInfo, api_client: client.ApiClient
) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    for name in CRDS:
        crd = extensions.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in crd.status.conditions or []}
        assert conditions.get("Established") == "True", (name, conditions)

    with urllib.request.urlopen(f"{argo.argo_rollouts_healthz_url}/healthz", timeout=5) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"{argo.argo_rollouts_metrics_url}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    # The release the cache was built from, as its ldflags stamped it.
    assert 'argo_rollouts_controller_info{version="v1.10.0' in metrics


def test_canary_rollout_becomes_healthy_pauses_at_its_step_and_aborts_to_stable(
    rollouts: Rollouts,
) -> None:
    rollouts.create(_rollout("web", image="registry.local/web:v1"))
    healthy = poll(
        "Rollout web Healthy",
        lambda: rollouts.in_phase("web", "Healthy"),
        timeout=WAIT,
        every=0.5,
    )["status"]
    stable = healthy["stableRS"]
    assert healthy["currentPodHash"] == stable
    assert healthy["availableReplicas"] == 2
    assert rollouts.ready_pods(stable) == 2

    # A new template starts the canary: 50% of the Pods, then an indefinite pause.
    rollouts.patch(
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.local/web:v2"}]}}}},
    )  # fmt: skip
    paused = poll(
        "Rollout web Paused at its pause step",
        lambda: (
            (obj := rollouts.in_phase("web", "Paused"))
            and obj["status"].get("pauseConditions")
            and obj["status"].get("currentStepIndex") == 1
            and obj
        ),
        timeout=WAIT,
        every=0.5,
    )["status"]
    canary = paused["currentPodHash"]
    assert canary != stable
    assert paused["stableRS"] == stable
    assert [c["reason"] for c in paused["pauseConditions"]] == ["CanaryPauseStep"]
    poll(
        "one canary Pod Ready",
        lambda: rollouts.ready_pods(canary) == 1,
        timeout=WAIT,
        every=0.5,
    )

    # What `kubectl argo rollouts abort` does: set status.abort through the status subresource.
    rollouts.patch("web", {"status": {"abort": True}}, status=True)
    aborted = poll(
        "Rollout web Degraded after the abort, stable at full size",
        lambda: (
            (obj := rollouts.in_phase("web", "Degraded"))
            and obj["status"].get("availableReplicas") == 2
            and rollouts.replicas_of(canary) == 0
            and rollouts.ready_pods(stable) == 2
            and obj
        ),
        timeout=WAIT,
        every=0.5,
    )["status"]
    assert aborted["abort"] is True
    assert aborted["stableRS"] == stable
    assert "RolloutAborted" in aborted.get("message", "")
