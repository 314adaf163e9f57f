"""The operator end to end on the real control plane and Prometheus, run with the
ServiceAccount and RBAC from deploy/. The workload simulator's profiles drive the metrics."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from operator_fixtures import OperatorProcess, Scenario, wait_for

from devenv.testing import Kubectl
from rollguard.cli import main as rollguard_main

pytestmark = pytest.mark.integration


def test_errors_revision_is_rolled_back_to_the_approved_revision_and_validated(
    operator: OperatorProcess,
    scenario: Scenario,
    kubectl: Kubectl,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario.setup()
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    approved_template = scenario.apps.read_namespaced_deployment("fraud", scenario.ns).spec.template

    scenario.set_profile("errors")
    decision = wait_for("a decision", scenario.decisions, timeout=60, operator=operator)[0]
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

    # kubectl get answers at a glance, in 120 columns: rounded scores, revisions, a reason
    # without the arithmetic.
    for kind in ("rollbackpolicies", "modeldeployments", "rollbackdecisions"):
        lines = kubectl("-n", scenario.ns, "get", kind).stdout.splitlines()
        assert len(lines) == 2 and all(len(line) <= 120 for line in lines), lines
    [header, row] = kubectl("-n", scenario.ns, "get", "mdep").stdout.splitlines()
    assert header.split()[:5] == ["NAME", "PHASE", "SCORE", "REVISION", "STABLE"]
    assert re.fullmatch(r"\d\.\d\d", row.split()[2]), row
    [header, row] = kubectl("-n", scenario.ns, "get", "rbd", name).stdout.splitlines()
    assert header.split() == ["NAME", "ACTION", "FROM", "TO", "SCORE", "PHASE", "APPROVAL", "AGE"]
    score = f"{spec['impact']['score']:.2f}"
    assert row.split()[:7] == [name, "Rollback", "2", "1", score, "Succeeded", "false"], row
    wide = kubectl("-n", scenario.ns, "get", "rbd", name, "-o", "wide").stdout
    assert re.search(r"   Rollback to revision 1: score \d\.\d+ (over|at) ", wide), wide
    assert "=" not in wide, wide

    # The decision replays from the cluster to the same recommendation.
    path = tmp_path / "decision.yaml"
    path.write_text(yaml.safe_dump(final))
    assert rollguard_main(["replay", str(path)]) == 0
    assert "same recommendation" in capsys.readouterr().out

    # People can ask why, and check the journal has not been tampered with.
    kube = [f"--kubeconfig={operator.env['KUBECONFIG']}"]
    assert rollguard_main(["explain", name, "-n", scenario.ns, *kube]) == 0
    explained = capsys.readouterr().out
    assert "Recommended: Rollback revision 2 -> 1" in explained
    assert "Phase: Succeeded" in explained
    assert rollguard_main(["audit", "verify", "-n", scenario.ns, *kube]) == 0
    assert f"{scenario.ns}/fraud: 1 decision(s), chain intact" in capsys.readouterr().out

    metrics = urllib.request.urlopen(operator.metrics_url, timeout=5).read().decode()
    assert 'rollguard_decisions_total{action="Rollback"}' in metrics
    assert "rollguard_cycle_duration_seconds_bucket" in metrics
    assert "rollguard_event_loop_lag_seconds_count" in metrics
    assert (
        f'rollguard_impact_score{{model_deployment="fraud",namespace="{scenario.ns}"}}' in metrics
    )
    assert urllib.request.urlopen(operator.liveness_url, timeout=5).status == 200

    reasons = {e["reason"] for e in scenario.events()}
    assert {
        "RollbackRecommended",
        "AutoApproved",
        "RollbackExecuted",
        "ValidationSucceeded",
    } <= reasons
    audit = [line for line in operator.audit_lines() if line.get("namespace") == scenario.ns]
    assert any(line["event"] == "DecisionFinal" for line in audit)
