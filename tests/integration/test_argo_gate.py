"""rollguard as a step of a real Argo Rollouts canary: an AnalysisTemplate with Argo's `web`
provider reads the operator's verdict (``/verdicts/NAMESPACE/NAME`` on its metrics port); a
canary rollguard judges bad fails the step and Argo aborts it, a good one passes and is
promoted. The ModelDeployment runs in DryRun, so that the gate alone stops the canary."""

from __future__ import annotations

from typing import Any

import pytest
from operator_fixtures import OperatorProcess, Scenario, wait_for

from devenv.testing import Kubectl

pytestmark = pytest.mark.integration


def _template(operator: OperatorProcess, namespace: str) -> dict[str, Any]:
    """The template of examples/argo-rollouts/, pointed at this operator, with test timings
    (the policy's window is 10 s: the first measurement waits that long)."""
    base = operator.metrics_url.rsplit("/", 1)[0]
    metric = {
        "name": "rollguard-verdict",
        "initialDelay": "12s",
        "interval": "2s",
        "count": 3,
        "successCondition": "result == true",
        "failureLimit": 0,
        "consecutiveErrorLimit": 10,
        "provider": {
            "web": {
                "url": f"{base}/verdicts/{{{{args.namespace}}}}/{{{{args.model-deployment}}}}",
                "timeoutSeconds": 5,
                "jsonPath": "{$.healthy}",
            }
        },
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "rollguard-verdict", "namespace": namespace},
        "spec": {
            "args": [{"name": "namespace"}, {"name": "model-deployment"}],
            "metrics": [metric],
        },
    }


STEPS = [
    {"setWeight": 50},
    {
        "analysis": {
            "templates": [{"templateName": "rollguard-verdict"}],
            "args": [
                {
                    "name": "namespace",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                },
                {"name": "model-deployment", "value": "fraud"},
            ],
        }
    },
]


def _gated(operator: OperatorProcess, scenario: Scenario, kubectl: Kubectl) -> None:
    if kubectl("get", "crd", "rollouts.argoproj.io", check=False).returncode != 0:
        pytest.fail("the local environment has no Argo Rollouts")
    scenario.custom.create_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        scenario.ns,
        "analysistemplates",
        _template(operator, scenario.ns),
    )
    scenario.setup(kind="Rollout", steps=STEPS, mdep_extra={"mode": "DryRun"})
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)


def _runs(scenario: Scenario) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = scenario.custom.list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", scenario.ns, "analysisruns"
    )["items"]
    return runs


def _run_phase(scenario: Scenario) -> str | None:
    runs = _runs(scenario)
    return (runs[0].get("status") or {}).get("phase") if runs else None


def test_a_canary_rollguard_judges_bad_fails_its_analysis_step_and_is_aborted(
    operator: OperatorProcess, scenario: Scenario, kubectl: Kubectl
) -> None:
    _gated(operator, scenario, kubectl)
    scenario.set_profile("errors")
    wait_for(
        "the analysis to fail",
        lambda: _run_phase(scenario) in ("Failed", "Successful", "Error") and _run_phase(scenario),
        timeout=120,
        operator=operator,
    )
    run = _runs(scenario)[0]
    assert run["status"]["phase"] == "Failed", run["status"]
    measurements = run["status"]["metricResults"][0]["measurements"]
    assert measurements[-1]["value"] == "false", measurements
    rollout = wait_for(
        "Argo to abort the canary",
        lambda: (r := scenario.workload()).get("status", {}).get("abort") and r,
        timeout=60,
    )
    assert "RolloutAborted" in rollout["status"]["message"], rollout["status"]
    assert scenario.decisions() == [] or all(
        d["spec"]["mode"] == "DryRun" for d in scenario.decisions()
    )


def test_a_canary_rollguard_judges_healthy_passes_and_is_promoted(
    operator: OperatorProcess, scenario: Scenario, kubectl: Kubectl
) -> None:
    _gated(operator, scenario, kubectl)
    scenario.custom.patch_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        scenario.ns,
        "rollouts",
        "fraud",
        [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/image",
                "value": "registry.local/model:v2",
            }
        ],
        _content_type="application/json-patch+json",
    )
    wait_for(
        "the analysis to finish",
        lambda: _run_phase(scenario) in ("Failed", "Successful", "Error"),
        timeout=120,
        operator=operator,
    )
    assert _run_phase(scenario) == "Successful", _runs(scenario)[0]["status"]
    rollout = wait_for(
        "the canary promoted",
        lambda: (
            (r := scenario.workload()).get("status", {}).get("phase") == "Healthy"
            and r["status"].get("stableRS") == r["status"].get("currentPodHash")
            and r
        ),
        timeout=60,
    )
    assert (
        rollout["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/model:v2"
    )
