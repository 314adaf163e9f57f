"""The guard's state machine: from impact scores to fired trigger points, per batch member.

PURE: numpy + rollguard.api only; no I/O, no clock (``now`` is an argument, Unix seconds).
``engine.step`` runs ``advance`` after scoring; the simulator runs it once per simulated
evaluation on scores it computed for many evaluation times at once (``engine.evaluate_rows``).
Everything here is elementwise per member: a member's result does not depend on the others.

Shapes: B = batch, T = trigger points (policy order), K = action slots.

Rules worth knowing:
- Dwell: ``above_since[t]`` is the first time of the current continuous run with
  score >= minScore[t]; it resets as soon as the score drops below. A NaN score (every signal
  Inconclusive) neither starts, resets nor fires anything: a data gap does not erase evidence,
  but nothing fires until a conclusive evaluation confirms the score.
- The satisfied point with the highest minScore fires (ties: the earlier point).
- Episodes: the first fire starts a degraded episode; within it only a point with a strictly
  higher minScore than any fired so far fires again, so hovering around a threshold yields one
  decision. The episode ends (``recovered``) when the score falls below clearBelow.
- Safety: a fired Rollback or Pause is ``blocked`` ("cooldown" or "budget") when the newest
  automatic action is less than safety.cooldown ago, or when safety.maxActionsPerWindow.count
  actions already lie inside its sliding window (count 0: never automatic). It still fires, so
  a decision is recorded; a human must approve it. Hold only records and is never blocked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.api.modeldeployment import GuardState
from rollguard.api.policy import EffectivePolicy

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

BLOCKED_COOLDOWN = "cooldown"
BLOCKED_BUDGET = "budget"


@dataclass(frozen=True)
class GuardArrays:
    """State carried between evaluations, one row per batch member.

    above_since[b, t]: Unix time since when the score has stayed >= triggers[t].minScore,
        NaN when it is not (reset as soon as the score drops below).
    degraded[b]: True from the first trigger hit until the score falls below clearBelow
        (hysteresis): one degraded episode.
    episode_min_score[b]: minScore of the highest trigger point that fired in the current
        episode, NaN when none. Within an episode only a point with a strictly higher minScore
        fires again, so hovering near a threshold yields one decision, not one per cycle.
    action_times[b, k]: Unix times of the most recent automatic actions, oldest first and
        newest last, NaN padded at the front; K = max(1, safety.maxActionsPerWindow.count + 1).
    """

    above_since: F64  # (B, T)
    degraded: Bool  # (B,)
    episode_min_score: F64  # (B,)
    action_times: F64  # (B, K)


@dataclass(frozen=True)
class Rules:
    """The trigger, hysteresis and safety constants of a policy as arrays. Build it once per
    policy (``Rules.of``) when advancing many times."""

    min_score: F64  # (T,)
    sustain: F64  # (T,) seconds
    order: I64  # (T,) points by descending minScore, ties in policy order
    acts: Bool  # (T,) Rollback or Pause (not Hold)
    clear_below: float
    cooldown: float
    budget: int
    budget_window: float

    @classmethod
    def of(cls, policy: EffectivePolicy) -> Rules:
        min_score = np.array([t.min_score for t in policy.triggers], dtype=np.float64)
        budget = policy.safety.max_actions_per_window
        return cls(
            min_score=min_score,
            sustain=np.array(
                [duration_seconds(t.sustained_for) for t in policy.triggers], dtype=np.float64
            ),
            order=np.array(
                sorted(range(min_score.size), key=lambda i: -min_score[i]), dtype=np.int64
            ),
            acts=np.array([t.action != "Hold" for t in policy.triggers], dtype=np.bool_),
            clear_below=policy.clear_below,
            cooldown=duration_seconds(policy.safety.cooldown),
            budget=budget.count,
            budget_window=duration_seconds(budget.window),
        )


@dataclass(frozen=True)
class Transition:
    """What one evaluation's scores did to the guard, per batch member."""

    fired: I64  # (B,) index of the trigger point that fired, -1 when none
    blocked: NDArray[np.str_]  # (B,) "" or "cooldown" | "budget"
    recovered: Bool  # (B,) degraded before and now below clearBelow
    state: GuardArrays


def action_slots(policy: EffectivePolicy) -> int:
    """K: how many recent action times are kept, enough to judge the action budget."""
    return max(1, policy.safety.max_actions_per_window.count + 1)


def initial_state(policy: EffectivePolicy, batch: int) -> GuardArrays:
    """The state of a batch that has never been evaluated."""
    return GuardArrays(
        # Stored point-major (column-major (B, T)): ``advance`` works on rows of members.
        above_since=np.full((len(policy.triggers), batch), np.nan).T,
        degraded=np.zeros(batch, dtype=np.bool_),
        episode_min_score=np.full(batch, np.nan),
        action_times=np.full((batch, action_slots(policy)), np.nan),
    )


def _cooldown_active(cooldown: float, action_times: F64, now: float) -> Bool:
    active: Bool = (now - action_times[:, -1]) < cooldown  # NaN (no action yet) compares False
    return active


def _actions_in_window(window: float, action_times: F64, now: float) -> I64:
    inside: I64 = ((now - action_times) < window).sum(axis=1, dtype=np.int64)
    return inside


def cooldown_active(policy: EffectivePolicy, action_times: F64, now: float) -> Bool:
    """(B,) whether the newest automatic action lies less than safety.cooldown before now."""
    return _cooldown_active(duration_seconds(policy.safety.cooldown), action_times, now)


