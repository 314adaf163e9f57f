"""deploy/ applied to the real API server the way a platform team would: server-side dry run
and for real, the operator's pods admitted under Pod Security `restricted` and Available (on
kwok's fake nodes), the metrics Service with both replicas behind it, and the monitoring
overlay rendered by kustomize."""

from __future__ import annotations

import json

import pytest
import yaml
from operator_fixtures import wait_for

from devenv.launcher import REPO
from devenv.testing import Kubectl, apply_deploy

pytestmark = pytest.mark.integration


def test_deploy_applies_and_the_operator_deployment_becomes_available(kubectl: Kubectl) -> None:
    apply_deploy(kubectl, REPO)
    dry = kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-k",
        str(REPO / "deploy"),
    )
    assert "deployment.apps/rollguard serverside-applied (server dry run)" in dry.stdout
    assert "PodSecurity" not in dry.stderr, dry.stderr

    def available() -> dict[str, object] | None:
        out = kubectl(
            "-n", "rollguard-system", "get", "deployment", "rollguard", "-o", "json"
        ).stdout
        status = json.loads(out).get("status") or {}
        return status if status.get("availableReplicas") == 2 else None

    wait_for("2 available operator replicas", available, timeout=120)
    namespace = json.loads(kubectl("get", "namespace", "rollguard-system", "-o", "json").stdout)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

    def endpoints() -> int:
        out = kubectl(
            "-n", "rollguard-system", "get", "endpointslices",
            "-l", "kubernetes.io/service-name=rollguard-metrics", "-o", "json",
        ).stdout  # fmt: skip
        return sum(len(s.get("endpoints") or []) for s in json.loads(out)["items"])

    wait_for("both replicas behind rollguard-metrics", lambda: endpoints() == 2, timeout=60)


def test_a_pod_breaking_the_restricted_profile_is_refused_in_the_operator_namespace(
    kubectl: Kubectl,
) -> None:
    """The namespace label is enforced, so the hardening the Deployment passes is checked."""
    apply_deploy(kubectl, REPO)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unhardened", "namespace": "rollguard-system"},
        "spec": {
            "containers": [{"name": "c", "image": "x"}]  # no hardening at all
        },
    }
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode != 0 and "violates PodSecurity" in result.stderr


def test_monitoring_overlay_renders(kubectl: Kubectl) -> None:
    rendered = kubectl("kustomize", str(REPO / "deploy" / "monitoring")).stdout
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered) if d}
    assert {
        ("ServiceMonitor", "rollguard"),
        ("PrometheusRule", "rollguard"),
        ("ConfigMap", "rollguard-dashboard"),
    } <= kinds
