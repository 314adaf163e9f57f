"""The examples as files: every object validates against the API models, the policies
resolve with their tiers, and the recorded fraud series, replayed offline through the fraud
policy, rolls back soon after the bad release without acting before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rollguard.api.modeldeployment import ModelDeploymentSpec
from rollguard.cli import main
from rollguard.files.loading import load_policy

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize(
    ("example", "tier", "signals"),
    [
        ("fraud", "high", {"error_rate", "latency_p99", "approved_value_per_minute"}),
        ("recommender", "low", {"error_rate", "click_revenue_per_minute"}),
    ],
)
def test_example_objects_validate(example: str, tier: str, signals: set[str]) -> None:
    kustomization = yaml.safe_load((EXAMPLES / example / "kustomization.yaml").read_text())
    files = [EXAMPLES / example / name for name in kustomization["resources"]]
    kinds = {}
    for path in files:
        doc = yaml.safe_load(path.read_text())
        kinds[doc["kind"]] = doc
    assert {"Namespace", "Deployment", "RollbackPolicy", "ModelDeployment"} <= set(kinds)
    policy = load_policy(path=EXAMPLES / example / "policy.yaml")
    assert policy.risk_tier == tier
    assert {s.name for s in policy.signals} == signals
    mdep = ModelDeploymentSpec.model_validate(kinds["ModelDeployment"]["spec"])
    assert mdep.deployment_ref.name == kinds["Deployment"]["metadata"]["name"]
    assert mdep.policy_ref.name == kinds["RollbackPolicy"]["metadata"]["name"]
    assert mdep.owners and mdep.business and mdep.business.revenue_per_hour


def test_demo_overlay_only_changes_timings() -> None:
    demo = yaml.safe_load((EXAMPLES / "demo" / "kustomization.yaml").read_text())
    assert demo["resources"] == ["../fraud"]
    (patch,) = demo["patches"]
    paths = {op["path"] for op in yaml.safe_load(patch["patch"])}
    assert paths == {"/spec/evaluation", "/spec/validation"}


def test_recorded_fraud_series_rolls_back_after_the_bad_release(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "simulate",
        f"--policy={EXAMPLES / 'fraud' / 'policy.yaml'}",
        f"--series={EXAMPLES / 'series' / 'fraud-bad-release.csv'}",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    actions = result["actions"]
    assert actions and actions[0]["action"] == "Rollback"
    assert result["falseRollbacks"] == 0
    assert 0 < result["detectionDelaySeconds"] <= 240
