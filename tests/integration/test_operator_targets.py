"""The operator guarding a StatefulSet and an Argo Rollout, end to end on the real control
plane (kube-controller-manager runs StatefulSets, the Argo Rollouts controller runs Rollouts,
kwok makes their Pods ready) and Prometheus: healthy means no decision; a bad revision means
one decision, exactly one change to the workload, the approved template serving again, and a
validated rollback; a canary in progress is aborted; a person's edit is never overwritten."""

from __future__ import annotations

from typing import Any

import pytest
from operator_fixtures import (
    OperatorProcess,
    Scenario,
    final_decision,
    grant,
    needs_approval,
    wait_for,
    wait_for_evaluations,
)

from devenv.launcher import EnvInfo
from devenv.testing import Kubectl
from rollguard.cli import main as rollguard_main

pytestmark = pytest.mark.integration

ROLLOUT_CRD = "rollouts.argoproj.io"


def _needs_argo(kubectl: Kubectl) -> None:
    found = kubectl("get", "crd", ROLLOUT_CRD, check=False)
    if found.returncode != 0:
        pytest.fail(f"the local environment has no Argo Rollouts ({found.stderr.strip()})")


def _generation(scenario: Scenario) -> int:
    return int(scenario.workload()["metadata"]["generation"])


def _one_decision(scenario: Scenario, operator: OperatorProcess) -> dict[str, Any]:
    decisions: list[dict[str, Any]] = wait_for(
        "a decision", scenario.decisions, timeout=60, operator=operator
    )
    return decisions[0]


def _rolled_back_once(
    scenario: Scenario, operator: OperatorProcess, kind: str, *, aborted: bool = False
) -> dict[str, Any]:
    """From a healthy revision 1 through a bad revision 2 to the final decision."""
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    wait_for_evaluations(operator, scenario, 4)
    assert scenario.decisions() == []
    scenario.set_profile("errors")
    wait_for("revision 2", lambda: scenario.revision() == 2, operator=operator)
    before = _generation(scenario)

    decision = _one_decision(scenario, operator)
    spec = decision["spec"]
    assert spec["targetRef"] == {
        "apiVersion": scenario.workload()["apiVersion"],
        "kind": kind,
        "name": "fraud",
    }
    assert "deploymentRef" not in spec
    assert (spec["recommended"]["action"], spec["recommended"]["fromRevision"]) == ("Rollback", 2)
    assert spec["recommended"]["toRevision"] == 1

    final = final_decision(scenario, decision["metadata"]["name"], operator)
    assert final["status"]["phase"] == "Succeeded", final["status"]
    assert final["status"]["execution"]["patched"] is True
    assert final["status"]["validation"]["verdict"] == "Passed"
    # Exactly one change: the rollback's template (an abort leaves the spec alone).
    assert _generation(scenario) == before + (0 if aborted else 1)
    assert len(scenario.decisions()) == 1
    return final


def test_a_statefulset_is_judged_rolled_back_once_and_validated(
    operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.setup(kind="StatefulSet")
    _rolled_back_once(scenario, operator, "StatefulSet")
    assert scenario.profile() == "healthy"
    status = scenario.get("modeldeployments", "fraud")["status"]
    assert status["target"] == "StatefulSet/fraud"
    assert status["currentRevision"] == 3  # revision 1's ControllerRevision, renumbered


def test_a_promoted_bad_rollout_gets_the_approved_template_back(
    operator: OperatorProcess, scenario: Scenario, kubectl: Kubectl
) -> None:
    _needs_argo(kubectl)
    scenario.setup(kind="Rollout", steps=[])  # no steps: every update is promoted at once
    _rolled_back_once(scenario, operator, "Rollout")
    assert scenario.profile() == "healthy"
    assert scenario.workload()["status"]["phase"] == "Healthy"


def test_a_bad_canary_in_progress_is_aborted(
    operator: OperatorProcess, scenario: Scenario, kubectl: Kubectl
) -> None:
    _needs_argo(kubectl)
    scenario.setup(kind="Rollout", steps=[{"setWeight": 50}, {"pause": {}}])
    final = _rolled_back_once(scenario, operator, "Rollout", aborted=True)
    assert final["status"]["execution"]["message"].startswith("Aborted the update of Rollout")
    rollout = scenario.workload()
    assert rollout["status"]["abort"] is True
    assert scenario.profile() == "errors"  # Argo keeps the aborted template in the spec
    status = scenario.get("modeldeployments", "fraud")["status"]
    assert status["currentRevision"] == 1  # what serves: the stable ReplicaSet


def test_a_person_editing_the_statefulset_first_is_never_overwritten(
    operator: OperatorProcess, scenario: Scenario, kubectl: Kubectl, env: EnvInfo
) -> None:
    grant(kubectl, scenario.ns, "rollguard-approver", group="ml-oncall")
    scenario.setup(kind="StatefulSet", policy=needs_approval())
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    decision = _one_decision(scenario, operator)
    assert decision["spec"]["requiresApproval"] is True
    scenario.set_profile("latency")  # a person fixes it their own way while approval waits
    wait_for("revision 3", lambda: scenario.revision() == 3, operator=operator)
    generation = _generation(scenario)
    name = decision["metadata"]["name"]
    argv = ["approve", name, "-n", scenario.ns, "--reason", "late approval"]
    assert rollguard_main([*argv, f"--kubeconfig={env.kubeconfig}", "--context=alice"]) == 0
    final = final_decision(scenario, name, operator)
    assert final["status"]["phase"] == "Superseded", final["status"]
    assert scenario.profile() == "latency"
    assert _generation(scenario) == generation
