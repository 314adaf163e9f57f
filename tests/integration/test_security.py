"""What the operator's ServiceAccount and a viewer may do, checked against the real API server.

The operator's rights are compared with a reviewed snapshot
(tests/integration/data/operator-can-i.txt): a change to deploy/rbac.yaml shows up here as a
diff to review. Regenerate it with ROLLGUARD_UPDATE_SNAPSHOTS=1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from devenv.drillreport import drill
from devenv.launcher import REPO
from devenv.testing import Kubectl, apply_deploy, reviewed_text

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
    with drill(
        "operator-rights", "operator rights against the reviewed snapshot (no Secrets, no Pods)"
    ) as figures:
        apply_deploy(kubectl, REPO)
        rights = _rights(kubectl, namespace)
        snapshot = reviewed_text(SNAPSHOT, rights, update_switch="ROLLGUARD_UPDATE_SNAPSHOTS")
        assert rights == snapshot, "operator rights changed: review, then regenerate"
        for verb, resource in (
            ("get", "secrets"),
            ("list", "secrets"),
            ("get", "pods"),
            ("delete", "deployments"),
        ):
            answer = kubectl(
                "auth", "can-i", verb, resource, f"--as={OPERATOR}", "-n", namespace, check=False
            ).stdout.strip()
            figures.bad_inputs += 1
            figures.handled += answer == "no"
            assert answer == "no", f"the operator may {verb} {resource}"


def test_a_viewer_reads_decisions_but_cannot_patch_them(kubectl: Kubectl, namespace: str) -> None:
    with drill("viewer-patch", "a viewer patching a decision") as figures:
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
            "spec": yaml.safe_load(
                (Path(__file__).parent / "data" / "decision-spec.yaml").read_text()
            ),
        }
        kubectl("create", "-f", "-", f"--as={OPERATOR}", input=json.dumps(decision))  # only it may
        refused = kubectl(
            "-n", namespace, "patch", "rollbackdecision", "d1", "--type=merge", "--as=victor",
            "-p", '{"spec": {"approval": {"decision": "Approve", "by": "victor", "reason": "x"}}}',
            check=False,
        )  # fmt: skip
        figures.bad_inputs = 1
        figures.handled = int(refused.returncode != 0 and "forbidden" in refused.stderr.lower())
        assert figures.handled, refused.stderr
