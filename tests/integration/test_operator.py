"""The operator end to end on the real control plane and Prometheus, run with the
ServiceAccount and RBAC from deploy/. The workload simulator's profiles drive the metrics."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from operator_fixtures import OperatorProcess, start_operator, wait_for

from devenv.launcher import EnvInfo
from devenv.testing import Kubectl, deployment_manifest
from rollguard.cli import main as rollguard_main

pytestmark = pytest.mark.integration

GROUP, VERSION = "rollguard.dev", "v1alpha1"
ERROR_RATIO = (
    'sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment",code=~"5.."}[10s]))'
    ' / sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment"}[10s]))'
)
FAST_POLICY: dict[str, Any] = {
    "riskTier": "high",
    "evaluation": {"interval": "2s", "window": "20s", "minSamples": 5, "confidence": 0.9},
    "signals": [
        {
            "name": "error_rate",
            "query": ERROR_RATIO,
            "objective": {"max": 0.01},
            "margin": {"absolute": 0.005},
            "critical": 0.05,
        }
    ],
    "impact": {
        "categories": [{"name": "customerExperience", "weight": 1, "signals": {"error_rate": 1}}]
    },
    "triggers": [{"action": "Rollback", "minScore": 0.5, "sustainedFor": "4s"}],
    "clearBelow": 0.1,
    "safety": {"cooldown": "30s", "maxActionsPerWindow": {"count": 2, "window": "10m"}},
    "authorization": {
        "autoApprove": {
            "maxScore": 1.0,
            "actions": ["Rollback", "Pause", "Hold"],
            "maxRevisionsBack": 3,
        },
        "approvalTimeout": "60s",
    },
    "validation": {"rolloutTimeout": "60s", "window": "8s"},
}


@pytest.fixture(scope="module")
def operator(
    env: EnvInfo, kubectl: Kubectl, crds_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = start_operator(env, kubectl, tmp_path_factory.mktemp("operator"))
    try:
        yield proc
    finally:
        proc.stop()


class Scenario:
    """One model service under a policy in a fresh namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)

    def create(self, kind_plural: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, kind_plural, body)

    def get(self, kind_plural: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, kind_plural, name
        )
        return obj

    def decisions(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, "rollbackdecisions"
        )["items"]
        return items

    def setup(
        self,
        *,
        policy: dict[str, Any] | None = None,
        profile: str = "healthy",
        mdep_extra: dict[str, Any] | None = None,
    ) -> None:
        self.apps.create_namespaced_deployment(
            self.ns, deployment_manifest("fraud", profile=profile, replicas=2)
        )
        wait_for(
            "revision 1",
            lambda: (
                (
                    self.apps.read_namespaced_deployment("fraud", self.ns).metadata.annotations
                    or {}
                ).get("deployment.kubernetes.io/revision")
                == "1"
            ),
        )
        spec = copy.deepcopy(policy or FAST_POLICY)
        self.create(
            "rollbackpolicies",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "RollbackPolicy",
                "metadata": {"name": "fraud-policy"},
                "spec": spec,
            },
        )
        mdep = {
            "deploymentRef": {"name": "fraud"},
            "policyRef": {"name": "fraud-policy"},
            "model": {"name": "fraud-scorer", "version": "v1"},
            "approvedRevisions": [{"revision": 1}],
            **(mdep_extra or {}),
        }
        self.create(
            "modeldeployments",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelDeployment",
                "metadata": {"name": "fraud"},
                "spec": mdep,
            },
        )

    def events(self) -> list[dict[str, Any]]:
        # Raw JSON: the client's typed models refuse Events some controllers write.
        raw = client.EventsV1Api(self.api).list_namespaced_event(self.ns, _preload_content=False)
        items: list[dict[str, Any]] = json.loads(raw.data)["items"]
        return items

    def phase(self) -> str | None:
        return (self.get("modeldeployments", "fraud").get("status") or {}).get("phase")

    def set_profile(self, profile: str) -> None:
        container = {"name": "model", "env": [{"name": "SIM_PROFILE", "value": profile}]}
        self.apps.patch_namespaced_deployment(
            "fraud", self.ns, {"spec": {"template": {"spec": {"containers": [container]}}}}
        )

    def profile(self) -> str:
        d = self.apps.read_namespaced_deployment("fraud", self.ns)
        return str(d.spec.template.spec.containers[0].env[0].value)


@pytest.fixture
def scenario(api_client: client.ApiClient, namespace: str) -> Scenario:
    return Scenario(api_client, namespace)


def test_errors_revision_is_rolled_back_to_the_approved_revision_and_validated(
    operator: OperatorProcess,
    scenario: Scenario,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario.setup()
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    approved_template = scenario.apps.read_namespaced_deployment("fraud", scenario.ns).spec.template

    scenario.set_profile("errors")
    decision = wait_for("a decision", lambda: scenario.decisions(), timeout=60, operator=operator)[
        0
    ]
    spec = decision["spec"]
    assert spec["recommended"]["action"] == "Rollback"
    assert spec["recommended"]["fromRevision"] == 2
    assert spec["recommended"]["toRevision"] == 1
    assert spec["requiresApproval"] is False
    assert decision["metadata"]["labels"]["rollguard.dev/model-deployment"] == "fraud"

    name = decision["metadata"]["name"]
    final = wait_for(
        "the decision to succeed",
        lambda: (
            (d := scenario.get("rollbackdecisions", name)).get("status", {}).get("phase")
            in ("Succeeded", "Failed")
            and d
        ),
        timeout=120,
        operator=operator,
    )
    assert final["status"]["phase"] == "Succeeded", final["status"]
    assert final["status"]["validation"]["verdict"] == "Passed"
    assert final["status"]["execution"]["patched"] is True
    assert final["status"]["audit"]["hash"].startswith("sha256:")
    live = scenario.apps.read_namespaced_deployment("fraud", scenario.ns)
    assert client.ApiClient().sanitize_for_serialization(
        live.spec.template
    ) == client.ApiClient().sanitize_for_serialization(approved_template)
    assert scenario.profile() == "healthy"

    # The decision replays from the cluster to the same recommendation.
    path = tmp_path / "decision.yaml"
    import yaml

    path.write_text(yaml.safe_dump(final))
    assert rollguard_main(["replay", str(path)]) == 0
    assert "same recommendation" in capsys.readouterr().out

    reasons = {e["reason"] for e in scenario.events()}
    assert {
        "RollbackRecommended",
        "AutoApproved",
        "RollbackExecuted",
        "ValidationSucceeded",
    } <= reasons
    audit = [line for line in operator.audit_lines() if line.get("namespace") == scenario.ns]
    assert any(line["event"] == "DecisionFinal" for line in audit)
