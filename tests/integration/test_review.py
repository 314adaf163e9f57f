"""Post-decision reviews on the real API server: written once, by the requester, only on an
ended decision; exported by the operator; read back by journal and calibrate, from the
cluster and from the audit log; the hash chain still verifies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_fixtures import GROUP, VERSION, wait_for

from devenv.drillreport import Figures, drill
from devenv.launcher import EnvInfo
from devenv.operatorproc import OperatorProcess
from devenv.testing import Kubectl, api_client_for, as_operator, linked_decision
from rollguard.cli import main as rollguard_main

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data"


def _grant(kubectl: Kubectl, namespace: str, user: str) -> None:
    kubectl(
        "create", "rolebinding", f"approver-{user}", "--clusterrole=rollguard-approver",
        f"--user={user}", "-n", namespace,
    )  # fmt: skip


def _create(env: EnvInfo, namespace: str, name: str) -> None:
    spec = yaml.safe_load((DATA / "decision-spec.yaml").read_text())
    client.CustomObjectsApi(as_operator(env)).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "rollbackdecisions",
        linked_decision(name, spec, model_deployment="fraud"),
    )  # fmt: skip


def _as(env: EnvInfo, user: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client_for(env, user))


def _cli(env: EnvInfo, user: str, *argv: str) -> int:
    return rollguard_main([*argv, f"--kubeconfig={env.kubeconfig}", f"--context={user}"])


def _review(by: str, verdict: str = "Achieved") -> dict[str, Any]:
    return {
        "spec": {
            "review": {
                "verdict": verdict,
                "regression": "Real",
                "by": by,
                "notes": "n",
                "reviewedAt": "2026-11-25T09:00:00Z",
            }
        }
    }


def _refused(figures: Figures, refused: bool) -> bool:
    """One bad input tried; ``refused``: it was refused as it should be."""
    figures.bad_inputs += 1
    figures.handled += refused
    return refused


def test_a_review_is_written_once_by_its_reviewer_after_the_end_and_reaches_the_journal(
    env: EnvInfo,
    kubectl: Kubectl,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with drill("forged-reviews", "forged, early and changed reviews") as figures:
        _grant(kubectl, namespace, "alice")
        _grant(kubectl, namespace, "mallory")  # RBAC lets her patch: only admission can stop her
        _create(env, namespace, "r1")
        admin = _as(env, "admin")
        args = (GROUP, VERSION, namespace, "rollbackdecisions", "r1")

        def phase() -> str | None:
            return (admin.get_namespaced_custom_object(*args).get("status") or {}).get("phase")

        wait_for("PendingApproval", lambda: phase() == "PendingApproval", operator=operator)

        # Not before the decision has ended: refused by the command and by the API server.
        review = ["review", "r1", "-n", namespace, "--verdict", "achieved", "--notes", "ok"]
        code, err = _cli(env, "alice", *review), capsys.readouterr().err
        assert _refused(
            figures,
            code == 2 and "is PendingApproval; a decision is reviewed once it has ended" in err,
        ), err
        with pytest.raises(ApiException) as early:
            _as(env, "alice").patch_namespaced_custom_object(*args, _review("alice"))
        assert _refused(
            figures,
            "only be written once the decision has reached a final phase" in early.value.body,
        )

        assert _cli(env, "alice", "reject", "r1", "-n", namespace, "--reason", "not the model") == 0
        wait_for(
            "Rejected and exported",
            lambda: (
                (s := admin.get_namespaced_custom_object(*args).get("status") or {}).get("phase")
                == "Rejected"
                and s["audit"]["exported"]
            ),
            operator=operator,
        )

        # mallory cannot write a review in alice's name.
        with pytest.raises(ApiException) as forged:
            _as(env, "mallory").patch_namespaced_custom_object(*args, _review("alice"))
        assert _refused(
            figures,
            "spec.review.by must be the requesting user (mallory), not alice" in forged.value.body,
        )

        notes = "the spike came from an upstream outage, not the model"
        assert (
            _cli(
                env, "alice", "review", "r1", "-n", namespace, "--verdict", "achieved",
                "--regression", "false-alarm", "--notes", notes,
            )
            == 0
        )  # fmt: skip
        assert f"Reviewed RollbackDecision {namespace}/r1 as alice" in capsys.readouterr().out

        # Once written, a review is never changed: not by the command, not by a patch.
        code, err = _cli(env, "alice", *review), capsys.readouterr().err
        assert _refused(
            figures, code == 2 and "already has a review: Achieved by alice; it is set once" in err
        ), err
        with pytest.raises(ApiException) as changed:
            _as(env, "alice").patch_namespaced_custom_object(*args, _review("alice", "Partial"))
        assert _refused(
            figures,
            "spec.review can be set once and never changed or removed" in changed.value.body,
        )

        # The operator exports it: an audit line, an Event, status.audit.reviewExported.
        decision = wait_for(
            "the review exported",
            lambda: (
                (d := admin.get_namespaced_custom_object(*args))["status"]["audit"].get(
                    "reviewExported"
                )
                and d
            ),
            operator=operator,
        )
        assert decision["spec"]["review"]["by"] == "alice"
        assert decision["spec"]["review"]["regression"] == "FalseAlarm"
        lines = [
            line
            for line in operator.audit_lines()
            if line.get("event") == "DecisionReviewed" and line.get("namespace") == namespace
        ]
        assert len(lines) == 1 and lines[0]["review"]["notes"] == notes
        events = kubectl("get", "events.events.k8s.io", "-n", namespace, "-o", "json").stdout
        reasons = {e["reason"] for e in json.loads(events)["items"]}
        assert "DecisionReviewed" in reasons

        # The review is no evidence: the chain still verifies.
        assert _cli(env, "admin", "audit", "verify", "-n", namespace) == 0, capsys.readouterr().out
        capsys.readouterr()

        # The journal, from the cluster and from the audit log, shows it.
        assert _cli(env, "admin", "journal", "-n", namespace) == 0
        text = capsys.readouterr().out
        assert "Rollback 3->2  phase Rejected" in text
        assert f"review: Achieved, regression FalseAlarm, by alice: {notes}" in text
        log = tmp_path / "audit.log"
        log.write_text(operator.audit.read_text())
        assert (
            rollguard_main(
                ["journal", "--audit-log", str(log), "-n", namespace, "--format", "json"]
            )
            == 0
        )
        [row] = json.loads(capsys.readouterr().out)["decisions"]
        assert row["review"]["by"] == "alice" and row["phase"] == "Rejected"

        # And calibration counts it.
        out = tmp_path / "calibration.md"
        assert _cli(env, "admin", "calibrate", "-n", namespace, "--out", str(out)) == 0
        report = out.read_text()
        assert "1 decision(s)" in report and "1 reviewed" in report
        assert "| Achieved | 0 | 1 | 0 |" in report


def test_only_the_operator_creates_decisions(
    env: EnvInfo, namespace: str, operator: OperatorProcess
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RollbackDecision",
        "metadata": {"name": "forged"},
        "spec": yaml.safe_load((DATA / "decision-spec.yaml").read_text()),
    }
    for user in ("admin", "alice"):
        with pytest.raises(ApiException) as refused:
            _as(env, user).create_namespaced_custom_object(
                GROUP, VERSION, namespace, "rollbackdecisions", body
            )
        assert refused.value.status == 403, refused.value.body


def test_an_approval_from_outside_the_policys_approvers_is_refused_at_admission(
    env: EnvInfo, kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    """RBAC lets both alice and mallory patch decisions, but the decision's policy names only
    alice: mallory's approval is refused by the API server (it would otherwise end the
    decision as Rejected, a veto), and alice's is taken."""
    _grant(kubectl, namespace, "alice")
    _grant(kubectl, namespace, "mallory")
    spec = yaml.safe_load((DATA / "decision-spec.yaml").read_text())
    spec["policy"]["effective"]["authorization"]["approvers"] = ["alice"]
    client.CustomObjectsApi(as_operator(env)).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "rollbackdecisions",
        linked_decision("a1", spec, model_deployment="fraud"),
    )  # fmt: skip
    args = (GROUP, VERSION, namespace, "rollbackdecisions", "a1")
    approval = {"decision": "Approve", "reason": "looks bad"}
    with pytest.raises(ApiException) as refused:
        _as(env, "mallory").patch_namespaced_custom_object(
            *args, {"spec": {"approval": {**approval, "by": "mallory"}}}
        )
    assert refused.value.status in (403, 422), refused.value
    assert "mallory is not among the approvers of this decision's policy (alice)" in (
        refused.value.body
    )
    _as(env, "alice").patch_namespaced_custom_object(
        *args, {"spec": {"approval": {**approval, "by": "alice"}}}
    )
    assert (
        _as(env, "admin").get_namespaced_custom_object(*args)["spec"]["approval"]["by"] == "alice"
    )
