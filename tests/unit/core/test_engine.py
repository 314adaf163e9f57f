"""The evaluation step: dwell, the threshold curve, episodes, safety, state conversion.

ONE_SIGNAL under the high tier: Rollback >= 0.7 at once (point 0), Rollback >= 0.4 for 2m
(point 1), Hold >= 0.15 for 2m (point 2), clearBelow 0.05, cooldown 10m, 2 actions per 1h.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from factory import ONE_SIGNAL, T0, constant, policy_of, scores
from numpy.testing import assert_array_equal

from rollguard.api.modeldeployment import GuardState
from rollguard.api.policy import EffectivePolicy
from rollguard.core.engine import (
    GuardArrays,
    Measurements,
    StepResult,
    acts_automatically,
    arrays_to_states,
    initial_state,
    record_action,
    state_to_arrays,
    step,
)


def run(
    policy: EffectivePolicy, timeline: list[tuple[float, float]], state: GuardArrays | None = None
) -> list[StepResult]:
    """Step one member through (seconds after T0, score) pairs."""
    state = state or initial_state(policy, 1)
    out = []
    for at, score in timeline:
        r = step(policy, scores(score), state, now=T0 + at)
        out.append(r)
        state = r.state
    return out


def fired(results: list[StepResult]) -> list[int]:
    return [int(r.fired[0]) for r in results]


def test_initial_state_shapes_follow_policy_and_batch() -> None:
    s = initial_state(policy_of(), 4)
    assert s.above_since.shape == (4, 3)
    assert s.action_times.shape == (4, 3)  # budget count 2 -> K = 3
    assert not s.degraded.any()
    assert np.isnan(s.episode_min_score).all()


def test_a_point_fires_only_once_its_dwell_time_is_sustained() -> None:
    rs = run(policy_of(), [(0, 0.5), (60, 0.5), (119, 0.5), (120, 0.5)])
    assert fired(rs) == [-1, -1, -1, 1]
    assert rs[0].state.above_since[0, 1] == T0
    assert rs[-1].state.above_since[0, 1] == T0


def test_dwell_restarts_when_the_score_drops_below_the_point() -> None:
    rs = run(policy_of(), [(0, 0.5), (60, 0.3), (90, 0.5), (180, 0.5), (210, 0.5)])
    assert np.isnan(rs[1].state.above_since[0, 1])
    assert rs[1].state.above_since[0, 2] == T0  # still above Hold's 0.15
    assert rs[2].state.above_since[0, 1] == T0 + 90
    # At 180 Hold (0.15 since T0) is due but Rollback 0.4 (since 90) is not; at 210 it is.
    assert fired(rs) == [-1, -1, -1, 2, 1]


def test_among_satisfied_points_the_highest_min_score_fires() -> None:
    rs = run(policy_of(), [(0, 0.9)])
    assert fired(rs) == [0]
    rs = run(policy_of(), [(0, 0.5), (120, 0.5)])  # points 1 and 2 both satisfied
    assert fired(rs) == [-1, 1]


def test_the_stronger_action_fires_first_at_equal_min_scores() -> None:
    p = policy_of(
        triggers=[
            {"action": "Hold", "minScore": 0.3, "sustainedFor": "0s"},
            {"action": "Rollback", "minScore": 0.3, "sustainedFor": "0s"},
        ]
    )
    assert fired(run(p, [(0, 0.5)])) == [1]


def test_equal_points_fire_the_earlier_point() -> None:
    p = policy_of(
        triggers=[
            {"action": "Rollback", "minScore": 0.3, "sustainedFor": "0s"},
            {"action": "Rollback", "minScore": 0.3, "sustainedFor": "0s"},
        ]
    )
    assert fired(run(p, [(0, 0.5)])) == [0]


def test_hovering_above_a_threshold_fires_once_per_episode() -> None:
    rs = run(policy_of(), [(t, 0.75 if t % 60 else 0.72) for t in range(0, 600, 15)])
    assert fired(rs).count(0) == 1
    assert fired(rs)[0] == 0
    assert all(r.state.degraded[0] for r in rs)
    assert rs[-1].state.episode_min_score[0] == 0.7


def test_a_higher_point_fires_again_within_the_episode() -> None:
    rs = run(policy_of(), [(0, 0.2), (120, 0.2), (130, 0.5), (250, 0.5), (260, 0.9), (270, 0.9)])
    assert fired(rs) == [-1, 2, -1, 1, 0, -1]
    assert [r.state.episode_min_score[0] for r in rs[1::2]] == [0.15, 0.4, 0.7]


def test_falling_below_clear_below_ends_the_episode() -> None:
    rs = run(policy_of(), [(0, 0.9), (15, 0.1), (30, 0.9), (45, 0.01), (60, 0.9)])
    assert fired(rs) == [0, -1, -1, -1, 0]
    # 0.1 is below every point but not below clearBelow 0.05: still the same episode.
    assert [bool(r.recovered[0]) for r in rs] == [False, False, False, True, False]
    assert not rs[3].state.degraded[0]
    assert np.isnan(rs[3].state.episode_min_score[0])


def test_a_nan_score_keeps_dwell_but_cannot_fire_or_recover() -> None:
    rs = run(policy_of(), [(0, 0.5), (60, np.nan), (120, np.nan), (130, 0.5)])
    assert np.isnan(rs[1].score[0])
    assert fired(rs) == [-1, -1, -1, 1]
    assert rs[2].state.above_since[0, 1] == T0
    degraded = run(policy_of(), [(0, 0.9), (15, np.nan)])
    assert degraded[1].state.degraded[0]
    assert not degraded[1].recovered[0]


def test_cooldown_blocks_automatic_action_until_it_has_passed() -> None:
    p = policy_of()
    first = step(p, scores(0.9), initial_state(p, 1), now=T0)
    assert first.blocked[0] == ""
    state = record_action(first.state, np.array([True]), now=T0)
    # Recover and degrade again 5 minutes later: cooldown 10m still running.
    state = step(p, scores(0.0), state, now=T0 + 285).state
    again = step(p, scores(0.9), state, now=T0 + 300)
    assert (again.fired[0], again.blocked[0]) == (0, "cooldown")
    state = step(p, scores(0.0), again.state, now=T0 + 585).state
    later = step(p, scores(0.9), state, now=T0 + 600)
    assert (later.fired[0], later.blocked[0]) == (0, "")


def test_the_action_budget_blocks_beyond_count_actions_per_window() -> None:
    p = policy_of(safety={"cooldown": "0s"})  # budget 2 per 1h
    state = initial_state(p, 1)
    blocked = []
    for at in (0, 600, 1200, 3600, 4100, 4200):
        state = step(p, scores(0.0), state, now=T0 + at - 15).state
        r = step(p, scores(0.9), state, now=T0 + at)
        blocked.append(str(r.blocked[0]))
        state = record_action(r.state, r.blocked == "", now=T0 + at)
    # Actions at 0 and 600; at 1200 two lie within the hour; at 3600 the one at 0 has left;
    # at 4100 600 and 3600 count; at 4200 the one at 600 is exactly 1h old and has left.
    assert blocked == ["", "", "budget", "", "budget", ""]


def test_a_budget_of_zero_never_acts_automatically() -> None:
    p = policy_of(safety={"maxActionsPerWindow": {"count": 0, "window": "1h"}})
    r = step(p, scores(0.9), initial_state(p, 1), now=T0)
    assert (r.fired[0], r.blocked[0]) == (0, "budget")
    assert not acts_automatically(p, r)[0]


def test_hold_is_never_blocked() -> None:
    p = policy_of(safety={"maxActionsPerWindow": {"count": 0, "window": "1h"}})
    rs = run(p, [(0, 0.2), (120, 0.2)])
    assert (rs[1].fired[0], rs[1].blocked[0]) == (2, "")


def test_record_action_spends_budget_resets_dwell_and_keeps_the_episode() -> None:
    p = policy_of()
    r = step(p, scores(0.9, 0.9), initial_state(p, 2), now=T0)
    s = record_action(r.state, np.array([True, False]), now=T0 + 5)
    assert_array_equal(s.action_times[0], [np.nan, np.nan, T0 + 5])
    assert np.isnan(s.above_since[0]).all()
    assert_array_equal(s.above_since[1], r.state.above_since[1])
    assert_array_equal(s.degraded, [True, True])
    assert_array_equal(s.episode_min_score, [0.7, 0.7])
    s = record_action(
        record_action(
            record_action(s, np.array([True, False]), now=T0 + 6),
            np.array([True, False]),
            now=T0 + 7,
        ),
        np.array([True, False]),
        now=T0 + 8,
    )
    assert_array_equal(s.action_times[0], [T0 + 6, T0 + 7, T0 + 8])  # the oldest dropped


def test_unavailable_queries_are_inconclusive_regardless_of_samples() -> None:
    p = policy_of()
    m = scores(0.9)
    down = Measurements(values=m.values, mask=m.mask, available=np.array([[False]]))
    r = step(p, down, initial_state(p, 1), now=T0)
    assert r.inconclusive[0, 0]
    assert np.isnan(r.score[0])
    assert r.count[0, 0] == 0


def test_missing_data_under_breach_is_a_breach_and_can_fire() -> None:
    doc = {**ONE_SIGNAL, "signals": [{**ONE_SIGNAL["signals"][0], "onMissingData": "Breach"}]}
    p = policy_of(doc)
    r = step(p, constant([[np.nan]]), initial_state(p, 1), now=T0)
    assert not r.inconclusive[0, 0]
    assert r.severity[0, 0] == 1.0
    assert (r.score[0], r.fired[0]) == (1.0, 0)


def test_too_few_samples_never_fire() -> None:
    r = step(policy_of(), scores(0.9, n=7), initial_state(policy_of(), 1), now=T0)  # minSamples 8
    assert r.inconclusive[0, 0]
    assert r.fired[0] == -1


def test_a_policy_without_triggers_never_fires() -> None:
    p = policy_of(triggers=[])
    r = step(p, scores(1.0), initial_state(p, 1), now=T0)
    assert r.fired[0] == -1
    assert r.state.above_since.shape == (1, 0)


def test_acts_automatically_applies_the_boundary() -> None:
    p = policy_of(authorization={"autoApprove": {"maxScore": 0.95}})
    r = step(p, scores(0.9, 0.99, 0.1), initial_state(p, 3), now=T0)
    assert_array_equal(acts_automatically(p, r), [True, False, False])
    assert_array_equal(
        acts_automatically(p, r, revisions_back=np.array([2, 1, 1])), [False, False, False]
    )


def test_mismatched_shapes_are_refused() -> None:
    p = policy_of()
    with pytest.raises(ValueError, match="measurements"):
        step(p, constant([[0.1, 0.2]]), initial_state(p, 1), now=T0)
    with pytest.raises(ValueError, match=r"state\.above_since"):
        step(p, scores(0.1, 0.1), initial_state(p, 1), now=T0)


def test_guard_state_round_trips_through_the_status_model() -> None:
    p = policy_of()
    r = step(p, scores(0.9, 0.0), initial_state(p, 2), now=T0)
    arrays = record_action(r.state, np.array([True, False]), now=T0)
    states = arrays_to_states(p, arrays)
    assert states[0] == GuardState(
        degraded=True,
        episode_action="Rollback",
        episode_min_score=0.7,
        action_times=[T0],
        changed_at=T0,
    )
    assert states[1] == GuardState()
    wire = [GuardState.model_validate_json(s.model_dump_json(by_alias=True)) for s in states]
    back = state_to_arrays(p, wire)
    for f in fields(GuardArrays):
        assert_array_equal(getattr(back, f.name), getattr(arrays, f.name))


def test_state_from_status_keeps_known_points_and_the_newest_action_times() -> None:
    p = policy_of()
    st = GuardState(above_since={"1": T0, "7": T0}, action_times=[T0 + 4, T0 + 1, T0 + 3, T0 + 2])
    arrays = state_to_arrays(p, [st])
    assert_array_equal(arrays.above_since[0], [np.nan, T0, np.nan])
    assert_array_equal(arrays.action_times[0], [T0 + 2, T0 + 3, T0 + 4])


def test_values_that_overflow_are_broken_data_not_a_breach() -> None:
    p = policy_of()
    huge = np.full((1, 1, 20), 1e308)  # the sum overflows: mean inf, bounds NaN
    m = Measurements(
        values=huge, mask=np.ones(huge.shape, dtype=bool), available=np.array([[True]])
    )
    r = step(p, m, initial_state(p, 1), now=T0)
    assert r.inconclusive[0, 0]
    assert r.severity[0, 0] == 0.0
    assert r.fired[0] == -1
