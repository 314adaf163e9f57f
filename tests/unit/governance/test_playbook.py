"""`rollguard playbook`: the Markdown playbook rendered from the effective policy, and a
playbook that changes whenever the policy does."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollguard.api.policy import Trigger
from rollguard.cli import main
from rollguard.files.loading import parse_policy
from rollguard.governance.playbook import PlaybookSource, curve_plot, render_playbook

FRAUD = Path(__file__).resolve().parents[3] / "examples" / "fraud" / "policy.yaml"


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(FRAUD.read_text())
    return doc


def _render(doc: dict[str, Any]) -> str:
    """The playbook with the hash held fixed, so only what the text says can differ."""
    descriptions = {s["name"]: s.get("description", "") for s in doc["spec"]["signals"]}
    source = PlaybookSource(name="p", namespace="ns", spec_hash="X", descriptions=descriptions)
    return render_playbook(parse_policy(doc, source="test"), source)


def test_fraud_playbook_states_the_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", str(FRAUD)]) == 0
    text = capsys.readouterr().out
    for expected in (
        "# Rollback playbook: fraud-high",
        "Risk tier **high**",
        "Every 15s, each signal is sampled over the last 2m; with fewer than 8 samples",
        "| `error_rate` | Share of scoring requests answered with a 5xx",
        "fine up to 0.005; between it and 0.01 nothing escalates",
        "fine down to 100; between it and 80 nothing escalates; below 80",
        "| revenue | 3 | 33% |",
        "| 0 | Rollback | 0.7 | 0s |",  # tier default curve
        "Alone: Pause, Hold, while the score is at most 0.5",
        "`alice`, `bob`",
        "Nobody answers within 10m: the action is executed anyway.",
        "at most 2 executed Rollback(s) and Pause(s) per 1h",
        "available within 5m",
    ):
        assert expected in text, expected


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        node: Any = doc["spec"]
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        last = keys[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return apply


CHANGES = {
    "riskTier": _set("riskTier", "critical"),
    "mode": _set("mode", "DryRun"),
    "evaluation.interval": _set("evaluation.interval", "20s"),
    "evaluation.window": _set("evaluation.window", "3m"),
    "evaluation.minSamples": _set("evaluation.minSamples", 9),
    "evaluation.confidence": _set("evaluation.confidence", 0.95),
    "signal objective": _set("signals.0.objective", {"max": 0.004}),
    "signal margin": _set("signals.0.margin", {"absolute": 0.006}),
    "signal critical": _set("signals.0.critical", 0.06),
    "signal onMissingData": _set("signals.0.onMissingData", "Breach"),
    "signal key": _set("signals.0.key", True),
    "signal description": _set("signals.0.description", "Something else."),
    "category weight": _set("impact.categories.0.weight", 4),
    "category sensitivity": _set("impact.categories.0.signals", {"error_rate": 0.5}),
    "triggers": _set("triggers", [{"action": "Rollback", "minScore": 0.6, "sustainedFor": "30s"}]),
    "clearBelow": _set("clearBelow", 0.08),
    "cooldown": _set("safety", {"cooldown": "15m"}),
    "budget": _set("safety", {"maxActionsPerWindow": {"count": 3, "window": "1h"}}),
    "autoApprove": _set("authorization.autoApprove.maxScore", 0.6),
    "autoApprove actions": _set("authorization.autoApprove.actions", ["Hold"]),
    "maxRevisionsBack": _set("authorization.autoApprove.maxRevisionsBack", 2),
    "approvers": _set("authorization.approvers", ["alice"]),
    "approvalTimeout": _set("authorization.approvalTimeout", "20m"),
    "onTimeout": _set("authorization.onTimeout", "Reject"),
    "rolloutTimeout": _set("validation", {"rolloutTimeout": "7m"}),
    "validation window": _set("validation", {"window": "4m"}),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_playbook_changes_whenever_the_policy_does(change: str) -> None:
    before = _render(_doc())
    doc = copy.deepcopy(_doc())
    CHANGES[change](doc)
    assert _render(doc) != before


def test_the_same_policy_renders_the_same_playbook() -> None:
    assert _render(_doc()) == _render(copy.deepcopy(_doc()))


def _plot_marks(plot: list[str]) -> dict[str, tuple[float, int]]:
    """Every mark inside the plot area (right of the score axis, above the dwell axis) → the
    score of its row and its column."""
    area = plot[: next(i for i, line in enumerate(plot) if line.lstrip().startswith("+"))]
    top = len(area) - 1
    marks: dict[str, tuple[float, int]] = {}
    for row, line in enumerate(area):
        for col, char in enumerate(line.partition("|")[2]):
            if char != " ":
                assert char not in marks, f"{char!r} is marked twice"
                marks[char] = (1 - row / top, col)
    return marks


def test_curve_plot_marks_each_point() -> None:
    triggers = [
        Trigger(action="Rollback", min_score=0.8, sustained_for="0s"),
        Trigger(action="Pause", min_score=0.5, sustained_for="1m"),
        Trigger(action="Hold", min_score=0.2, sustained_for="2m"),
    ]
    marks = _plot_marks(curve_plot(triggers))
    # each point by its number, and nothing else in the plot area
    assert set(marks) == {"0", "1", "2"}
    # at its score, up the axis
    for i, trigger in enumerate(triggers):
        assert marks[str(i)][0] == pytest.approx(trigger.min_score), i
    # at its dwell, across: at once on the score axis, longer dwell further right
    assert marks["0"][1] == 0 < marks["1"][1] < marks["2"][1]


def test_a_missing_policy_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "/no/such/policy.yaml", "--kubeconfig", "/no/such/kubeconfig"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
