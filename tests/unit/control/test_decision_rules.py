"""The decision rules that the operator and ``rollguard simulate --series`` once applied
differently, each pinned on a hand-built series: a Pause without a rollout becomes a Hold
that is no action, a Pause keeps the dwell timers and starts no cooldown, the window is
[t - window, t], approval and its timeout, the action budget's escalation, the re-offer of a
point blocked by cooldown, a Rollback at a Pause's minScore, policy edits, false rollbacks and
the escalations of ``simulate --series --json``.

Every test but the policy edits (operator only) runs both paths on the same series: the
operator's own control code (``operator_harness.run_operator``: ``run_cycle`` and the decision
lifecycle over an in-memory API server) and the simulator (``run_recorded``, or the CLI),
asserts the behaviour in each, then that the two decision timelines agree.

The numbers: one signal, error_rate, scored (v - 0.01) / 0.1, sampled every 15 s; the high
tier evaluates every 15 s over a 2 m window and needs 8 samples. A series that starts at a
constant bad level is first judged at T0 + 105 s (its 8th sample), at exactly that level.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import ERROR_RATE as SIGNAL
from operator_harness import OperatorRun, recorded_eval_times, run_operator

from rollguard.api import API_VERSION
from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.cli import main
from rollguard.control import reasons
from rollguard.core.revisions import REVISION_ANNOTATION
from rollguard.core.tiers import resolve
from rollguard.files.series import Series, parse_series
from rollguard.simulation.recorded import RecordedResult, run_recorded
from rollguard.simulation.virtual import Setting

T0 = 1_699_999_200  # a multiple of every interval: evaluation instants are
STEP = 15
FIRST_JUDGED = 105  # a series bad from T0 is first judged here: its 8th sample (minSamples)
VALIDATION_SEES = 135  # validation judges from window (2m) + scrape interval after a rollback

BAD = 0.09  # score 0.8
GOOD = 0.0  # score 0

# (seconds after T0, trigger index, recommended action, requires approval, executed, phase)
Row = tuple[float, int, str, bool, bool, str]


def _policy(*triggers: tuple[str, float, str], **fields: Any) -> dict[str, Any]:
    """A high-tier RollbackPolicy spec on error_rate with ``triggers`` (action, minScore,
    sustainedFor) and the top-level ``fields`` given."""
    return {
        "riskTier": "high",
        "signals": [SIGNAL],
        "impact": {"categories": [{"name": "revenue", "weight": 1, "signals": {"error_rate": 1}}]},
        "triggers": [{"action": a, "minScore": m, "sustainedFor": d} for a, m, d in triggers],
        **fields,
    }


def _auto(*actions: str, **more: Any) -> dict[str, Any]:
    """authorization: ``actions`` auto-approved at any score, then ``more``."""
    return {"autoApprove": {"maxScore": 1.0, "actions": list(actions), **more}}


def _csv(segments: Iterable[tuple[float, int]], regression: set[int] | None = None) -> str:
    """error_rate every STEP seconds from T0: ``count`` samples at ``value`` per segment; with
    ``regression``, a ground-truth column labelling those sample indices."""
    values = [value for value, count in segments for _ in range(count)]
    head = "timestamp,signal,value" + (",regression" if regression is not None else "")
    rows = [
        f"{T0 + k * STEP},error_rate,{v!r}"
        + (f",{int(k in regression)}" if regression is not None else "")
        for k, v in enumerate(values)
    ]
    return head + "\n" + "\n".join(rows) + "\n"


def _series(*segments: tuple[float, int], regression: set[int] | None = None) -> Series:
    """The series through the CSV parser ``simulate --series`` uses."""
    text = _csv(segments, regression)
    return parse_series(text, source="series.csv", json_format=False, signals=["error_rate"])


def _effective(policy: Mapping[str, Any]) -> EffectivePolicy:
    return resolve(RollbackPolicySpec.model_validate(policy))


def _simulate(policy: Mapping[str, Any], series: Series, **setting: Any) -> RecordedResult:
    """``simulate --series`` on ``series``, with the operator's scrape interval."""
    return run_recorded(
        _effective(policy), series, setting=Setting(scrape_interval=series.step, **setting)
    )


