"""The Argo CD health checks in deploy/argocd/, run in Lua 5.1 (the dialect Argo CD's
gopher-lua speaks) against sample objects of every phase; argocd-cm-patch.yaml carries the
same scripts verbatim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.testing import argocd_health

ARGOCD = Path(__file__).resolve().parents[3] / "deploy" / "argocd"
KINDS = {
    "ModelDeployment": "modeldeployment-health.lua",
    "RollbackDecision": "rollbackdecision-health.lua",
    "RollbackPolicy": "rollbackpolicy-health.lua",
}


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    return argocd_health(ARGOCD / KINDS[kind], obj)


def _mdep(status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "fraud", "generation": generation}}
    if status is not None:
        obj["status"] = {"observedGeneration": 1, **status}
    return obj


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("Healthy", "Healthy"),
        ("Cooldown", "Healthy"),
        ("Degraded", "Degraded"),
        ("Escalated", "Degraded"),
        ("AwaitingApproval", "Suspended"),
        ("RollingBack", "Progressing"),
        ("Validating", "Progressing"),
        ("Inconclusive", "Progressing"),
    ],
)
def test_model_deployment_phases(phase: str, expected: str) -> None:
    status, message = health("ModelDeployment", _mdep({"phase": phase, "message": "score 0.8"}))
    assert (status, message) == (expected, f"{phase}: score 0.8")


def test_model_deployment_not_yet_evaluated_or_stale_is_progressing() -> None:
    assert health("ModelDeployment", _mdep(None))[0] == "Progressing"
    stale = _mdep({"phase": "Healthy"}, generation=2)
    assert health("ModelDeployment", stale) == (
        "Progressing",
        "Waiting for rollguard to evaluate the new spec",
    )


def test_invalid_model_deployment_is_degraded_with_the_reason() -> None:
    obj = _mdep(
        {
            "phase": "Healthy",
            "conditions": [
                {"type": "Invalid", "status": "True", "message": "Deployment fraud not found"},
                {"type": "Ready", "status": "False"},
            ],
        }
    )
    assert health("ModelDeployment", obj) == ("Degraded", "Invalid: Deployment fraud not found")


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (None, "Progressing"),
        ("PendingApproval", "Suspended"),
        ("Approved", "Progressing"),
        ("Executing", "Progressing"),
        ("Validating", "Progressing"),
        ("Succeeded", "Healthy"),
        ("DryRun", "Healthy"),
        ("Rejected", "Healthy"),
        ("Superseded", "Healthy"),
        ("Expired", "Degraded"),
        ("Failed", "Degraded"),
    ],
)
def test_decision_phases(phase: str | None, expected: str) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "fraud-1"}, "status": {}}
    if phase:
        obj["status"] = {"phase": phase, "message": "m"}
    assert health("RollbackDecision", obj)[0] == expected


def test_policy_ready_invalid_and_pending() -> None:
    meta = {"name": "p", "generation": 3}
    ready = {"type": "Ready", "status": "True", "message": "2 ModelDeployments bound"}
    invalid = {"type": "Invalid", "status": "True", "message": "signals[0].query: parse error"}
    assert health("RollbackPolicy", {"metadata": meta}) == (
        "Progressing",
        "Waiting for rollguard to load the policy",
    )
    obj = {"metadata": meta, "status": {"observedGeneration": 3, "conditions": [ready]}}
    assert health("RollbackPolicy", obj) == ("Healthy", "2 ModelDeployments bound")
    obj = {"metadata": meta, "status": {"observedGeneration": 3, "conditions": [invalid]}}
    assert health("RollbackPolicy", obj) == ("Degraded", "Invalid: signals[0].query: parse error")
    obj = {"metadata": meta, "status": {"observedGeneration": 2, "conditions": [ready]}}
    assert health("RollbackPolicy", obj)[0] == "Progressing"


def test_argocd_cm_patch_carries_the_scripts_verbatim() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["metadata"] == {"name": "argocd-cm", "namespace": "argocd"}
    for kind, script in KINDS.items():
        key = f"resource.customizations.health.rollguard.dev_{kind}"
        assert patch["data"][key] == (ARGOCD / script).read_text()
