"""The command line: errors with exit code 2 (one line, or one per problem of a file),
outputs, --check, crds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from rollguard.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"
POLICY = EXAMPLES / "policy.yaml"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, starts: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {starts}"), err


def edited_policy(tmp_path: Path, edit: dict[str, object]) -> Path:
    doc = yaml.safe_load(POLICY.read_text())
    doc["spec"]["signals"][0].update(edit)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "starts"),
    [
        (
            {"critical": "high"},
            "policy.yaml: spec.signals[0].critical: Input should be a valid number",
        ),
        (
            {"critical": 0.012},
            "policy.yaml: spec.signals[0]: signal error_rate: critical (0.012) must be above",
        ),
        ({"objectiv": {"max": 1}}, "policy.yaml: spec.signals[0].objectiv: unknown field"),
    ],
)
def test_invalid_policy_is_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, object], starts: str
) -> None:
    path = edited_policy(tmp_path, edit)
    code, _, err = run(["simulate", "--policy", str(path), "--scenarios", str(EXAMPLES)], capsys)
    assert_one_line_error(code, err, starts)


def test_a_policy_with_three_problems_lists_each_field_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(POLICY.read_text())
    doc["spec"]["evaluation"]["minSamples"] = "ten"
    doc["spec"]["signals"][0]["critical"] = "high"
    doc["spec"]["signals"][1]["objectiv"] = {"max": 1}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run(["simulate", "--policy", str(path), "--scenarios", str(EXAMPLES)], capsys)
    assert code == 2
    assert "Traceback" not in err
    assert err.splitlines() == [
        "error: policy.yaml: 3 problems:",
        "  spec.evaluation.minSamples: Input should be a valid integer, unable to parse string "
        "as an integer",
        "  spec.signals[0].critical: Input should be a valid number, unable to parse string as "
        "a number",
        "  spec.signals[1].objectiv: unknown field",
    ]


def test_policy_invalid_only_with_tier_defaults_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(POLICY.read_text())
    doc["spec"]["clearBelow"] = 0.7
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run(["simulate", "--policy", str(path), "--scenarios", str(EXAMPLES)], capsys)
    assert_one_line_error(code, err, "policy.yaml: spec.triggers[0].minScore: 0.6 must be above")


def test_scenario_with_unknown_signal_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load((EXAMPLES / "error-burst.yaml").read_text())
    doc["signals"]["cpu"] = doc["signals"]["error_rate"]
    path = tmp_path / "burst.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run(["simulate", "--policy", str(POLICY), "--scenarios", str(path)], capsys)
    assert_one_line_error(code, err, "burst.yaml: signals.cpu: not a signal of the policy")


def test_malformed_series_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "series.csv"
    path.write_text("timestamp,signal,value\n" + "0,error_rate,0.1\n" * 1 + "15,error_rate,x\n")
    code, _, err = run(["simulate", "--policy", str(POLICY), "--series", str(path)], capsys)
    assert_one_line_error(code, err, "series.csv line 3: value: 'x' is not a number")


@pytest.mark.parametrize(
    ("argv", "starts"),
    [
        (["simulate", "--policy", "nope.yaml", "--scenarios", "x"], "nope.yaml: cannot read"),
        (["simulate", "--policy", str(POLICY)], "rollguard simulate: one of the arguments"),
        (
            ["simulate", "--policy", str(POLICY), "--scenarios", str(EXAMPLES), "--seeds", "0"],
            "rollguard simulate: argument --seeds: must be at least 1",
        ),
        (
            ["simulate", "--policy", str(POLICY), "--scenarios", str(EXAMPLES), "--png"],
            "--png: needs --out",
        ),
        (["frobnicate"], "rollguard: argument COMMAND: invalid choice"),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], starts: str
) -> None:
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, starts)


def test_simulate_writes_reports_and_check_detects_a_worse_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    shutil.copy(EXAMPLES / "error-burst.yaml", scenarios)
    out = tmp_path / "out"
    args = [
        "simulate",
        "--policy",
        str(POLICY),
        "--scenarios",
        str(scenarios),
        "--seeds",
        "8",
        "--resamples",
        "100",
    ]
    code, stdout, _ = run([*args, "--out", str(out), "--png"], capsys)
    assert code == 0
    assert "| error-burst |" in stdout
    assert (out / "simulate.md").read_text().startswith("# rollguard simulate")
    assert (out / "error-burst.png").read_bytes()[:4] == b"\x89PNG"
    baseline = out / "simulate.json"
    assert json.loads(baseline.read_text())["seeds"] == 8

    code, _, err = run([*args, "--check", str(baseline)], capsys)
    assert code == 0 and "not worse" in err

    # A policy that waits 10 minutes before acting detects the burst much later.
    doc = yaml.safe_load(POLICY.read_text())
    for point in doc["spec"]["triggers"]:
        point["sustainedFor"] = "10m"
    slow = tmp_path / "slow.yaml"
    slow.write_text(yaml.safe_dump(doc))
    code, _, err = run(
        ["simulate", "--policy", str(slow), *args[3:], "--check", str(baseline)], capsys
    )
    assert code == 1
    assert "error-burst: median detection time rose" in err


def test_simulate_series_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["timestamp,signal,value,regression"]
    for k in range(120):
        bad = int(k >= 40)
        lines += [
            f"{15 * k},error_rate,{0.002 + 0.08 * bad},{bad}",
            f"{15 * k},latency_p99,0.15,{bad}",
            f"{15 * k},revenue_per_minute,240,{bad}",
        ]
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    code, stdout, _ = run(
        ["simulate", "--policy", str(POLICY), "--series", str(path), "--json"], capsys
    )
    assert code == 0
    doc = json.loads(stdout)
    assert doc["actions"][0]["action"] == "Rollback"
    assert doc["actions"][0]["falseRollback"] is False
    assert doc["detectionDelaySeconds"] > 0


def test_crds_writes_the_definitions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["crds", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert len(list(tmp_path.glob("*.yaml"))) == 3
    assert "Wrote" in stdout
