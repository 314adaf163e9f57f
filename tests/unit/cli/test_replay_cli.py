"""`rollguard replay`: a recorded decision file reaches the same recommendation (golden file)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from recorded_decision import recorded

from devenv.testing import reviewed_text
from rollguard.cli import main

GOLDEN = Path(__file__).parent.parent / "golden" / "decision.yaml"


def _decision_object() -> dict[str, object]:
    return {
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RollbackDecision",
        "metadata": {"name": "fraud-rollback-golden", "namespace": "ml"},
        "spec": recorded().wire(),
    }


def test_golden_decision_file_is_what_the_decision_core_records() -> None:
    text = yaml.safe_dump(_decision_object(), sort_keys=False)
    golden = reviewed_text(GOLDEN, text, update_switch="ROLLGUARD_UPDATE_GOLDEN")
    assert golden == text, "regenerate with ROLLGUARD_UPDATE_GOLDEN=1"


@pytest.mark.parametrize(("switch", "rewritten"), [("1", True), ("0", False), ("true", False)])
def test_only_the_switch_set_to_1_rewrites_a_golden_file(
    switch: str, rewritten: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = tmp_path / "golden.yaml"
    golden.write_text("reviewed\n")
    monkeypatch.setenv("ROLLGUARD_UPDATE_GOLDEN", switch)
    expected = reviewed_text(golden, "changed\n", update_switch="ROLLGUARD_UPDATE_GOLDEN")
    assert expected == golden.read_text() == ("changed\n" if rewritten else "reviewed\n")


def test_replay_of_the_golden_decision_reaches_the_same_recommendation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["replay", str(GOLDEN)]) == 0
    out = capsys.readouterr().out
    assert "same recommendation, bit for bit" in out


def test_replay_reports_a_tampered_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(GOLDEN.read_text())
    tampered = copy.deepcopy(doc)
    tampered["spec"]["signals"][0]["samples"]["values"][-1] *= 3.0
    path = tmp_path / "tampered.yaml"
    path.write_text(yaml.safe_dump(tampered))
    assert main(["replay", str(path)]) == 1
    assert "NOT reproduced" in capsys.readouterr().out


def test_replay_of_a_malformed_file_lists_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: RollbackDecision\nspec:\n  mode: Sometimes\n")
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    head, *problems = err.splitlines()
    assert head == f"error: {path}: {len(problems)} problems:"
    assert all(line.startswith("  spec.") for line in problems), err
    assert "  spec.mode: Input should be 'Enforce' or 'DryRun'" in problems
    assert "  spec.requiresApproval: Field required" in problems


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("impact", "categories", 0, "signals"), {"ghost": 1.0}, "unknown signal ghost"),
        (("evaluation", "confidence"), float("nan"), "evaluation.confidence"),
        (("evaluation", "interval"), "0s", "evaluation.interval"),
        (("signals", 0, "critical"), 0.0, "critical"),
    ],
)
def test_replay_of_an_edited_effective_policy_is_one_line_and_exit_2(
    path: tuple[str | int, ...],
    value: object,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = yaml.safe_load(GOLDEN.read_text())
    node = doc["spec"]["policy"]["effective"]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(doc))
    assert main(["replay", str(edited)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "spec.policy.effective" in err and message in err