def _after_t0(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - T0


def _operated(run: OperatorRun) -> list[Row]:
    return [
        (d.time - T0, d.trigger, d.action, d.requires_approval, d.executed, d.phase)
        for d in run.decisions
    ]


def _simulated(result: RecordedResult) -> list[Row]:
    return [
        (_after_t0(a.time), a.trigger, a.action, a.requires_approval, a.executed, a.phase)
        for a in result.actions
    ]


def _escalated(run: OperatorRun) -> list[float]:
    """When the ModelDeployment escalated to humans (budget spent, rollback failed)."""
    return [time - T0 for time, _ in run.escalations]


def _stops(result: RecordedResult) -> list[tuple[float, str]]:
    """The simulator's escalations that stop automatic actions (not a cooldown's request)."""
    return [(_after_t0(e.time), e.reason) for e in result.escalations if e.reason != "cooldown"]


def _trigger(run: OperatorRun, decision: int) -> dict[str, Any]:
    trigger: dict[str, Any] = run.stored_decisions[decision]["spec"]["trigger"]
    return trigger


def _agree(run: OperatorRun, result: RecordedResult) -> None:
    assert _simulated(result) == _operated(run)
    assert [t for t, _ in _stops(result)] == _escalated(run)


# -- a Pause without a rollout -------------------------------------------------------------


def test_a_pause_without_a_rollout_holds_then_the_rollback_fires_unblocked() -> None:
    policy = _policy(
        ("Pause", 0.3, "0s"),
        ("Rollback", 0.6, "2m"),
        safety={"cooldown": "20m"},
        authorization=_auto("Rollback"),
    )
    series = _series((BAD, 60))
    rollback_at = FIRST_JUDGED + 120  # the score crossed 0.6 at FIRST_JUDGED, sustained 2m
    expected: list[Row] = [
        (FIRST_JUDGED, 0, "Hold", False, False, "Succeeded"),
        (rollback_at, 1, "Rollback", False, True, "Failed"),  # recorded data stays bad
    ]

    run = run_operator(policy, series)
    assert _operated(run) == expected
    assert _after_t0(_trigger(run, 1)["aboveSince"]) == FIRST_JUDGED
    # The Hold spent no budget and started no cooldown: the Rollback saw neither.
    before = run.stored_decisions[1]["spec"]["stateBefore"]
    assert (before.get("actionTimes", []), before.get("changedAt")) == ([], None)
    assert run.model_deployment["status"]["guard"]["actionTimes"] == [T0 + rollback_at]
    assert _escalated(run) == [rollback_at + VALIDATION_SEES]

    result = _simulate(policy, series)
    assert [(_after_t0(a.time), a.action) for a in result.actions] == [
        (FIRST_JUDGED, "Hold"),
        (rollback_at, "Rollback"),
    ]
    assert [(_after_t0(e.time), e.reason) for e in result.escalations] == [
        (rollback_at + VALIDATION_SEES, "validation")  # no cooldown: the Hold was no action
    ]
    assert [(a.wanted, a.blocked) for a in result.actions] == [("Pause", None), ("Rollback", None)]
    assert _simulated(result) == expected
    _agree(run, result)


# -- dwell after an executed Pause ---------------------------------------------------------


def test_an_executed_pause_keeps_dwell_so_the_rollback_fires_at_crossing_plus_dwell() -> None:
    policy = _policy(
        ("Pause", 0.3, "0s"),
        ("Rollback", 0.6, "2m"),
        safety={"cooldown": "0s"},
        authorization=_auto("Pause", "Rollback"),
    )
    series = _series((BAD, 60))
    rollback_at = FIRST_JUDGED + 120
    expected: list[Row] = [
        (FIRST_JUDGED, 0, "Pause", False, True, "Succeeded"),
        (rollback_at, 1, "Rollback", False, True, "Failed"),
    ]

    run = run_operator(policy, series, rollout_in_progress=True)
    assert _operated(run) == expected
    assert _after_t0(_trigger(run, 1)["aboveSince"]) == FIRST_JUDGED
    # Only the Rollback reset the dwell timers: the evaluation after it restarted them.
    after = T0 + rollback_at + STEP
    assert run.model_deployment["status"]["guard"]["aboveSince"] == {"0": after, "1": after}
    # The rollback resumed the paused rollout, so it completed and validation judged it.
    assert [p.time - T0 for p in run.deployment_patches] == [FIRST_JUDGED, rollback_at]
    assert run.deployment["spec"]["paused"] is False
    assert run.deployment["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert _escalated(run) == [rollback_at + VALIDATION_SEES]

    result = _simulate(policy, series, rollout_in_progress=True)
    assert _simulated(result) == expected
    assert [_after_t0(a.executed_at) for a in result.actions if a.executed_at] == [
        FIRST_JUDGED,
        rollback_at,
    ]
    _agree(run, result)


# -- the window ----------------------------------------------------------------------------


def test_windows_hold_window_over_step_plus_one_samples_so_that_min_samples_detects() -> None:
    # 2m / 15s + 1 = 9 samples: only a window with both ends included ever holds them.
    policy = _policy(
        ("Rollback", 0.5, "0s"), evaluation={"minSamples": 9}, authorization=_auto("Rollback")
    )
    series = _series((BAD, 40))
    detected = 8 * STEP  # the 9th sample
    expected: list[Row] = [(detected, 0, "Rollback", False, True, "Failed")]

    run = run_operator(policy, series)
    assert _operated(run) == expected
    assert {q.end - q.start for q in run.queries} == {120}

    result = _simulate(policy, series)
    assert [_after_t0(a.time) for a in result.actions] == [detected]
    assert _simulated(result) == expected
    _agree(run, result)


# -- approval ------------------------------------------------------------------------------

NEEDS_APPROVAL = _policy(
    ("Rollback", 0.5, "0s"),
    authorization={**_auto("Pause"), "approvalTimeout": "2m", "onTimeout": "Reject"},
)


def test_a_rollback_outside_auto_approval_that_nobody_answers_expires_unexecuted() -> None:
    series = _series((BAD, 40), regression=set())  # ground truth: no regression labelled
    expected: list[Row] = [(FIRST_JUDGED, 0, "Rollback", True, False, "Expired")]

    run = run_operator(NEEDS_APPROVAL, series, approve_after=None)
    assert _operated(run) == expected
    expired = [e["time"] - T0 for e in run.events if e["reason"] == reasons.APPROVAL_EXPIRED]
    assert expired == [FIRST_JUDGED + 120]  # approvalTimeout 2m, onTimeout Reject
    assert run.deployment_patches == []

    result = _simulate(NEEDS_APPROVAL, series, approve_after=None)
    # Never executed, so not a false rollback although no regression is labelled.
    assert (result.false_rollbacks, [a.false_rollback for a in result.actions]) == (0, [None])
    [action] = result.actions
    assert (action.action, action.requires_approval, action.executed, action.phase) == (
        "Rollback",
        True,
        False,
        "Expired",
    )
    assert action.executed_at is None
    assert result.escalations == []
    _agree(run, result)


@pytest.mark.parametrize("approve_after", [60.0, 50.0])
def test_an_approval_executes_the_rollback_at_the_first_evaluation_at_or_after_it(
    approve_after: float,
) -> None:
    series = _series((BAD, 40))
    executed_at = FIRST_JUDGED + 60  # evaluations every 15 s: 50 s is acted on at 60 s
    expected: list[Row] = [(FIRST_JUDGED, 0, "Rollback", True, True, "Failed")]

    run = run_operator(NEEDS_APPROVAL, series, approve_after=approve_after)
    assert _operated(run) == expected
    assert [p.time - T0 for p in run.deployment_patches] == [executed_at]
    assert _escalated(run) == [executed_at + VALIDATION_SEES]

    result = _simulate(NEEDS_APPROVAL, series, approve_after=approve_after)
    assert [(_after_t0(e.time), e.reason) for e in result.escalations] == [
        (executed_at + VALIDATION_SEES, "validation")
    ]
    assert [_after_t0(a.executed_at) for a in result.actions if a.executed_at] == [executed_at]
    assert _simulated(result) == expected
    _agree(run, result)


# -- the action budget ---------------------------------------------------------------------


def test_a_fire_beyond_the_budget_needs_approval_escalates_and_stops_later_decisions() -> None:
    policy = _policy(
        ("Rollback", 0.5, "0s"),
        safety={"cooldown": "0s", "maxActionsPerWindow": {"count": 1, "window": "10m"}},
        authorization={**_auto("Rollback", maxRevisionsBack=2), "approvalTimeout": "2m"},
    )
    # Three episodes. The first rollback's validation sees the recovery and succeeds; the
    # second episode's fire finds the budget spent and its decision expires (2m); the third
    # starts after the budget window (10m) has passed, so only the escalation keeps it from
    # acting.
    series = _series((BAD, 8), (GOOD, 21), (BAD, 8), (GOOD, 40), (BAD, 12))
    budget_at = 465  # the second episode's third bad sample (the tier's recentSamples 3)
    expected: list[Row] = [
        (FIRST_JUDGED, 0, "Rollback", False, True, "Succeeded"),
        (budget_at, 0, "Rollback", True, False, "Expired"),
    ]

    run = run_operator(policy, series, revisions=3)
    assert _operated(run) == expected
    [(_, why)] = run.escalations
    assert _escalated(run) == [budget_at] and why.startswith("action budget spent")
    # It went on evaluating through the third episode, bad at the end, and decided nothing.
    status = run.model_deployment["status"]
    assert run.evaluations == len(recorded_eval_times(_effective(policy), series))
    assert (status["phase"], status["lastEvaluation"]["score"] > 0.5) == ("Escalated", True)

    result = _simulate(policy, series, revisions=3)
    assert [(_after_t0(a.time), a.action) for a in result.actions] == [
        (FIRST_JUDGED, "Rollback"),
        (budget_at, "Rollback"),
    ]
    assert _simulated(result) == expected
    assert [(_after_t0(e.time), e.reason) for e in result.escalations] == [(budget_at, "budget")]
    _agree(run, result)


# -- cooldown ------------------------------------------------------------------------------


def test_a_rollback_after_an_executed_pause_is_not_blocked_by_cooldown_and_executes() -> None:
    policy = _policy(
        ("Pause", 0.3, "0s"),
        ("Rollback", 0.6, "2m"),
        safety={"cooldown": "20m"},
        authorization=_auto("Pause", "Rollback"),
    )
    series = _series((BAD, 60))
    rollback_at = FIRST_JUDGED + 120
    expected: list[Row] = [
        (FIRST_JUDGED, 0, "Pause", False, True, "Succeeded"),
        (rollback_at, 1, "Rollback", False, True, "Failed"),
    ]

    run = run_operator(policy, series, rollout_in_progress=True)
    assert _operated(run) == expected
    assert "no cooldown" in run.stored_decisions[1]["spec"]["approvalReason"]

    result = _simulate(policy, series, rollout_in_progress=True)
    assert [(a.action, a.blocked, a.executed) for a in result.actions] == [
        ("Pause", None, True),
        ("Rollback", None, True),
    ]
    assert _simulated(result) == expected
    assert [e.reason for e in result.escalations] == ["validation"]
    _agree(run, result)


# The first rollback succeeds (the series recovers during its validation); the second
# episode fires inside the 10m cooldown and keeps on past it.
COOLDOWN = _policy(
    ("Rollback", 0.5, "0s"),
    safety={"cooldown": "10m", "maxActionsPerWindow": {"count": 5, "window": "1h"}},
    authorization={**_auto("Rollback", maxRevisionsBack=2), "approvalTimeout": "2m"},
)
FIRST_ROLLBACK = FIRST_JUDGED
BLOCKED_AT = 465  # the second episode's first fire, its third bad sample (recentSamples 3)
COOLDOWN_ENDS = FIRST_ROLLBACK + 600


def test_a_rollback_blocked_by_cooldown_and_expired_is_offered_again_at_cooldown_end() -> None:
    series = _series((BAD, 8), (GOOD, 21), (BAD, 40))
    expected: list[Row] = [
        (FIRST_ROLLBACK, 0, "Rollback", False, True, "Succeeded"),
        (BLOCKED_AT, 0, "Rollback", True, False, "Expired"),  # approvalTimeout 2m, unanswered
        (COOLDOWN_ENDS, 0, "Rollback", False, True, "Failed"),
    ]

    run = run_operator(COOLDOWN, series, revisions=3)
    assert _operated(run) == expected
    why = run.stored_decisions[1]["spec"]["approvalReason"]
    assert "cooldown: the last revision change was" in why
    assert [p.time - T0 for p in run.deployment_patches] == [FIRST_ROLLBACK, COOLDOWN_ENDS]

    result = _simulate(COOLDOWN, series, revisions=3)
    assert [(_after_t0(a.time), a.blocked) for a in result.actions] == [
        (FIRST_ROLLBACK, None),
        (BLOCKED_AT, "cooldown"),
        (COOLDOWN_ENDS, None),
    ]
    assert _simulated(result) == expected
    _agree(run, result)


def test_a_rollback_held_for_want_of_a_target_during_cooldown_is_one_hold_and_no_escalation() -> (
    None
):
    # Two revisions: after the first rollback no approved older revision is left, so the
    # second episode's Rollback falls back to a Hold. A Hold is never blocked: one decision,
    # no human asked, nothing offered again when the cooldown ends.
    series = _series((BAD, 8), (GOOD, 21), (BAD, 40))
    expected: list[Row] = [
        (FIRST_ROLLBACK, 0, "Rollback", False, True, "Succeeded"),
        (BLOCKED_AT, 0, "Hold", False, False, "Succeeded"),
    ]

    run = run_operator(COOLDOWN, series, revisions=2)
    assert _operated(run) == expected
    assert [p.time - T0 for p in run.deployment_patches] == [FIRST_ROLLBACK]

    result = _simulate(COOLDOWN, series, revisions=2)
    assert _simulated(result) == expected
    assert result.escalations == []
    _agree(run, result)


# -- a Rollback at a Pause's minScore ------------------------------------------------------


def test_a_rollback_at_the_same_min_score_as_a_pause_fires_after_its_own_dwell() -> None:
    policy = _policy(("Pause", 0.5, "0s"), ("Rollback", 0.5, "5m"), authorization=_auto("Rollback"))
    series = _series((BAD, 50))
    rollback_at = FIRST_JUDGED + 300
    expected: list[Row] = [
        (FIRST_JUDGED, 0, "Hold", False, False, "Succeeded"),
        (rollback_at, 1, "Rollback", False, True, "Failed"),
    ]

    run = run_operator(policy, series)
    assert _operated(run) == expected

    result = _simulate(policy, series)
    assert [(_after_t0(a.time), a.wanted) for a in result.actions] == [
        (FIRST_JUDGED, "Pause"),
        (rollback_at, "Rollback"),
    ]
    assert _simulated(result) == expected
    _agree(run, result)


# -- policy edits (the operator only: the simulator runs one policy) -----------------------

EDITED_AT = FIRST_JUDGED + 60  # after the Hold, halfway through the Rollback's 2m dwell
EDITABLE = _policy(("Pause", 0.3, "0s"), ("Rollback", 0.6, "2m"), authorization=_auto("Rollback"))


def _edited(edit: Mapping[str, Any]) -> Callable[[float], Mapping[str, Any]]:
    """EDITABLE with ``edit`` applied from EDITED_AT on."""

    def policy_at(now: float) -> Mapping[str, Any]:
        return {**EDITABLE, **edit} if now >= T0 + EDITED_AT else EDITABLE

    return policy_at


def test_an_approvers_only_edit_keeps_dwell_and_episode_and_decides_nothing_twice() -> None:
    edit = {"authorization": {**EDITABLE["authorization"], "approvers": ["alice"]}}
    run = run_operator(EDITABLE, _series((BAD, 40)), policy_at=_edited(edit))
    assert _operated(run) == [
        (FIRST_JUDGED, 0, "Hold", False, False, "Succeeded"),
        (FIRST_JUDGED + 120, 1, "Rollback", False, True, "Failed"),  # dwell from the crossing
    ]
    assert _after_t0(_trigger(run, 1)["aboveSince"]) == FIRST_JUDGED
    # The Rollback was decided under the edited policy.
    snapshot = run.stored_decisions[1]["spec"]["policy"]
    assert snapshot["generation"] == 2
    assert snapshot["effective"]["authorization"]["approvers"] == ["alice"]


def test_a_judging_edit_restarts_dwell_without_refiring_a_point_of_the_episode() -> None:
    triggers = [dict(t) for t in EDITABLE["triggers"]]
    triggers[1]["sustainedFor"] = "3m"
    run = run_operator(EDITABLE, _series((BAD, 50)), policy_at=_edited({"triggers": triggers}))
    assert _operated(run) == [
        (FIRST_JUDGED, 0, "Hold", False, False, "Succeeded"),  # not decided again at the edit
        (EDITED_AT + 180, 1, "Rollback", False, True, "Failed"),  # dwell from the edit, 3m
    ]
    trigger = _trigger(run, 1)
    assert (_after_t0(trigger["aboveSince"]), trigger["sustainedFor"]) == (EDITED_AT, "3m")


# -- false rollbacks and escalations in simulate --series --json ---------------------------


def _cli_json(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    policy: Mapping[str, Any],
    csv: str,
    *args: str,
) -> dict[str, Any]:
    """``rollguard simulate --policy P --series S --json ARGS``: its parsed output."""
    policy_file, series_file = tmp_path / "policy.yaml", tmp_path / "series.csv"
    document = {
        "apiVersion": API_VERSION,
        "kind": "RollbackPolicy",
        "metadata": {"name": "policy", "namespace": "ml"},
        "spec": dict(policy),
    }
    policy_file.write_text(yaml.safe_dump(document))
    series_file.write_text(csv)
    argv = ["simulate", "--policy", str(policy_file), "--series", str(series_file), "--json"]
    code = main([*argv, *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def _cli_rows(doc: Mapping[str, Any]) -> list[Row]:
    return [
        (
            _after_t0(a["time"]),
            a["trigger"],
            a["action"],
            a["requiresApproval"],
            a["executed"],
            a["phase"],
        )
        for a in doc["actions"]
    ]


def test_a_rollback_is_false_only_when_no_regression_is_labelled_at_or_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _policy(("Rollback", 0.5, "0s"), authorization=_auto("Rollback"))
    segments = [(BAD, 40)]
    expected: list[Row] = [(FIRST_JUDGED, 0, "Rollback", False, True, "Failed")]
    run = run_operator(policy, _series(*segments))
    assert _operated(run) == expected
    rollback = FIRST_JUDGED // STEP  # the sample index of the rollback's evaluation

    labels = {
        "from the onset, over before it": set(range(rollback - 3)),
        "at it only": {rollback},
        "only after it": set(range(rollback + 1, 40)),
    }
    docs = {
        case: _cli_json(tmp_path, capsys, policy, _csv(segments, regression=labelled))
        for case, labelled in labels.items()
    }
    judged = {
        case: (
            [(_after_t0(a["time"]), a["action"], a["falseRollback"]) for a in doc["actions"]],
            doc["falseRollbacks"],
        )
        for case, doc in docs.items()
    }
    assert judged == {
        "from the onset, over before it": ([(FIRST_JUDGED, "Rollback", False)], 0),
        "at it only": ([(FIRST_JUDGED, "Rollback", False)], 0),
        "only after it": ([(FIRST_JUDGED, "Rollback", True)], 1),
    }
    assert [_cli_rows(doc) for doc in docs.values()] == [expected] * len(docs)


@pytest.mark.parametrize(
    ("segments", "budget", "expected", "escalations"),
    [
        pytest.param(
            # The re-offered rollback executes; recorded data stays bad: validation fails.
            [(BAD, 8), (GOOD, 21), (BAD, 40)],
            5,
            [
                (FIRST_ROLLBACK, 0, "Rollback", False, True, "Succeeded"),
                (BLOCKED_AT, 0, "Rollback", True, False, "Expired"),
                (COOLDOWN_ENDS, 0, "Rollback", False, True, "Failed"),
            ],
            [(BLOCKED_AT, "cooldown"), (COOLDOWN_ENDS + VALIDATION_SEES, "validation")],
            id="cooldown-then-validation",
        ),
        pytest.param(
            # The re-offered rollback succeeds; the next episode finds the budget (2/h) spent.
            [(BAD, 8), (GOOD, 21), (BAD, 19), (GOOD, 21), (BAD, 20)],
            2,
            [
                (FIRST_ROLLBACK, 0, "Rollback", False, True, "Succeeded"),
                (BLOCKED_AT, 0, "Rollback", True, False, "Expired"),
                (COOLDOWN_ENDS, 0, "Rollback", False, True, "Succeeded"),
                (1065, 0, "Rollback", True, False, "Expired"),
            ],
            [(BLOCKED_AT, "cooldown"), (1065, "budget")],
            id="cooldown-then-budget",
        ),
    ],
)
def test_simulate_series_json_lists_escalations_in_time_order_with_their_reason(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    segments: list[tuple[float, int]],
    budget: int,
    expected: list[Row],
    escalations: list[tuple[float, str]],
) -> None:
    safety = {**COOLDOWN["safety"], "maxActionsPerWindow": {"count": budget, "window": "1h"}}
    policy = {**COOLDOWN, "safety": safety}
    _, (stop_at, reason) = escalations

    run = run_operator(policy, _series(*segments), revisions=3)
    assert _operated(run) == expected
    assert "cooldown: " in run.stored_decisions[1]["spec"]["approvalReason"]  # at BLOCKED_AT
    [(_, why)] = run.escalations
    assert _escalated(run) == [stop_at]
    assert why.startswith("action budget spent" if reason == "budget" else "rollback ")

    doc = _cli_json(
        tmp_path, capsys, policy, _csv(segments), "--revisions", "3", "--approve-after", "never"
    )
    assert [(_after_t0(e["time"]), e["action"], e["reason"]) for e in doc["escalations"]] == [
        (t, "Rollback", r) for t, r in escalations
    ]
    assert _cli_rows(doc) == _operated(run)
