"""What the operator's ServiceAccount and a viewer may do, checked against the real API server.

The operator's rights are compared with a reviewed snapshot
(tests/integration/data/operator-can-i.txt): a change to deploy/rbac.yaml shows up here as a
diff to review. Regenerate it with ROLLGUARD_UPDATE_SNAPSHOTS=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from devenv.drillreport import record
from devenv.launcher import REPO
from devenv.testing import Kubectl, apply_deploy

pytestmark = pytest.mark.integration
SNAPSHOT = Path(__file__).parent / "data" / "operator-can-i.txt"
OPERATOR = "system:serviceaccount:rollguard-system:rollguard"


def _rights(kubectl: Kubectl, namespace: str) -> str:
    out = kubectl(
        "auth", "can-i", "--list", f"--as={OPERATOR}", "--as-group=system:serviceaccounts",
        "--as-group=system:serviceaccounts:rollguard-system", "--as-group=system:authenticated",
        "-n", namespace,
    ).stdout  # fmt: skip
    header, *rows = out.strip().splitlines()
    return "\n".join([" ".join(header.split()), *sorted(" ".join(r.split()) for r in rows)]) + "\n"


def test_operator_rights_match_the_reviewed_snapshot(kubectl: Kubectl, namespace: str) -> None:
    apply_deploy(kubectl, REPO)
    rights = _rights(kubectl, namespace)
    if os.environ.get("ROLLGUARD_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(rights)
    assert rights == SNAPSHOT.read_text(), "operator rights changed: review, then regenerate"
    for verb, resource in (
        ("get", "secrets"),
        ("list", "secrets"),
        ("get", "pods"),
        ("delete", "deployments"),
    ):
        answer = kubectl(
            "auth", "can-i", verb, resource, f"--as={OPERATOR}", "-n", namespace, check=False
        ).stdout.strip()
        assert answer == "no", f"the operator may {verb} {resource}"
    record(
        "operator rights against the reviewed snapshot (no Secrets, no Pods)",
        bad_inputs=4,
        handled=4,
    )


def test_a_viewer_reads_decisions_but_cannot_patch_them(kubectl: Kubectl, namespace: str) -> None:
    apply_deploy(kubectl, REPO)
    kubectl("create", "rolebinding", "viewers", "-n", namespace,
            "--clusterrole=rollguard-viewer", "--user=victor")  # fmt: skip

    def can(verb: str, resource: str) -> str:
        return kubectl(
            "auth", "can-i", verb, resource, "--as=victor", "-n", namespace, check=False
        ).stdout.strip()

    assert can("get", "rollbackdecisions.rollguard.dev") == "yes"
    assert can("list", "modeldeployments.rollguard.dev") == "yes"
    assert can("patch", "rollbackdecisions.rollguard.dev") == "no"
    decision = {
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RollbackDecision",
        "metadata": {"name": "d1", "namespace": namespace},
        "spec": yaml.safe_load((Path(__file__).parent / "data" / "decision-spec.yaml").read_text()),
    }
    kubectl("create", "-f", "-", f"--as={OPERATOR}", input=json.dumps(decision))  # only it may
    refused = kubectl(
        "-n", namespace, "patch", "rollbackdecision", "d1", "--type=merge", "--as=victor",
        "-p", '{"spec": {"approval": {"decision": "Approve", "by": "victor", "reason": "x"}}}',
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()
    record("a viewer patching a decision", bad_inputs=1, handled=1)
