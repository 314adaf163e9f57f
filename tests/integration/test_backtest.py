"""`rollguard backtest` runs a policy over a deployment's history in the real Prometheus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from operator_fixtures import FAST_POLICY, wait_for

from devenv.launcher import EnvInfo
from devenv.testing import deployment_manifest
from rollguard.cli import main

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
    wait_for("40 s of history", lambda: time.time() - started > 40, timeout=60)

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
