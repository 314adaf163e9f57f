"""Properties of the decision core that must hold for any policy and any data.

Examples are derandomized (the same on every run) so the suite stays deterministic; sample
data comes from a seeded generator whose seed hypothesis draws.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.api.policy import RISK_TIERS, EffectivePolicy, RollbackPolicySpec
from rollguard.core.engine import (
    GuardArrays,
    Measurements,
    StepResult,
    initial_state,
    record_action,
    step,
)
from rollguard.core.guard import ACTION_RANK
from rollguard.core.severity import signal_limit
from rollguard.core.tiers import TIERS, resolve

PROPS = settings(max_examples=150, deadline=None, derandomize=True, database=None)
T0 = 1_700_000_000.0


@dataclass(frozen=True)
class Case:
    policy: EffectivePolicy
    limits: tuple[float, float]  # error (max objective), accuracy (min objective)
    spans: tuple[float, float]  # |critical - limit|


@st.composite
def cases(draw: st.DrawFn, missing: tuple[str, ...] = ("Inconclusive", "Breach")) -> Case:
    tier = draw(st.sampled_from(RISK_TIERS))
    signals: list[dict[str, Any]] = []
    limits: list[float] = []
    spans: list[float] = []
    for name, direction in (("err", "max"), ("acc", "min")):
        objective = draw(st.floats(0.01, 10.0))
        kind = draw(st.sampled_from(["tier", "absolute", "relative"]))
        amount = draw(st.floats(0.0, 1.0))
        margin = None if kind == "tier" else {kind: amount}
        width = {
            "tier": objective * TIERS[tier].margin_relative,
            "absolute": amount,
            "relative": objective * amount,
        }[kind]
        limit = objective + width if direction == "max" else objective - width
        span = draw(st.floats(0.01, 10.0))
        signal: dict[str, Any] = {
            "name": name,
            "query": "q",
            "objective": {direction: objective},
            "critical": limit + span if direction == "max" else limit - span,
            "onMissingData": draw(st.sampled_from(missing)),
        }
        if margin is not None:
            signal["margin"] = margin
        signals.append(signal)
        limits.append(limit)
        spans.append(span)
    n_categories = draw(st.integers(1, 3))
    categories = [
        {
            "name": f"c{i}",
            "weight": draw(st.floats(0.0, 5.0)) if i else draw(st.floats(0.1, 5.0)),
            "signals": {"err": draw(st.floats(0.0, 3.0)), "acc": draw(st.floats(0.0, 3.0))},
        }
        for i in range(n_categories)
    ]
    spec = RollbackPolicySpec.model_validate(
        {"riskTier": tier, "signals": signals, "impact": {"categories": categories}}
    )
    policy = resolve(spec)
    assert [signal_limit(s) for s in policy.signals] == limits
    return Case(policy, (limits[0], limits[1]), (spans[0], spans[1]))


def measurements(
    rng: np.random.Generator, case: Case, batch: int, *, inside: bool = False
) -> Measurements:
    """Random windows: per member and signal a random count of samples with holes, sometimes a
    failed query. ``inside``: every value within objective + margin."""
    n = int(rng.integers(0, 40))
    (err_limit, acc_limit), (err_span, acc_span) = case.limits, case.spans
    if inside:
        err = rng.uniform(0.0, err_limit, (batch, n))
        acc = rng.uniform(acc_limit, acc_limit + 5.0, (batch, n))
    else:
        err = rng.uniform(0.0, err_limit + 2 * err_span, (batch, n))
        acc = rng.uniform(acc_limit - 2 * acc_span, acc_limit + 1.0, (batch, n))
    values = np.stack([err, acc], axis=1)
    mask = rng.random(values.shape) < rng.uniform(0.3, 1.0)
    available = rng.random((batch, 2)) < 0.9
    return Measurements(values=values, mask=mask, available=available)


def shifted(m: Measurements, signal: int, delta: float) -> Measurements:
    values = m.values.copy()
    values[:, signal, :] += delta
    return Measurements(values=values, mask=m.mask, available=m.available)


@PROPS
@given(cases(), st.integers(0, 2**32 - 1), st.sampled_from([0, 1]), st.floats(1e-6, 5.0))
def test_a_worse_signal_never_lowers_the_score(
    case: Case, seed: int, signal: int, delta: float
) -> None:
    rng = np.random.default_rng(seed)
    m = measurements(rng, case, 4)
    state = initial_state(case.policy, 4)
    base = step(case.policy, m, state, now=T0)
    # Worse: more errors (max objective), less accuracy (min objective).
    worse = step(case.policy, shifted(m, signal, delta if signal == 0 else -delta), state, now=T0)
    np.testing.assert_array_equal(np.isnan(base.score), np.isnan(worse.score))
    known = ~np.isnan(base.score)
    assert (worse.score[known] >= base.score[known]).all()
    assert (worse.severity >= base.severity).all()


@PROPS
@given(cases(missing=("Inconclusive",)), st.integers(0, 2**32 - 1))
def test_values_inside_objective_and_margin_never_trigger(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    state = initial_state(case.policy, 3)
    for i in range(12):
        r = step(case.policy, measurements(rng, case, 3, inside=True), state, now=T0 + 60.0 * i)
        assert (r.fired == -1).all()
        assert (np.nan_to_num(r.score) < 1e-9).all()
        state = r.state


@PROPS
@given(cases(), st.integers(0, 2**32 - 1))
def test_scores_and_severities_stay_in_the_unit_interval(case: Case, seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = step(case.policy, measurements(rng, case, 5), initial_state(case.policy, 5), now=T0)
    for name in ("severity", "category_severity"):
        values = getattr(r, name)
        assert ((values >= 0) & (values <= 1)).all(), name
    known = r.score[~np.isnan(r.score)]
    assert ((known >= 0) & (known <= 1)).all()
    assert (np.isnan(r.score) == r.inconclusive.all(axis=1)).all()


def _random_state(rng: np.random.Generator, policy: EffectivePolicy, batch: int) -> GuardArrays:
    state = initial_state(policy, batch)
    points = len(policy.triggers)
    since = T0 - rng.integers(0, 3600, (batch, points)).astype(np.float64)
    above = np.where(rng.random((batch, points)) < 0.5, since, np.nan)
    degraded = rng.random(batch) < 0.5
    mins = np.array([t.min_score for t in policy.triggers])
    picked = rng.integers(0, points, batch)
    ranks = np.array([ACTION_RANK[t.action] for t in policy.triggers], dtype=np.float64)
    episode = np.where(degraded, mins[picked], np.nan)
    episode_rank = np.where(degraded, ranks[picked], np.nan)
    changed = np.where(rng.random(batch) < 0.5, T0 - rng.integers(1, 7200, batch), np.nan)
    waiting = degraded & (rng.random(batch) < 0.3)
    reoffer_at = np.where(waiting, T0 + rng.integers(-600, 600, batch), np.nan)
    times = np.sort(T0 - rng.integers(1, 7200, state.action_times.shape).astype(np.float64))
    times[rng.random(times.shape) < 0.4] = np.nan
    times = np.sort(times, axis=1)  # NaNs sort last; the state keeps them first
    times = np.array([np.concatenate([r[np.isnan(r)], r[~np.isnan(r)]]) for r in times])
    return GuardArrays(
        above_since=above,
        degraded=degraded,
        episode_rank=episode_rank,
        episode_min_score=episode,
        action_times=times,
        changed_at=changed.astype(np.float64),
        reoffer_at=reoffer_at.astype(np.float64),
        reoffer_rank=np.where(waiting, episode_rank, np.nan),
        reoffer_min_score=np.where(waiting, episode, np.nan),
    )


def _same_bits(a: NDArray[Any], b: NDArray[Any]) -> bool:
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b))) and a[~nan].tobytes() == b[~nan].tobytes()


def _row(r: StepResult, b: int) -> dict[str, NDArray[Any]]:
    out = {
        name: getattr(r, name)[b]
        for name in (
            "value",
            "lower",
            "upper",
            "count",
            "inconclusive",
            "severity",
            "category_severity",
            "score",
            "fired",
            "blocked",
            "recovered",
        )
    }
    for f in fields(GuardArrays):
        out[f"state.{f.name}"] = getattr(r.state, f.name)[b]
    return {k: np.asarray(v) for k, v in out.items()}


@PROPS
@given(cases(), st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_each_member_is_evaluated_exactly_as_in_a_batch_of_one(
    case: Case, seed: int, batch: int
) -> None:
    rng = np.random.default_rng(seed)
    m = measurements(rng, case, batch)
    # Padding with junk the mask hides, as a batch padded to its longest member would have.
    pad = rng.integers(0, 50)
    values = np.concatenate([m.values, rng.normal(0, 1e6, (batch, 2, pad))], axis=2)
    mask = np.concatenate([m.mask, np.zeros((batch, 2, pad), dtype=bool)], axis=2)
    padded = Measurements(values=values, mask=mask, available=m.available)
    state = _random_state(rng, case.policy, batch)
    now = T0 + float(rng.integers(0, 600))
    together = step(case.policy, padded, state, now=now)
    assert all(
        _same_bits(a, b)
        for a, b in zip(
            _row(together, 0).values(),
            _row(step(case.policy, padded, state, now=now), 0).values(),
            strict=True,
        )
    )
    for b in range(batch):
        # The member alone: only its valid samples, compacted, no padding at all.
        width = int(m.mask[b].sum(axis=1).max(initial=0))
        alone_values = np.zeros((1, 2, width))
        alone_mask = np.zeros((1, 2, width), dtype=bool)
        for s in range(2):
            kept = m.values[b, s][m.mask[b, s]]
            alone_values[0, s, : kept.size] = kept
            alone_mask[0, s, : kept.size] = True
        alone_state = GuardArrays(
            **{f.name: getattr(state, f.name)[b : b + 1] for f in fields(GuardArrays)}
        )
        alone = step(
            case.policy,
            Measurements(alone_values, alone_mask, m.available[b : b + 1]),
            alone_state,
            now=now,
        )
        for (name, x), y in zip(_row(together, b).items(), _row(alone, 0).values(), strict=True):
            assert _same_bits(x, y), (name, b, x, y)


@PROPS
@given(
    st.sampled_from(RISK_TIERS),
    st.one_of(st.sampled_from([0, 30, 300]), st.integers(0, 20 * 60)),
    st.integers(0, 3),
    st.one_of(st.sampled_from([600, 3600]), st.integers(10 * 60, 2 * 3600)),
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from([15, 60]), st.integers(1, 600)),
            # Mostly clear recoveries and clear degradations, so actions come often.
            st.one_of(st.sampled_from([0.0, 0.0, 0.95, 1.0, float("nan")]), st.floats(0.0, 1.0)),
        ),
        min_size=10,
        max_size=80,
    ),
)
@example("high", 0, 1, 3600, [(10, 0.95), (10, 0.0)] * 6)
@example("high", 300, 3, 3600, [(10, 0.95), (10, 0.0)] * 6)
def test_cooldown_and_budget_are_never_exceeded(
    tier: str, cooldown: int, count: int, window: int, timeline: list[tuple[int, float]]
) -> None:
    policy = resolve(
        RollbackPolicySpec.model_validate(
            {
                "riskTier": tier,
                "signals": [
                    {
                        "name": "s",
                        "query": "q",
                        "objective": {"max": 0.0},
                        "margin": {"absolute": 0.0},
                        "critical": 1.0,
                    }
                ],
                "impact": {"categories": [{"name": "revenue", "weight": 1, "signals": {"s": 1}}]},
                "safety": {
                    "cooldown": f"{cooldown}s",
                    "maxActionsPerWindow": {"count": count, "window": f"{window}s"},
                },
            }
        )
    )
    state = initial_state(policy, 1)
    now = T0
    acted: list[float] = []
    for dt, score in timeline:
        now += dt
        n = policy.evaluation.min_samples
        m = Measurements(
            values=np.full((1, 1, n), score if not np.isnan(score) else 0.0),
            mask=np.full((1, 1, n), not np.isnan(score)),
            available=np.ones((1, 1), dtype=bool),
        )
        r = step(policy, m, state, now=now)
        state = r.state
        fired = int(r.fired[0])
        if fired >= 0 and policy.triggers[fired].action != "Hold" and r.blocked[0] == "":
            acted.append(now)
            state = record_action(state, np.array([True]), now=now)
    assert duration_seconds(policy.safety.cooldown) == cooldown
    for i, at in enumerate(acted):
        if i:
            assert at - acted[i - 1] >= cooldown
        assert sum(1 for t in acted[: i + 1] if at - t < window) <= count
