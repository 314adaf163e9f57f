"""Every example in examples/ applies cleanly to the real API server (server-side dry run,
then for real) and the operator takes it up: its policy Ready, its ModelDeployment judged.
The fraud example's whole story is tests/e2e/test_fraud_story.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from operator_fixtures import wait_for

from devenv.launcher import EnvInfo
from devenv.operatorproc import OperatorProcess
from devenv.testing import Kubectl
from rollguard.cli import main as rollguard_main

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _get(kubectl: Kubectl, namespace: str, *what: str) -> dict[str, Any]:
    out = kubectl("-n", namespace, "get", *what, "-o", "json", check=False).stdout
    return json.loads(out) if out else {}


@pytest.mark.parametrize(
    ("example", "namespace", "policy", "mdep"),
    [
        ("recommender", "shop-recs", "recommender-low", "recommender"),
        ("fraud", "fraud-examples", "fraud-high", "fraud-scorer"),
        ("statefulset", "ranker-examples", "ranker-medium", "ranker"),
        ("argo-rollouts", "pricing-examples", "pricer-medium", "pricer"),
    ],
)
def test_example_applies_and_is_evaluated(
    example: str,
    namespace: str,
    policy: str,
    mdep: str,
    kubectl: Kubectl,
    operator: OperatorProcess,
    env: EnvInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Rendered with kustomize and placed in a namespace of the test's own, so that it never
    # meets the end-to-end story's objects.
    kustomization = (EXAMPLES / example / "kustomization.yaml").read_text()
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(EXAMPLES / example, overlay)}]\nnamespace: {namespace}\n"
    )
    assert "namespace:" in kustomization
    try:
        kubectl("create", "namespace", namespace)
        dry = kubectl("apply", "--server-side", "--dry-run=server", "-k", str(overlay))
        assert "(server dry run)" in dry.stdout
        applied = kubectl("apply", "--server-side", "-k", str(overlay))
        assert "Warning" not in applied.stderr, applied.stderr

        def ready() -> bool:
            conditions = (
                _get(kubectl, namespace, "rollbackpolicy", policy).get("status") or {}
            ).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(f"{policy} Ready", ready, timeout=120, operator=operator)
        wait_for(
            f"{mdep} judged",
            lambda: (
                (_get(kubectl, namespace, "modeldeployment", mdep).get("status") or {}).get("phase")
                in ("Healthy", "Inconclusive")
            ),
            timeout=120,
            operator=operator,
        )
        status = _get(kubectl, namespace, "modeldeployment", mdep)["status"]
        assert status["currentRevision"] == 1
        assert [a["revision"] for a in status["approvedRevisions"]] == [1]

        # The governance documents, from the live objects.
        kube = ["--kubeconfig", env.kubeconfig, "--context", "admin"]
        assert rollguard_main(["playbook", policy, "-n", namespace, *kube]) == 0
        playbook = capsys.readouterr().out
        assert playbook.startswith(f"# Rollback playbook: {namespace}/{policy}")
        assert rollguard_main(["inventory", "-n", namespace, "--format", "json", *kube]) == 0
        (row,) = json.loads(capsys.readouterr().out)["items"]
        assert (row["name"], row["policyState"], row["currentRevision"]) == (mdep, "Ready", "1")
        assert row["phase"] in ("Healthy", "Inconclusive") and row["owners"]
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
