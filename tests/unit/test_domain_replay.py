"""Replay: a recorded decision re-evaluates to itself, and tampering is found."""

from __future__ import annotations

from typing import Any

import numpy as np
from domain_factory import ONE_SIGNAL, T0, policy_of

from rollguard.api.decision import (
    RevisionContext,
    RevisionInfo,
    RollbackDecisionSpec,
    Samples,
)
from rollguard.api.modeldeployment import Business, GuardState
from rollguard.core.decide import build_spec, decide, policy_snapshot
from rollguard.core.engine import state_to_arrays, step
from rollguard.core.replay import replay
from rollguard.core.samples import bound_samples, measurements_from_samples

TWO: dict[str, Any] = {
    **ONE_SIGNAL,
    "signals": [
        {"name": "error_rate", "query": "q1", "objective": {"max": 0.01}, "critical": 0.05},
        {
            "name": "accuracy",
            "query": "q2",
            "objective": {"min": 0.9},
            "margin": {"absolute": 0.02},
            "critical": 0.8,
        },
    ],
    "impact": {
        "categories": [
            {"name": "revenue", "weight": 2, "signals": {"error_rate": 1.0}},
            {
                "name": "customerExperience",
                "weight": 1,
                "signals": {"error_rate": 0.5, "accuracy": 1},
            },
        ]
    },
}
REVISIONS = RevisionContext(
    current=4,
    history=[
        RevisionInfo(revision=4, template_hash="d4", approved=False),
        RevisionInfo(revision=3, template_hash="c3", approved=True, source="bake"),
    ],
)


def _noisy(rng: np.random.Generator, n: int, mean: float, sd: float) -> Samples:
    ts, vs = bound_samples(T0 - 5.0 * np.arange(n)[::-1], rng.normal(mean, sd, n))
    return Samples(timestamps=ts, values=vs)


def recorded(member: int = 1) -> RollbackDecisionSpec:
    """A decision made for one member of an operator batch of three with different sample
    counts (so the batch is padded) and a failed query."""
    p = policy_of(TWO)
    rng = np.random.default_rng(11)
    rows: list[list[Samples | None]] = [
        [_noisy(rng, 300, 0.004, 0.001), _noisy(rng, 300, 0.95, 0.01)],
        [_noisy(rng, 23, 0.06, 0.01), _noisy(rng, 17, 0.87, 0.02)],
        [None, _noisy(rng, 40, 0.95, 0.01)],
    ]
    before = [GuardState(), GuardState(action_times=[T0 - 7200.0]), GuardState()]
    r = step(p, measurements_from_samples(rows), state_to_arrays(p, before), now=T0)
    assert r.fired[member] >= 0
    draft = decide(
        p,
        r,
        member,
        samples=rows[member],
        queries=["q1 rendered", "q2 rendered"],
        revisions=REVISIONS,
        business=Business(revenue_per_hour=2500.0),
        state_before=before[member],
        now=T0,
    )
    return build_spec(
        draft,
        model_deployment="fraud",
        deployment="fraud",
        policy=policy_snapshot(name="p", namespace="ml", generation=2, effective=p),
        operator_version="0.1.0",
    )


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
