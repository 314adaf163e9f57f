"""The demo's story, asserted: the high-risk fraud example deployed from examples/, a bad
release, a decision outside the auto-approval boundary, forged approvals refused by the API
server, alice's approval, exactly one rollback patch, validation, the outcome, the audit
chain, and the Argo CD health of the real objects along the way. Runs against the local
environment, or on kind with the operator deployed from deploy/ (`make e2e-kind`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.launcher import EnvInfo
from devenv.operatorproc import OperatorProcess
from devenv.receivers import Sink
from devenv.story import NAMESPACE, Story
from devenv.testing import Kubectl, argocd_health

pytestmark = pytest.mark.e2e
ARGOCD = Path(__file__).resolve().parents[2] / "deploy" / "argocd"


def health(kind: str, obj: dict[str, Any]) -> str:
    return argocd_health(ARGOCD / f"{kind.lower()}-health.lua", obj)[0]


@pytest.fixture
def story(
    env: EnvInfo,
    kubectl: Kubectl,
    crds_installed: None,
    acting_operator: OperatorProcess | None,
) -> Iterator[Story]:
    lines: list[str] = []
    s = Story(env=env, kubectl=kubectl, say=lines.append, timeout=420)
    s.reset()
    if acting_operator is not None and acting_operator.receivers is not None:
        # The on-call channel of the example policy's notify list, as the demo has it.
        s.channel = Sink().start()
        oncall = {"receivers": [{"name": "oncall", "slack": {"url": s.channel.url}}]}
        acting_operator.receivers.write_text(json.dumps(oncall))
    try:
        yield s
    except Exception:
        print("\n".join(lines[-80:]))
        raise
    finally:
        kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        if s.channel is not None:
            s.channel.stop()
            if acting_operator is not None and acting_operator.receivers is not None:
                acting_operator.receivers.unlink(missing_ok=True)


def test_bad_release_of_the_fraud_model_is_rolled_back_with_alices_approval(
    story: Story, acting_operator: OperatorProcess | None
) -> None:
    healthy = story.deploy_healthy()
    assert health("ModelDeployment", healthy) == "Healthy"
    policy = story.get("rollbackpolicy", "fraud-high")
    assert health("RollbackPolicy", policy) == "Healthy"
    generation_before = story.deployment()["metadata"]["generation"]

    story.bad_release()
    decision = story.await_decision()
    spec = decision["spec"]
    assert spec["recommended"]["action"] == "Rollback"
    assert (spec["recommended"]["fromRevision"], spec["recommended"]["toRevision"]) == (2, 1)
    assert spec["requiresApproval"] is True
    assert spec["impact"]["score"] >= 0.7  # the tier's immediate point of the trigger curve
    assert spec["impact"]["moneyAtRisk"]["currency"] == "EUR"
    story.wait("PendingApproval", lambda: story.decision_phase() == "PendingApproval")
    assert health("RollbackDecision", story.decision_obj()) == "Suspended"
    story.wait("AwaitingApproval", lambda: story.phase() == "AwaitingApproval")
    assert health("ModelDeployment", story.mdep()) == "Suspended"

    if story.channel is not None:
        told = story.notified()
        assert told.startswith("Approval needed: fraud-detection/fraud-scorer")
        assert f"rollguard approve {story.decision} -n {NAMESPACE} --reason" in told

    explanation = story.explain()
    assert "outside the auto-approval boundary" in explanation
    assert "error_rate" in explanation and "Breach" in explanation

    mallory, alice_as_bob = story.forged_approvals_are_refused()
    assert "forbidden" in mallory.lower()
    assert "must be the requesting user (alice)" in alice_as_bob
    assert story.approve().startswith("Approved")
    again = story.rollguard(
        "approve",
        story.decision,
        "-n",
        NAMESPACE,
        "--reason",
        "twice",
        context="alice",
        check=False,
    )
    assert "already has an approval: Approve by alice" in again

    deployment = story.await_rollback()
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.4.2")
    final = story.await_final()
    status = final["status"]
    assert status["phase"] == "Succeeded"
    assert final["spec"]["approval"]["by"] == "alice"
    assert status["validation"]["verdict"] == "Passed"
    assert status["outcome"]["observedScoreAfter"] < 0.05
    assert health("RollbackDecision", final) == "Healthy"

    # Exactly one patch: the bad release and the rollback are the only spec changes.
    assert story.deployment()["metadata"]["generation"] == generation_before + 2
    assert len(story.decisions()) == 1
    assert "chain intact" in story.audit()

    # The post-rollback review, in alice's name, exported; journal and calibration show it.
    assert story.review().startswith("Reviewed RollbackDecision")
    assert story.decision_obj()["spec"]["review"]["by"] == "alice"
    journal = story.journal()
    assert "validation: Passed;  review: Achieved, regression Real, by alice" in journal
    assert "Rollback 2->1  phase Succeeded" in journal
    report = story.calibrate()
    assert "1 rolled back, 1 reviewed" in report
    assert "too few reviews to judge (1 of the 5 needed)" in report
    assert "chain intact" in story.audit()  # the review is not evidence

    # The operator never writes what users own in Git: specs, labels and annotations of the
    # ModelDeployment and the policy are as applied (it writes their status only).
    for kind, name, before in (
        ("modeldeployment", "fraud-scorer", healthy),
        ("rollbackpolicy", "fraud-high", policy),
    ):
        after = story.get(kind, name)
        assert after["spec"] == before["spec"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"]
        for field in ("labels", "annotations"):
            assert after["metadata"].get(field) == before["metadata"].get(field)
    if acting_operator is not None:
        reasons = [line["event"] for line in acting_operator.audit_lines()
                   if line.get("name") == story.decision]  # fmt: skip
        assert {"ApprovalRequired", "ApprovalGranted", "ValidationSucceeded",
                "DecisionReviewed"} <= set(reasons)  # fmt: skip
        assert reasons.count("RollbackExecuted") == 1
