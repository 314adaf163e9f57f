"""Replay: a recorded decision re-evaluates to itself, and tampering is found."""

from __future__ import annotations

from factory import T0
from recorded_decision import recorded

from rollguard.api.decision import (
    RollbackDecisionSpec,
    Samples,
)
from rollguard.api.modeldeployment import Business
from rollguard.core.replay import replay


def test_a_decision_replays_to_itself_bit_for_bit() -> None:
    spec = recorded()
    result = replay(spec)
    assert result.differences == []
    assert result.same
    assert result.recomputed == spec


def test_a_decision_replays_after_a_round_trip_through_json() -> None:
    spec = recorded()
    wire = RollbackDecisionSpec.model_validate_json(spec.model_dump_json(by_alias=True))
    assert replay(wire).same


def test_a_tampered_sample_is_found() -> None:
    spec = recorded()
    signal = spec.signals[0]
    values = list(signal.samples.values)
    values[0] += 0.02
    forged = spec.model_copy(
        update={
            "signals": [
                signal.model_copy(
                    update={"samples": signal.samples.model_copy(update={"values": values})}
                ),
                spec.signals[1],
            ]
        }
    )
    result = replay(forged)
    assert not result.same
    assert any(d.startswith("signals[0].value: recorded ") for d in result.differences)
    assert any(d.startswith("signals[0].message: ") for d in result.differences)


def test_a_tampered_score_is_found() -> None:
    spec = recorded()
    forged = spec.model_copy(update={"impact": spec.impact.model_copy(update={"score": 0.1})})
    result = replay(forged)
    assert not result.same
    assert result.differences[0].startswith("impact.score: recorded 0.1, replayed 0.")


def test_a_policy_snapshot_that_does_not_match_its_hash_is_found() -> None:
    spec = recorded()
    changed = spec.policy.effective.model_copy(update={"clear_below": 0.01})
    forged = spec.model_copy(
        update={"policy": spec.policy.model_copy(update={"effective": changed})}
    )
    result = replay(forged)
    assert not result.same
    assert result.differences[0].startswith("policy.specHash: recorded sha256:")


def test_evidence_that_no_longer_fires_is_reported_without_a_recomputed_decision() -> None:
    spec = recorded()
    quiet = [
        s.model_copy(update={"samples": Samples(timestamps=[T0], values=[0.0])})
        for s in spec.signals
    ]
    result = replay(spec.model_copy(update={"signals": quiet}))
    assert not result.same
    assert result.recomputed is None
    assert result.differences[-1].startswith(
        "trigger: recorded point 0 (Rollback) fired, replayed none"
    )


def test_replay_recomputes_money_from_the_recorded_revenue_unless_told_otherwise() -> None:
    spec = recorded()
    assert spec.impact.money_at_risk is not None
    assert spec.impact.money_at_risk.revenue_per_hour == 2500.0
    other = replay(spec, business=Business(revenue_per_hour=100.0))
    assert not other.same
    assert any(d.startswith("impact.moneyAtRisk.perHour: ") for d in other.differences)
