"""The verdict endpoint of the real operator (``/verdicts`` on its metrics port): healthy on a
healthy Deployment, not healthy once its new revision serves errors, 404 for a ModelDeployment
nobody guards, and read-only; and the AnalysisTemplate of examples/argo-rollouts/, run by the
real Argo Rollouts controller, passing the first and failing the second."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_fixtures import Scenario, policy_with, wait_for

from devenv.launcher import EnvInfo, Environment
from devenv.operatorproc import OperatorProcess

pytestmark = pytest.mark.integration
TEMPLATE = Path(__file__).resolve().parents[2] / "examples/argo-rollouts/analysis-template.yaml"
SERVICE = "http://rollguard-metrics.rollguard-system.svc:8080"  # what the example asks
ARGO = ("argoproj.io", "v1alpha1")


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except urllib.error.URLError:
        return 0, {}  # the session's operator is still starting


def _base(operator: OperatorProcess) -> str:
    return operator.metrics_url.rsplit("/metrics", 1)[0]


def test_verdict_turns_unhealthy_when_the_new_revision_serves_errors(
    operator: OperatorProcess, scenario: Scenario
) -> None:
    # DryRun: the degraded revision stays, so the verdict stays unhealthy to be read.
    scenario.setup(policy=policy_with(mode="DryRun"))
    url = f"{_base(operator)}/verdicts/{scenario.ns}/fraud"
    healthy = wait_for(
        "a healthy verdict",
        lambda: (v := _get(url))[0] == 200 and v[1]["phase"] == "Healthy" and v[1],
        timeout=60,
        operator=operator,
    )
    assert healthy["healthy"] is True and healthy["ready"] is True
    assert (healthy["namespace"], healthy["name"]) == (scenario.ns, "fraud")
    assert 0.0 <= healthy["score"] < 0.1 and healthy["scoreText"] == f"{healthy['score']:.2f}"
    assert healthy["currentRevision"] == 1
    assert healthy["policyHash"].startswith("sha256:")
    assert healthy["evaluatedAt"].endswith("Z") and healthy["ageSeconds"] < 10
    [signal] = healthy["signals"]
    assert signal["name"] == "error_rate" and signal["status"] == "Ok"
    assert {"value", "upper", "lower", "severity"} <= signal.keys()

    code, listed = _get(f"{_base(operator)}/verdicts")
    assert code == 200
    assert [v["name"] for v in listed["verdicts"] if v["namespace"] == scenario.ns] == ["fraud"]

    code, unknown = _get(f"{_base(operator)}/verdicts/{scenario.ns}/no-such-model")
    assert code == 404 and "no-such-model" in unknown["error"]
    code, refused = _get(url, method="POST")
    assert code == 405 and "read-only" in refused["error"]

    scenario.set_profile("errors")
    # Inconclusive while the new revision's series warms up (not healthy either), then
    # Degraded.
    degraded = wait_for(
        "a Degraded verdict",
        lambda: (v := _get(url))[0] == 200 and v[1]["phase"] == "Degraded" and v[1],
        timeout=60,
        operator=operator,
    )
    assert degraded["healthy"] is False
    assert degraded["currentRevision"] == 2 and degraded["score"] >= 0.1
    assert degraded["signals"][0]["status"] == "Breach"


def _analysis_run(scenario: Scenario, name: str, base: str) -> None:
    """An AnalysisRun of the example's template for the scenario's ModelDeployment, asking
    the session's operator instead of the in-cluster Service, and at once: no initial delay,
    two measurements a second apart (the rest of the metric as the example has it)."""
    template = yaml.safe_load(TEMPLATE.read_text())
    [metric] = copy.deepcopy(template["spec"]["metrics"])
    assert metric["provider"]["web"]["url"].startswith(f"{SERVICE}/verdicts/")
    metric["provider"]["web"]["url"] = metric["provider"]["web"]["url"].replace(SERVICE, base)
    metric.pop("initialDelay")
    metric.update(interval="1s", count=2)
    values = {"namespace": scenario.ns, "model-deployment": "fraud"}
    assert [a["name"] for a in template["spec"]["args"]] == list(values)
    body = {
        "apiVersion": "/".join(ARGO),
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": k, "value": v} for k, v in values.items()],
            "metrics": [metric],
        },
    }
    scenario.custom.create_namespaced_custom_object(*ARGO, scenario.ns, "analysisruns", body)


def _finished(scenario: Scenario, name: str) -> dict[str, Any] | None:
    run: dict[str, Any] = scenario.custom.get_namespaced_custom_object(
        *ARGO, scenario.ns, "analysisruns", name
    )
    phase = (run.get("status") or {}).get("phase")
    return run if phase in ("Successful", "Failed", "Error", "Inconclusive") else None


def test_the_example_analysis_template_passes_healthy_and_fails_degraded_with_argo(
    operator: OperatorProcess,
    scenario: Scenario,
    env: EnvInfo,
    local_environment: Environment | None,
) -> None:
    if local_environment is None or not env.argo_rollouts_healthz_url:
        pytest.skip("needs the session's own environment with Argo Rollouts built")
    scenario.setup(policy=policy_with(mode="DryRun"))
    base, url = _base(operator), f"{_base(operator)}/verdicts/{scenario.ns}/fraud"
    wait_for(
        "a healthy verdict",
        lambda: (v := _get(url))[0] == 200 and v[1]["healthy"],
        timeout=60,
        operator=operator,
    )
    _analysis_run(scenario, "while-healthy", base)
    run = wait_for("the analysis to finish", lambda: _finished(scenario, "while-healthy"))
    assert run["status"]["phase"] == "Successful", run["status"]
    [result] = run["status"]["metricResults"]
    assert [m["value"] for m in result["measurements"]] == ["true", "true"]

    scenario.set_profile("errors")
    wait_for(
        "a Degraded verdict",
        lambda: (v := _get(url))[0] == 200 and v[1]["phase"] == "Degraded",
        timeout=60,
        operator=operator,
    )
    _analysis_run(scenario, "while-degraded", base)
    run = wait_for("the analysis to finish", lambda: _finished(scenario, "while-degraded"))
    assert run["status"]["phase"] == "Failed", run["status"]
    [result] = run["status"]["metricResults"]
    assert result["measurements"][0]["value"] == "false"
