"""The operator's guarantees under the situations on-call meets: quiet and noisy services,
missing data, humans approving and rejecting, approvals that cannot be forged, a GitOps tool
re-applying a bad revision, DryRun, and the operator killed mid-decision."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_fixtures import (
    GROUP,
    VERSION,
    OperatorProcess,
    Scenario,
    final_decision,
    grant,
    needs_approval,
    policy_with,
    wait_for,
    wait_for_evaluations,
)

from devenv.launcher import EnvInfo
from devenv.testing import Kubectl, api_client_for
from rollguard.cli import main as rollguard_main

pytestmark = pytest.mark.integration


def _first_decision(scenario: Scenario, operator: OperatorProcess) -> dict[str, Any]:
    found: list[dict[str, Any]] = wait_for(
        "a decision", scenario.decisions, timeout=60, operator=operator
    )
    return found[0]


def _phase_of(scenario: Scenario, name: str) -> str | None:
    return (scenario.get("rollbackdecisions", name).get("status") or {}).get("phase")


def _count(operator: OperatorProcess, scenario: Scenario, event: str) -> int:
    return sum(
        1
        for a in operator.audit_lines()
        if a.get("event") == event and a.get("namespace") == scenario.ns
    )


@pytest.mark.parametrize("profile", ["healthy", "noisy"])
def test_healthy_and_noisy_services_get_no_decision(
    operator: OperatorProcess, scenario: Scenario, profile: str
) -> None:
    scenario.setup(profile=profile)
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    wait_for_evaluations(operator, scenario, 10)  # about 20 s at the policy's 2 s interval
    assert scenario.decisions() == []
    assert scenario.phase() == "Healthy"


def test_silent_service_is_inconclusive_and_never_rolled_back(
    operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.setup(profile="silent")
    wait_for("Inconclusive", lambda: scenario.phase() == "Inconclusive", operator=operator)
    wait_for_evaluations(operator, scenario, 5)  # about 10 s at the policy's 2 s interval
    assert scenario.decisions() == []
    signals = scenario.get("modeldeployments", "fraud")["status"]["lastEvaluation"]["signals"]
    assert signals[0]["status"] == "Inconclusive"


def test_outside_the_boundary_alice_approves_and_mallory_cannot_forge(
    operator: OperatorProcess, scenario: Scenario, kubectl: Kubectl, env: EnvInfo
) -> None:
    grant(kubectl, scenario.ns, "rollguard-approver", group="ml-oncall")
    grant(kubectl, scenario.ns, "rollguard-approver", user="mallory")  # RBAC lets her patch
    scenario.setup(policy=needs_approval())
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    name = _first_decision(scenario, operator)["metadata"]["name"]
    wait_for(
        "PendingApproval", lambda: _phase_of(scenario, name) == "PendingApproval", operator=operator
    )
    wait_for("AwaitingApproval", lambda: scenario.phase() == "AwaitingApproval", operator=operator)

    forged = {"spec": {"approval": {"decision": "Approve", "by": "alice", "reason": "trust me"}}}
    mallory = client.CustomObjectsApi(api_client_for(env, "mallory"))
    with pytest.raises(ApiException) as refused:
        mallory.patch_namespaced_custom_object(
            GROUP, VERSION, scenario.ns, "rollbackdecisions", name, forged
        )
    assert refused.value.status in (403, 422)
    assert "must be the requesting user (mallory)" in refused.value.body

    argv = [
        "approve",
        name,
        "-n",
        scenario.ns,
        "--reason",
        "error spike confirmed",
        f"--kubeconfig={env.kubeconfig}",
        "--context=alice",
    ]
    assert rollguard_main(argv) == 0
    decision = final_decision(scenario, name, operator)
    assert decision["spec"]["approval"] == {
        "decision": "Approve",
        "by": "alice",
        "reason": "error spike confirmed",
    }
    assert decision["status"]["phase"] == "Succeeded", decision["status"]
    assert scenario.profile() == "healthy"

    # Once set, an approval cannot be changed, not even by the approver.
    again = {
        "spec": {"approval": {"decision": "Reject", "by": "alice", "reason": "changed my mind"}}
    }
    alice = client.CustomObjectsApi(api_client_for(env, "alice"))
    with pytest.raises(ApiException):
        alice.patch_namespaced_custom_object(
            GROUP, VERSION, scenario.ns, "rollbackdecisions", name, again
        )


def test_rejected_decision_leaves_the_deployment_untouched(
    operator: OperatorProcess, scenario: Scenario, kubectl: Kubectl, env: EnvInfo
) -> None:
    grant(kubectl, scenario.ns, "rollguard-approver", group="ml-oncall")
    scenario.setup(policy=needs_approval())
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    name = _first_decision(scenario, operator)["metadata"]["name"]
    wait_for(
        "PendingApproval", lambda: _phase_of(scenario, name) == "PendingApproval", operator=operator
    )
    generation = scenario.apps.read_namespaced_deployment("fraud", scenario.ns).metadata.generation
    argv = [
        "reject",
        name,
        "-n",
        scenario.ns,
        "--reason",
        "planned experiment",
        f"--kubeconfig={env.kubeconfig}",
        "--context=alice",
    ]
    assert rollguard_main(argv) == 0
    assert final_decision(scenario, name, operator)["status"]["phase"] == "Rejected"
    live = scenario.apps.read_namespaced_deployment("fraud", scenario.ns)
    assert live.metadata.generation == generation
    assert scenario.profile() == "errors"


def test_unanswered_decision_expires_without_touching_the_deployment(
    operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.setup(policy=needs_approval(approvalTimeout="6s"))
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    name = _first_decision(scenario, operator)["metadata"]["name"]
    assert final_decision(scenario, name, operator, timeout=60)["status"]["phase"] == "Expired"
    assert scenario.profile() == "errors"


def test_gitops_reapplying_the_bad_revision_ends_escalated_without_oscillation(
    operator: OperatorProcess, scenario: Scenario
) -> None:
    policy = policy_with(
        safety={"cooldown": "5s", "maxActionsPerWindow": {"count": 1, "window": "10m"}}
    )
    scenario.setup(policy=policy)
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    first = _first_decision(scenario, operator)["metadata"]["name"]
    assert final_decision(scenario, first, operator)["status"]["phase"] == "Succeeded"
    wait_for("recovery", lambda: scenario.phase() in ("Healthy", "Cooldown"), operator=operator)

    for _ in range(3):  # the GitOps tool puts the bad revision back, again and again
        if scenario.profile() != "errors":
            scenario.set_profile("errors")
        wait_for_evaluations(operator, scenario, 3)
    wait_for("Escalated", lambda: scenario.phase() == "Escalated", timeout=60, operator=operator)
    decisions = scenario.decisions()
    executed = [d for d in decisions if (d.get("status") or {}).get("execution", {}).get("patched")]
    assert len(executed) == 1, [d["status"].get("phase") for d in decisions]
    assert scenario.profile() == "errors"  # left for humans, not fought over
    pending = [d for d in decisions if d["status"].get("phase") == "PendingApproval"]
    assert pending, [(d["status"].get("phase"), d["status"].get("message")) for d in decisions]
    assert pending[0]["spec"]["requiresApproval"] is True


def test_dry_run_records_the_decision_and_never_touches_the_deployment(
    operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.setup(mdep_extra={"mode": "DryRun"})
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    generation = scenario.apps.read_namespaced_deployment("fraud", scenario.ns).metadata.generation
    name = _first_decision(scenario, operator)["metadata"]["name"]
    decision = final_decision(scenario, name, operator)
    assert decision["status"]["phase"] == "DryRun"
    assert decision["spec"]["mode"] == "DryRun"
    assert (
        scenario.apps.read_namespaced_deployment("fraud", scenario.ns).metadata.generation
        == generation
    )
    assert scenario.profile() == "errors"


@pytest.mark.parametrize("kill_when", ["created", "executing"])
def test_operator_killed_mid_decision_patches_exactly_once_and_completes(
    operator: OperatorProcess, scenario: Scenario, kill_when: str
) -> None:
    scenario.setup()
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    wait_for(
        "revision 2",
        lambda: (
            scenario.apps.read_namespaced_deployment("fraud", scenario.ns).metadata.generation == 2
        ),
    )
    if kill_when == "created":
        wait_for("a decision", scenario.decisions, timeout=60, interval=0.05, operator=operator)
    else:
        wait_for(
            "execution",
            lambda: any(
                (d.get("status") or {}).get("phase") in ("Executing", "Validating")
                for d in scenario.decisions()
            ),
            timeout=60,
            interval=0.05,
            operator=operator,
        )
    operator.restart(signal.SIGKILL)
    name = scenario.decisions()[0]["metadata"]["name"]
    decision = final_decision(scenario, name, operator, timeout=180)
    assert decision["status"]["phase"] == "Succeeded", decision["status"]
    # Generation 1: created; 2: the errors revision; 3: the one rollback. No second patch.
    assert scenario.apps.read_namespaced_deployment("fraud", scenario.ns).metadata.generation == 3
    assert len(scenario.decisions()) == 1


def test_old_decisions_are_collected_after_export_and_the_chain_still_verifies(
    operator: OperatorProcess, scenario: Scenario, env: EnvInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    # The session's operator keeps 2 decisions per ModelDeployment; Hold decisions are final
    # at once, so three episodes make three decisions and the oldest is collected.
    scenario.setup(
        policy=policy_with(triggers=[{"action": "Hold", "minScore": 0.5, "sustainedFor": "0s"}])
    )
    for episode in range(1, 4):
        wait_for("Healthy", lambda: scenario.phase() == "Healthy", timeout=90, operator=operator)
        scenario.set_profile("errors")
        wait_for(
            f"decision of episode {episode}",
            lambda n=episode: _count(operator, scenario, "HoldRecommended") >= n,
            timeout=90,
            operator=operator,
        )
        # The decision is created before the cycle writes the Degraded phase: wait for it, or
        # the next "Healthy" wait could pass on the phase of before the episode.
        wait_for("Degraded", lambda: scenario.phase() == "Degraded", timeout=30, operator=operator)
        scenario.set_profile("healthy")
    wait_for(
        "the oldest decision to be collected",
        lambda: (
            (scenario.get("modeldeployments", "fraud")["status"].get("audit") or {}).get(
                "prunedThrough"
            )
            == 1
        ),
        timeout=60,
        operator=operator,
    )
    remaining = sorted(d["status"]["audit"]["sequence"] for d in scenario.decisions())
    assert remaining == [2, 3]
    pruned = [
        a
        for a in operator.audit_lines()
        if a.get("event") == "DecisionPruned" and a.get("namespace") == scenario.ns
    ]
    assert [a["sequence"] for a in pruned] == [1]
    final_lines = [
        a
        for a in operator.audit_lines()
        if a.get("event") == "DecisionFinal" and a.get("namespace") == scenario.ns
    ]
    assert len(final_lines) == 3  # every decision was exported before any was deleted
    kube = [f"--kubeconfig={env.kubeconfig}", "--context=admin"]
    assert rollguard_main(["audit", "verify", "-n", scenario.ns, *kube]) == 0
    assert "2 decision(s), chain intact" in capsys.readouterr().out
