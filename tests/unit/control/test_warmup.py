"""Warm-up through the operator's cycle and the in-memory operator: the cycle passes each
member's ``born`` (its current ReplicaSet's creationTimestamp, or the rollback that made it
current), records it in the decision so that replay reproduces a decision made during warm-up,
and ``simulate --series`` decides the same with the same ``born``."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
from operator_harness import run_operator

from rollguard.api.decision import RollbackDecisionSpec, Samples
from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.core.engine import Measurements
from rollguard.core.replay import replay
from rollguard.core.tiers import resolve
from rollguard.files.series import Series, parse_series
from rollguard.simulation.recorded import run_recorded
from rollguard.simulation.virtual import Setting, VirtualMember

T0 = 1_699_999_200  # a multiple of every interval: evaluation instants are
STEP = 15
WINDOW = 120  # the high tier's window; minSamples 8

# error_rate regresses from the start; accuracy, scoped to the revision and judged Breach when
# missing, has no samples at all. Either signal alone scores 0.5.
POLICY: dict[str, Any] = {
    "riskTier": "high",
    "signals": [
        {
            "name": "error_rate",
            "query": 'sig_error_rate{namespace="$namespace", deployment="$deployment"}',
            "objective": {"max": 0.01},
            "margin": {"absolute": 0.0},
            "critical": 0.11,
        },
        {
            "name": "accuracy",
            "query": 'sig_accuracy{deployment="$deployment", revision="$revision"}',
            "objective": {"min": 0.9},
            "margin": {"absolute": 0.0},
            "critical": 0.8,
            "onMissingData": "Breach",
        },
    ],
    "impact": {
        "categories": [
            {"name": "revenue", "weight": 1, "signals": {"error_rate": 1}},
            {"name": "market", "weight": 1, "signals": {"accuracy": 1}},
        ]
    },
    "triggers": [{"action": "Rollback", "minScore": 0.3, "sustainedFor": "0s"}],
    "authorization": {
        "autoApprove": {"maxScore": 1.0, "actions": ["Rollback"], "maxRevisionsBack": 1}
    },
}


def _series(points: int = 41) -> Series:
    """error_rate at 0.2 every STEP from T0; accuracy only at the very last point."""
    rows = [f"{T0 + k * STEP},error_rate,0.2" for k in range(points)]
    rows.append(f"{T0 + (points - 1) * STEP},accuracy,0.95")
    text = "timestamp,signal,value\n" + "\n".join(rows) + "\n"
    return parse_series(
        text, source="warmup.csv", json_format=False, signals=["error_rate", "accuracy"]
    )


def _effective() -> EffectivePolicy:
    return resolve(RollbackPolicySpec.model_validate(POLICY))


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_the_cycle_reports_a_missing_series_of_a_new_revision_as_warming_up() -> None:
    run = run_operator(POLICY, _series(), created=T0, eval_times=[T0 + 60.0])
    assert run.evaluations == 1 and run.decisions == []
    status = run.model_deployment["status"]
    error_rate, accuracy = status["lastEvaluation"]["signals"]
    assert (accuracy["status"], accuracy["warmingUp"], accuracy["samples"]) == (
        "Inconclusive",
        True,
        0,
    )
    assert "warming up" in accuracy["message"]
    assert error_rate["warmingUp"] is True  # 5 samples < minSamples 8, all since the rollout
    assert status["phase"] == "Inconclusive"


def test_the_cycle_decides_during_warm_up_on_the_judged_signal_and_replay_agrees() -> None:
    series = _series()
    run = run_operator(POLICY, series, created=T0)
    first = run.decisions[0]
    # error_rate has its 8 samples at T0 + 105 s; accuracy is still warming up (born T0), so
    # the score is error_rate's 0.5, not 1.
    assert first.time == T0 + 105.0 and first.score == 0.5
    spec = RollbackDecisionSpec.model_validate(run.stored_decisions[0]["spec"])
    assert spec.revisions.born == T0
    accuracy = spec.signals[1]
    assert (accuracy.status, accuracy.warming_up, accuracy.severity) == ("Inconclusive", True, 0.0)
    assert spec.signals[0].samples.step == STEP
    result = replay(spec)
    assert result.same, result.differences
    # simulate --series with the same rollout start makes the same first decision.
    simulated = run_recorded(_effective(), series, setting=Setting(born=T0, scrape_interval=STEP))
    action = simulated.actions[0]
    assert (_time(action.time), action.trigger, action.action) == (first.time, 0, first.action)


def test_without_a_known_rollout_start_missing_data_is_a_breach_in_both() -> None:
    series = _series()
    run = run_operator(POLICY, series)
    first = run.decisions[0]
    assert first.time == T0 + STEP and first.score == 0.5  # accuracy's Breach alone
    spec = RollbackDecisionSpec.model_validate(run.stored_decisions[0]["spec"])
    assert spec.revisions.born is None and spec.signals[1].status == "Breach"
    simulated = run_recorded(_effective(), series, setting=Setting(scrape_interval=STEP))
    assert _time(simulated.actions[0].time) == first.time


def _window(error_rate: float, accuracy: float | None) -> tuple[Measurements, list[Samples | None]]:
    n = WINDOW // STEP + 1
    values = np.array([[[error_rate] * n, [accuracy or 0.0] * n]])
    mask = np.array([[[True] * n, [accuracy is not None] * n]])
    samples: list[Samples | None] = [
        Samples(timestamps=[0.0] * n, values=[error_rate] * n),
        Samples(timestamps=[], values=[])
        if accuracy is None
        else Samples(timestamps=[0.0] * n, values=[accuracy] * n),
    ]
    return Measurements(values, mask, np.ones((1, 2), dtype=np.bool_)), samples


def test_the_in_memory_operator_warms_up_again_after_its_rollback() -> None:
    member = VirtualMember(_effective(), Setting(revisions=2, scrape_interval=STEP))
    queries = ["q1", "q2"]
    measured, samples = _window(0.2, 0.95)
    member.evaluate(measured, now=T0, samples=samples, queries=queries)
    [decision] = member.decisions
    assert decision.action == "Rollback" and decision.executed_at == T0
    # The rolled-back-to revision's $revision series has no samples yet.
    measured, samples = _window(0.0, None)
    young = member.evaluate(measured, now=T0 + 60.0, samples=samples, queries=queries)
    assert bool(young.warming_up[0, 1]) and float(young.severity[0, 1]) == 0.0
    grown = member.evaluate(measured, now=T0 + WINDOW, samples=samples, queries=queries)
    assert not bool(grown.warming_up[0, 1]) and float(grown.severity[0, 1]) == 1.0
    assert not math.isnan(float(grown.score[0]))
