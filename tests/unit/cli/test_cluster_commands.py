"""`approve`, `reject`, `review` and `clear`: what each writes, as the caller, and what it
refuses, with its message and exit code. The cluster is a stand-in holding one decision and one
ModelDeployment, put where the command line opens the caller's cluster."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from rollguard import commands
from rollguard.cli import main
from rollguard.kube.client import ApiError

CALLER = "alice"


class DecisionCluster:
    """The API operations these commands use, over RollbackDecision ml/d1 and ModelDeployment
    ml/fraud. A patch must carry the resourceVersion last read, else 409 (as the API server
    answers a stale precondition); ``edit_after_read`` plays another writer getting in
    between."""

    def __init__(self, *, phase: str, spec: dict[str, Any] | None = None) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {
            ("RollbackDecision", "d1"): {
                "metadata": {"namespace": "ml", "name": "d1", "resourceVersion": "7"},
                "spec": spec or {},
                "status": {"phase": phase},
            },
            ("ModelDeployment", "fraud"): {
                "metadata": {"namespace": "ml", "name": "fraud", "resourceVersion": "3"},
            },
        }
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.edit_after_read = False

    def whoami(self) -> tuple[str, list[str]]:
        return CALLER, ["system:authenticated"]

    def _stored(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if namespace != "ml" or (kind, name) not in self.objects:
            body = json.dumps({"message": f'{kind} "{name}" not found'})
            raise ApiError(status=404, reason="Not Found", body=body)
        return self.objects[kind, name]

    def get(self, kind: str, *, namespace: str, name: str) -> dict[str, Any]:
        obj = copy.deepcopy(self._stored(kind, namespace, name))
        if self.edit_after_read:
            self._stored(kind, namespace, name)["metadata"]["resourceVersion"] += "1"
        return obj

    def patch(self, kind: str, *, namespace: str, name: str, body: dict[str, Any]) -> None:
        stored = self._stored(kind, namespace, name)
        wanted = body.get("metadata", {}).get("resourceVersion")
        if wanted not in (None, stored["metadata"]["resourceVersion"]):
            raise ApiError(status=409, reason="Conflict")
        self.patches.append((kind, name, body))


@pytest.fixture
def as_caller(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Installs a stand-in cluster where `rollguard` opens the caller's; returns the installer."""

    def install(cluster: DecisionCluster) -> DecisionCluster:
        monkeypatch.setattr(commands, "cluster_for", lambda **_: cluster)
        return cluster

    return install


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_approve_writes_the_approval_as_the_caller_on_the_version_read(
    as_caller: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = as_caller(DecisionCluster(phase="PendingApproval"))
    code, out, err = run(["approve", "d1", "-n", "ml", "--reason", "looks right"], capsys)
    assert (code, err) == (0, "")
    assert out == "Approved RollbackDecision ml/d1 as alice\n"
    assert cluster.patches == [
        (
            "RollbackDecision",
            "d1",
            {
                "metadata": {"resourceVersion": "7"},
                "spec": {
                    "approval": {"decision": "Approve", "by": CALLER, "reason": "looks right"}
                },
            },
        )
    ]


def test_reject_writes_a_rejection(as_caller: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = as_caller(DecisionCluster(phase="PendingApproval"))
    code, out, _ = run(["reject", "d1", "-n", "ml", "--reason", "too risky"], capsys)
    assert (code, out) == (0, "Rejected RollbackDecision ml/d1 as alice\n")
    assert cluster.patches[0][2]["spec"]["approval"]["decision"] == "Reject"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            {"phase": "Executing"},
            "error: RollbackDecision ml/d1 is Executing; only a decision in PendingApproval can be "
            "approved or rejected\n",
        ),
        (
            {
                "phase": "PendingApproval",
                "spec": {"approval": {"decision": "Reject", "by": "bob", "reason": "no"}},
            },
            "error: RollbackDecision ml/d1 already has an approval: Reject by bob; it is set once\n",
        ),
    ],
    ids=["not-pending", "already-decided"],
)
def test_approve_is_refused_with_exit_2_and_writes_nothing(
    state: dict[str, Any], message: str, as_caller: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = as_caller(DecisionCluster(**state))
    code, out, err = run(["approve", "d1", "-n", "ml", "--reason", "go"], capsys)
    assert (code, out, err) == (2, "", message)
    assert cluster.patches == []


def test_approve_of_a_decision_changed_since_it_was_read_asks_to_look_again(
    as_caller: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = as_caller(DecisionCluster(phase="PendingApproval"))
    cluster.edit_after_read = True
    code, _, err = run(["approve", "d1", "-n", "ml", "--reason", "go"], capsys)
    assert code == 2
    assert err == (
        "error: RollbackDecision ml/d1 changed while you were deciding; look at it again and "
        "retry\n"
    )


def test_approve_of_a_missing_decision_says_not_found(
    as_caller: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    as_caller(DecisionCluster(phase="PendingApproval"))
    code, _, err = run(["approve", "d2", "-n", "ml", "--reason", "go"], capsys)
    assert (code, err) == (2, "error: RollbackDecision ml/d2 not found\n")


def test_review_records_the_api_values_of_the_options_given(
    as_caller: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = as_caller(DecisionCluster(phase="Succeeded"))
    argv = ["review", "d1", "-n", "ml", "--verdict", "not-achieved", "--regression", "false-alarm"]
    code, out, err = run([*argv, "--notes", "the alert was a scrape gap"], capsys)
    assert (code, out, err) == (0, "Reviewed RollbackDecision ml/d1 as alice\n", "")
    review = cluster.patches[0][2]["spec"]["review"]
    assert {k: review[k] for k in ("verdict", "regression", "by", "notes")} == {
        "verdict": "NotAchieved",
        "regression": "FalseAlarm",
        "by": CALLER,
        "notes": "the alert was a scrape gap",
    }
    assert review["reviewedAt"].endswith("Z")


def test_review_of_a_decision_still_open_is_refused(
    as_caller: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = as_caller(DecisionCluster(phase="Validating"))
    code, _, err = run(
        ["review", "d1", "-n", "ml", "--verdict", "achieved", "--notes", "ok"], capsys
    )
    assert (code, cluster.patches) == (2, [])
    assert err == (
        "error: RollbackDecision ml/d1 is Validating; a decision is reviewed once it has ended\n"
    )


def test_clear_annotates_the_model_deployment(
    as_caller: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = as_caller(DecisionCluster(phase="Succeeded"))
    code, out, _ = run(["clear", "fraud", "-n", "ml"], capsys)
    assert (code, out) == (0, "Cleared the escalation of ModelDeployment ml/fraud\n")
    ((kind, name, body),) = cluster.patches
    assert (kind, name) == ("ModelDeployment", "fraud")
    (stamp,) = body["metadata"]["annotations"].values()
    assert stamp.endswith("Z")
