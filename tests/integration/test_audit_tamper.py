"""Audit drill on the real API server: a chain of decisions sealed by the operator verifies; an
admin deleting one from the middle, or replacing one with altered evidence, is named by
`rollguard audit verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from operator_fixtures import GROUP, VERSION, wait_for

from devenv.drillreport import drill
from devenv.launcher import EnvInfo
from devenv.operatorproc import OperatorProcess
from devenv.testing import api_client_for, as_operator, linked_decision
from rollguard.api.decision import RollbackDecisionSpec
from rollguard.cli import main as rollguard_main
from rollguard.core.audit import GENESIS, link_hash

pytestmark = pytest.mark.integration

SPEC = yaml.safe_load((Path(__file__).parent / "data" / "decision-spec.yaml").read_text())


def _chain_link(name: str, spec: dict[str, Any], sequence: int, previous: str) -> dict[str, Any]:
    body = linked_decision(name, spec, model_deployment="fraud")
    body["metadata"]["annotations"] = {
        "rollguard.dev/audit-sequence": str(sequence),
        "rollguard.dev/audit-previous-hash": previous,
    }
    return body


def _verify(env: EnvInfo, namespace: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = rollguard_main(
        ["audit", "verify", "-n", namespace, f"--kubeconfig={env.kubeconfig}", "--context=admin"]
    )
    return code, capsys.readouterr().out


def test_deleting_or_replacing_a_decision_in_the_middle_of_a_chain_is_named(
    env: EnvInfo, namespace: str, operator: OperatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with drill("audit-tamper", "audit tamper: a decision replaced, then deleted") as figures:
        creator = client.CustomObjectsApi(as_operator(env))
        admin = client.CustomObjectsApi(api_client_for(env, "admin"))
        plural = (GROUP, VERSION, namespace, "rollbackdecisions")
        previous, hashes = GENESIS, []
        for sequence in (1, 2, 3):
            spec = {**SPEC, "evaluatedAt": f"2026-11-24T20:0{sequence}:00Z"}
            name = f"fraud-{sequence}"
            creator.create_namespaced_custom_object(
                *plural, _chain_link(name, spec, sequence, previous)
            )
            previous = link_hash(
                previous_hash=previous,
                sequence=sequence,
                name=name,
                spec=RollbackDecisionSpec.model_validate(spec),
            )
            hashes.append(previous)

        def names() -> list[str]:
            return [
                i["metadata"]["name"] for i in admin.list_namespaced_custom_object(*plural)["items"]
            ]

        def sealed() -> bool:
            items = admin.list_namespaced_custom_object(*plural)["items"]
            return len(items) == 3 and all((i.get("status") or {}).get("audit") for i in items)

        wait_for("the operator to seal the chain", sealed, operator=operator)
        code, report = _verify(env, namespace, capsys)
        assert code == 0 and "3 decision(s), chain intact" in report, report

        # An admin replaces the middle decision with altered evidence (same name and link).
        admin.delete_namespaced_custom_object(*plural, "fraud-2")
        wait_for("fraud-2 to be gone", lambda: len(names()) == 2, operator=operator)
        altered = {**SPEC, "evaluatedAt": "2026-11-24T20:02:00Z"}
        altered["impact"] = {**altered["impact"], "score": 0.2}
        creator.create_namespaced_custom_object(
            *plural, _chain_link("fraud-2", altered, 2, hashes[0])
        )
        wait_for("the replacement to be sealed", sealed, operator=operator)
        code, report = _verify(env, namespace, capsys)
        figures.faults += 1
        named = f"fraud-3: previousHash {hashes[1]} does not link to the preceding decision"
        figures.survived += code == 1 and "chain BROKEN" in report and named in report
        assert code == 1, report
        assert "chain BROKEN" in report
        assert named in report

        # And deletes it: the gap is named.
        admin.delete_namespaced_custom_object(*plural, "fraud-2")
        wait_for("fraud-2 to be gone again", lambda: len(names()) == 2, operator=operator)
        code, report = _verify(env, namespace, capsys)
        figures.faults += 1
        gap = "fraud-3: sequence 3, expected 2 (decision(s) 2..2 are missing)"
        figures.survived += code == 1 and gap in report
        assert code == 1, report
        assert gap in report
