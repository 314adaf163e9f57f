"""A recorded RollbackDecision built through the decision machine, shared by the replay, audit,
journal and CLI tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from factory import ONE_SIGNAL, T0, policy_of

from rollguard.api.base import TargetRef
from rollguard.api.decision import (
    RevisionContext,
    RevisionInfo,
    RollbackDecisionSpec,
    Samples,
)
from rollguard.api.modeldeployment import Business, GuardState
from rollguard.core.decide import build_spec, decide, policy_snapshot
from rollguard.core.engine import state_to_arrays, step
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
        target=TargetRef.deployment("fraud"),
        policy=policy_snapshot(name="p", namespace="ml", generation=2, effective=p),
        operator_version="0.1.0",
    )