def actions_in_window(policy: EffectivePolicy, action_times: F64, now: float) -> I64:
    """(B,) automatic actions inside the budget's sliding window (now - window, now]."""
    window = duration_seconds(policy.safety.max_actions_per_window.window)
    return _actions_in_window(window, action_times, now)


def advance(rules: Rules, score: F64, state: GuardArrays, *, now: float) -> Transition:
    """The guard after scores ``score`` (B,) at time ``now``: dwell, episodes and safety."""
    # Called once per evaluation by the simulator, so it works on (T, B) arrays, whose rows of
    # members make each operation one long vectorised loop, and with few temporaries.
    batch = score.shape[0]
    point = rules.min_score[:, None]
    before = np.ascontiguousarray(state.above_since.T)  # (T, B)
    # Dwell. Comparisons with a NaN score are False both ways, so a gap changes nothing.
    above = point <= score
    starts = np.isnan(before)
    starts &= above
    since = np.where(starts, now, before)
    if np.isnan(score).any():
        np.copyto(since, np.nan, where=point > score)
    else:
        since = np.where(above, since, np.nan)
    satisfied = np.subtract(now, since) >= rules.sustain[:, None]
    satisfied &= above

    # Hysteresis: recovery ends the episode before anything can fire (the resolver keeps
    # every minScore above clearBelow, so a recovering member cannot fire in the same step).
    recovered = score < rules.clear_below
    recovered &= state.degraded
    degraded = state.degraded > recovered  # degraded and not recovered
    episode = np.where(degraded, state.episode_min_score, np.nan)
    # Within an episode only a point above the highest one fired so far is eligible.
    eligible = satisfied > (point <= episode) if degraded.any() else satisfied

    # Highest minScore wins, ties to the earlier point: the first eligible point in ``order``.
    fired = np.full(batch, -1, dtype=np.int64)
    blocked = np.zeros(batch, dtype="<U8")  # all ""
    if rules.order.size and eligible.any():
        ranked = eligible[rules.order]
        first = ranked.argmax(axis=0)
        hit = ranked[first, np.arange(batch)]
        fired[hit] = rules.order[first[hit]]
        degraded |= hit
        episode = np.where(hit, rules.min_score[np.maximum(fired, 0)], episode)
        acting = hit & rules.acts[np.maximum(fired, 0)]
        if acting.any():
            cool = acting & _cooldown_active(rules.cooldown, state.action_times, now)
            spent = _actions_in_window(rules.budget_window, state.action_times, now)
            blocked[acting & (spent >= rules.budget)] = BLOCKED_BUDGET
            blocked[cool] = BLOCKED_COOLDOWN
    return Transition(
        fired=fired,
        blocked=blocked,
        recovered=recovered,
        state=GuardArrays(
            above_since=since.T,
            degraded=degraded,
            episode_min_score=episode,
            action_times=state.action_times.copy(),
        ),
    )


def record_action(state: GuardArrays, acted: Bool, *, now: float) -> GuardArrays:
    """The state after the members marked in ``acted`` took an automatic action at ``now``.

    Starts the cooldown and spends budget (``now`` becomes the newest action time, the oldest
    drops out), and resets the dwell timers: evidence gathered against the revision that was
    replaced does not count against its successor. The episode is kept, so the same level
    does not fire again until the deployment has recovered.
    """
    acted = np.asarray(acted, dtype=np.bool_)
    shifted = np.concatenate(
        [state.action_times[:, 1:], np.full((acted.shape[0], 1), float(now))], axis=1
    )
    return GuardArrays(
        above_since=np.where(acted[:, None], np.nan, state.above_since),
        degraded=state.degraded.copy(),
        episode_min_score=state.episode_min_score.copy(),
        action_times=np.where(acted[:, None], shifted, state.action_times),
    )


def state_to_arrays(policy: EffectivePolicy, states: list[GuardState]) -> GuardArrays:
    """GuardArrays for a batch from the GuardStates kept in ModelDeployment statuses.

    Trigger indices the policy no longer has are dropped; only the newest K action times are
    kept.
    """
    arrays = initial_state(policy, len(states))
    triggers = len(policy.triggers)
    slots = arrays.action_times.shape[1]
    for b, st in enumerate(states):
        for key, since in st.above_since.items():
            if key.isdigit() and int(key) < triggers:
                arrays.above_since[b, int(key)] = since
        arrays.degraded[b] = st.degraded
        if st.episode_min_score is not None:
            arrays.episode_min_score[b] = st.episode_min_score
        times = sorted(st.action_times)[-slots:]
        if times:
            arrays.action_times[b, slots - len(times) :] = times
    return arrays


def arrays_to_states(policy: EffectivePolicy, arrays: GuardArrays) -> list[GuardState]:
    """The GuardStates to write back into each ModelDeployment's status."""
    states: list[GuardState] = []
    for b in range(arrays.degraded.shape[0]):
        episode = float(arrays.episode_min_score[b])
        states.append(
            GuardState(
                above_since={
                    str(t): float(v)
                    for t, v in enumerate(arrays.above_since[b])
                    if t < len(policy.triggers) and not np.isnan(v)
                },
                degraded=bool(arrays.degraded[b]),
                episode_min_score=None if np.isnan(episode) else episode,
                action_times=[float(v) for v in arrays.action_times[b] if not np.isnan(v)],
            )
        )
    return states
