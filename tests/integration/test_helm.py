"""deploy/helm/rollguard on the real API server with the cached helm: it lints, its render
passes a server-side dry run, and a release installs (the operator Deployment Available on
kwok's fake nodes, its namespace under Pod Security `restricted`, the receivers Secret made
from values), upgrades (new replica count and setting applied, the pods restarted with the setting) and uninstalls (its objects
gone; its namespace and the CRDs kept, as the chart and Helm say).

The release lives in a namespace of its own and names its cluster-wide objects after itself,
so it leaves deploy/'s objects in rollguard-system, which other tests use, alone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_fixtures import wait_for

from devenv.launcher import REPO, EnvInfo, helm_binary
from devenv.testing import Kubectl

pytestmark = pytest.mark.integration

CHART = REPO / "deploy" / "helm" / "rollguard"
RELEASE, RELEASE_NAMESPACE = "rg-helm", "rollguard-helm"
RECEIVERS = {"receivers": [{"name": "audit", "webhook": {"url": "http://127.0.0.1:9/hook"}}]}

Helm = Callable[..., str]


@pytest.fixture
def helm(env: EnvInfo, tmp_path: Path) -> Helm:
    """Run the cached helm as the cluster's admin, with its own config and cache directories."""
    binary = helm_binary()
    assert binary.exists(), f"{binary} is missing: make setup builds it"
    homes = {
        f"HELM_{kind}_HOME": str(tmp_path / f"helm-{kind.lower()}")
        for kind in ("CACHE", "CONFIG", "DATA")
    }

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(binary), f"--kubeconfig={env.kubeconfig}", "--kube-context=admin", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **homes},
        )
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args[:2])} failed: {result.stderr}")
        return result.stdout

    return run


def test_chart_lints_and_its_render_passes_a_server_side_dry_run(
    helm: Helm, kubectl: Kubectl, namespace: str
) -> None:
    helm("lint", "--strict", str(CHART))
    rendered = helm(
        "template", "rg-dry", str(CHART), "--namespace", namespace, "--include-crds",
        "--set", "namespace.create=true", "--set-json", f"notifications.receivers={json.dumps(RECEIVERS)}",
    )  # fmt: skip
    dry = kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-",
        input=rendered,
    )  # fmt: skip
    assert "deployment.apps/rollguard serverside-applied (server dry run)" in dry.stdout
    assert "validatingadmissionpolicy.admissionregistration.k8s.io/rg-dry-approval-identity" in (
        dry.stdout
    )
    assert "PodSecurity" not in dry.stderr, dry.stderr


def _get(kubectl: Kubectl, *what: str) -> dict[str, Any] | None:
    """The object, or None when the API server says it is not there."""
    result = kubectl("get", *what, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def _available(kubectl: Kubectl, replicas: int) -> Callable[[], bool]:
    def probe() -> bool:
        deployment = _get(kubectl, "-n", RELEASE_NAMESPACE, "deployment", "rollguard") or {}
        spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
        return bool(
            spec.get("replicas") == replicas
            and status.get("availableReplicas") == replicas
            and status.get("updatedReplicas") == replicas
        )

    return probe


def _pod_template_annotations(kubectl: Kubectl) -> dict[str, str]:
    deployment = _get(kubectl, "-n", RELEASE_NAMESPACE, "deployment", "rollguard")
    assert deployment is not None
    annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
    return annotations


@pytest.fixture
def release(helm: Helm, kubectl: Kubectl) -> Iterator[None]:
    """Whatever the test leaves of the release is removed afterwards."""
    yield
    if RELEASE in helm("list", "-n", RELEASE_NAMESPACE, "-q"):
        helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", "--timeout=60s")
    kubectl("delete", "namespace", RELEASE_NAMESPACE, "--ignore-not-found", "--wait=false")


def test_helm_install_upgrade_and_uninstall(
    helm: Helm, kubectl: Kubectl, crds_installed: None, release: None
) -> None:
    """The CRDs are there already, applied server-side from crds/ by kubectl: Helm applies its
    copies over them, taking the fields the API server defaults inside ``spec.versions`` (an
    atomic list, so a second field manager always conflicts there) with ``--force-conflicts``,
    as the Helm page says."""
    # The approval policy stays out of the installed release: it would admit decisions from
    # this release's operator only, and the session's operator creates decisions meanwhile.
    # (The dry run above admits it.)
    helm(
        "install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        "--set", "namespace.create=true", "--set", "approvalPolicy.enabled=false",
        "--set", "restartOnConfigChange=true",
        "--set-json", f"notifications.receivers={json.dumps(RECEIVERS)}",
        "--force-conflicts", "--wait", "--timeout=120s",
    )  # fmt: skip
    wait_for("2 available operator replicas", _available(kubectl, 2), timeout=120)
    namespace = _get(kubectl, "namespace", RELEASE_NAMESPACE)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    secret = _get(kubectl, "-n", RELEASE_NAMESPACE, "secret", "rollguard-notify")
    assert secret is not None and "receivers.yaml" in secret["data"]
    assert _get(kubectl, "clusterrolebinding", f"{RELEASE}-operator") is not None
    assert _get(kubectl, "validatingadmissionpolicy", f"{RELEASE}-approval-identity") is None
    before = _pod_template_annotations(kubectl)

    helm(
        "upgrade", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, "--reuse-values",
        "--set", "replicas=1", "--set", "config.scrapeInterval=30", "--wait", "--timeout=120s",
    )  # fmt: skip
    wait_for("1 available operator replica", _available(kubectl, 1), timeout=120)
    config = _get(kubectl, "-n", RELEASE_NAMESPACE, "configmap", "rollguard-config")
    assert config is not None and config["data"]["ROLLGUARD_SCRAPE_INTERVAL"] == "30"
    assert _pod_template_annotations(kubectl) != before  # the pods restarted with it
    history = yaml.safe_load(helm("history", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "yaml"))
    assert [(r["revision"], r["status"]) for r in history] == [(1, "superseded"), (2, "deployed")]

    helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait", "--timeout=60s")
    for what in (
        ("clusterrole", f"{RELEASE}-operator"),
        ("clusterrolebinding", f"{RELEASE}-operator"),
        ("clusterrole", f"{RELEASE}-viewer"),
        ("-n", RELEASE_NAMESPACE, "deployment", "rollguard"),
        ("-n", RELEASE_NAMESPACE, "configmap", "rollguard-config"),
        ("-n", RELEASE_NAMESPACE, "secret", "rollguard-notify"),
    ):
        assert _get(kubectl, *what) is None, what
    assert _get(kubectl, "namespace", RELEASE_NAMESPACE) is not None  # kept, as it says
    for crd in ("rollbackpolicies.rollguard.dev", "clusterkopfpeerings.kopf.dev"):
        assert _get(kubectl, "crd", crd) is not None, crd
