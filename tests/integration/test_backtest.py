"""`rollguard backtest` runs a policy over a deployment's history in the real Prometheus."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from operator_fixtures import FAST_POLICY, Scenario, wait_for

from devenv.launcher import EnvInfo
from devenv.operatorproc import OperatorProcess
from devenv.testing import ERROR_RATIO, deployment_manifest, fast_policy
from rollguard.api import API_VERSION
from rollguard.cli import main
from rollguard.core.times import format_seconds
from rollguard.signals.prometheus import PrometheusSource
from rollguard.signals.promql import render

pytestmark = pytest.mark.integration


def _policy_file(tmp_path: Path) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "rollguard.dev/v1alpha1",
                "kind": "RollbackPolicy",
                "metadata": {"name": "p"},
                "spec": FAST_POLICY,
            }
        )
    )
    return policy


def test_backtest_over_an_errors_deployment_finds_the_rollback(
    env: EnvInfo,
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.AppsV1Api(api_client).create_namespaced_deployment(
        namespace, deployment_manifest("scorer", profile="errors")
    )
    started = time.time()
    policy = _policy_file(tmp_path)
    source = PrometheusSource(url=env.prometheus_url)
    query = render(ERROR_RATIO, namespace=namespace, deployment="scorer")

    def history() -> int:
        series = source.query_range(query=query, start=started, end=time.time(), step=1.0)
        return series[0].values.size if series else 0

    # History enough for the policy: its window (10 s) twice over, and its trigger's 4 s.
    wait_for("25 s of error ratio in Prometheus", lambda: history() >= 25, timeout=90)

    argv = [
        "backtest", f"--policy={policy}", f"--prometheus={env.prometheus_url}",
        f"--namespace={namespace}", "--deployment=scorer",
        f"--from={int(started)}", f"--to={int(time.time())}", "--step=1", "--json",
        f"--save-series={tmp_path / 'recorded.csv'}", f"--regression-from={int(started)}",
    ]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert [a["action"] for a in result["actions"]][:1] == ["Rollback"]
    assert result["actions"][0]["score"] > 0.5

    # The saved series replays offline to the same first action, with its ground truth.
    assert (
        main(["simulate", f"--policy={policy}", f"--series={tmp_path / 'recorded.csv'}", "--json"])
        == 0
    )
    offline = json.loads(capsys.readouterr().out)
    assert [a["action"] for a in offline["actions"]][:1] == ["Rollback"]
    assert offline["actions"][0]["score"] == result["actions"][0]["score"]


def test_backtest_of_a_deployment_without_data_is_a_one_line_error(
    env: EnvInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _policy_file(tmp_path)
    now = int(time.time())
    argv = [
        "backtest", f"--policy={policy}", f"--prometheus={env.prometheus_url}",
        "--namespace=nowhere", "--deployment=nothing", f"--from={now - 60}", f"--to={now}", "--step=1",
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no samples" in err and err.count("\n") == 1


def _decision_row(decision: dict[str, Any]) -> tuple[str, int, str, str, bool, float]:
    spec = decision["spec"]
    at = datetime.fromisoformat(spec["evaluatedAt"].replace("Z", "+00:00")).timestamp()
    score = float(f"{spec['impact']['score']:.6g}")
    return (
        format_seconds(at),
        spec["trigger"]["index"],
        spec["trigger"]["action"],
        spec["recommended"]["action"],
        spec["requiresApproval"],
        score,
    )


def test_the_live_operators_decisions_are_the_backtest_of_the_same_data(
    operator: OperatorProcess,
    scenario: Scenario,
    env: EnvInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A scripted incident under two triggers (a Hold at once, then a Rollback sustained 4 s):
    the operator's decisions, each at its evaluation instant, are exactly what `rollguard
    backtest` makes of the same Prometheus data at the operator's own instants."""
    spec = fast_policy(window="10s")
    spec["triggers"] = [
        {"action": "Hold", "minScore": 0.3, "sustainedFor": "0s"},
        {"action": "Rollback", "minScore": 0.6, "sustainedFor": "4s"},
    ]
    scenario.setup(policy=spec)
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    healthy = time.time()
    # A window (10 s) and more of healthy history before the incident, so that the backtest,
    # which starts from nothing at --from, carries the operator's state by then.
    wait_for("15 s of healthy history", lambda: time.time() - healthy > 15, timeout=60)
    scenario.set_profile("errors")
    rollback = wait_for(
        "the Rollback decision",
        lambda: [
            d for d in scenario.decisions() if d["spec"]["recommended"]["action"] == "Rollback"
        ],
        operator=operator,
    )[0]
    live = sorted(_decision_row(d) for d in scenario.decisions())
    assert [row[3] for row in live] == ["Hold", "Rollback"], live
    end = datetime.fromisoformat(rollback["spec"]["evaluatedAt"].replace("Z", "+00:00"))

    policy = tmp_path / "policy.yaml"
    document = {"apiVersion": API_VERSION, "kind": "RollbackPolicy", "metadata": {"name": "p"}}
    policy.write_text(yaml.safe_dump({**document, "spec": spec}))
    argv = [
        "backtest", f"--policy={policy}", f"--prometheus={env.prometheus_url}",
        f"--namespace={scenario.ns}", "--deployment=fraud",
        f"--from={int(healthy)}", f"--to={end.timestamp():.3f}", "--step=1", "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    backtest = json.loads(capsys.readouterr().out)
    offline = [
        (a["time"], a["trigger"], a["wanted"], a["action"], a["requiresApproval"], a["score"])
        for a in backtest["actions"]
    ]
    assert offline == live, (offline, live, operator.tail())
