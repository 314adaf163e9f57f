"""The guard's state machine: from impact scores to fired trigger points, per batch member.

PURE: numpy + rollguard.api only; no I/O, no clock (``now`` is an argument, Unix seconds).
``engine.step`` runs ``advance`` after scoring; the simulators run it once per simulated
evaluation on scores computed for many evaluation times at once (``engine.evaluate_rows``).
Everything here is elementwise per member: a member's result does not depend on the others.

Shapes: B = batch, T = trigger points (policy order), K = action slots.

The rules (the README's "How rollguard judges" states them for users):
- Dwell: ``above_since[t]`` is the first time of the current continuous run with
  score >= minScore[t]; it resets as soon as the score drops below. A NaN score (every signal
  Inconclusive) neither starts, resets nor fires anything: a data gap does not erase evidence,
  but nothing fires until a conclusive evaluation confirms the score.
- Severity: points are ordered by action (Hold < Pause < Rollback), then by minScore. Of the
  satisfied points the most severe fires (ties: the earlier point).
- Episodes: the first fire starts a degraded episode; within it a point fires only when it is
  more severe than everything fired so far, so hovering around a threshold yields one decision
  and a Pause at the same minScore as a Rollback still lets the Rollback follow. The episode
  ends (``recovered``) when the score falls below clearBelow.
- Who may fire: only members the caller lets decide (``can_fire``: no decision of theirs still
  open, not escalated to humans). A member held back keeps its dwell timers, and its episode
  is not raised by a point it could not act on.
- Safety: a fired Rollback or Pause is ``blocked`` with "budget" when
  safety.maxActionsPerWindow.count executed actions (Rollbacks and Pauses) already lie inside
  its sliding window (count 0: never automatic), else with "cooldown" when the newest
  executed revision change (a Rollback) is less than safety.cooldown ago. A Hold or a Pause
  changes no revision, so it never starts a cooldown. A blocked point still fires (a decision
  records it and a human decides); one blocked by cooldown does not raise the episode, and is
  offered again when the cooldown ends if the episode persists. Hold is never blocked.
- Executions (``record_action``): an executed Rollback or Pause spends budget; a Rollback also
  starts the cooldown and resets the dwell timers (evidence gathered against the revision it
  replaced does not count against its successor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.api.modeldeployment import GuardState
from rollguard.api.policy import Action, EffectivePolicy

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

BLOCKED_COOLDOWN = "cooldown"
BLOCKED_BUDGET = "budget"

ACTION_RANK: dict[str, int] = {"Hold": 0, "Pause": 1, "Rollback": 2}
"""How strong an action is: a point of a stronger action is more severe whatever its minScore."""
_RANKED: tuple[Action, ...] = ("Hold", "Pause", "Rollback")


def more_severe(rank: F64, min_score: F64, than_rank: F64, than_min_score: F64) -> Bool:
    """Elementwise: whether the point (rank, min_score) is more severe than (than_rank,
    than_min_score): a stronger action, or the same action at a higher minScore. Anything is
    more severe than NaN (nothing fired)."""
    stronger: Bool = (
        np.isnan(than_rank)
        | (rank > than_rank)
        | ((rank == than_rank) & (min_score > than_min_score))
    )
    return stronger


@dataclass(frozen=True)
class GuardArrays:
    """State carried between evaluations, one row per batch member.

    above_since[b, t]: Unix time since when the score has stayed >= triggers[t].minScore,
        NaN when it is not (reset as soon as the score drops below).
    degraded[b]: True from the first trigger hit until the score falls below clearBelow
        (hysteresis): one degraded episode.
    episode_rank[b], episode_min_score[b]: the most severe point fired in the current
        episode, as action rank (``ACTION_RANK``) and minScore; NaN when none.
    action_times[b, k]: Unix times of the most recent executed actions (Rollback or Pause),
        oldest first and newest last, NaN padded at the front; K =
        max(1, safety.maxActionsPerWindow.count + 1).
    changed_at[b]: Unix time of the newest executed revision change (Rollback), NaN when none:
        the cooldown runs from it.
    reoffer_at[b], reoffer_rank[b], reoffer_min_score[b]: a point blocked by cooldown: it and
        weaker points are not offered again before reoffer_at (the cooldown's end); NaN when
        nothing waits.
    """

    above_since: F64  # (B, T)
    degraded: Bool  # (B,)
    episode_rank: F64  # (B,)
    episode_min_score: F64  # (B,)
    action_times: F64  # (B, K)
    changed_at: F64  # (B,)
    reoffer_at: F64  # (B,)
    reoffer_rank: F64  # (B,)
    reoffer_min_score: F64  # (B,)


@dataclass(frozen=True)
class Rules:
    """The trigger, hysteresis and safety constants of a policy as arrays. Build it once per
    policy (``Rules.of``) when advancing many times."""

    min_score: F64  # (T,)
    rank: F64  # (T,) action rank of each point
    sustain: F64  # (T,) seconds
    order: I64  # (T,) points by descending severity, ties in policy order
    acts: Bool  # (T,) Rollback or Pause (not Hold)
    clear_below: float
    cooldown: float
    budget: int
    budget_window: float

    @classmethod
    def of(cls, policy: EffectivePolicy) -> Rules:
        min_score = np.array([t.min_score for t in policy.triggers], dtype=np.float64)
        rank = np.array([ACTION_RANK[t.action] for t in policy.triggers], dtype=np.float64)
        budget = policy.safety.max_actions_per_window
        return cls(
            min_score=min_score,
            rank=rank,
            sustain=np.array(
                [duration_seconds(t.sustained_for) for t in policy.triggers], dtype=np.float64
            ),
            order=np.array(
                sorted(range(rank.size), key=lambda i: (-rank[i], -min_score[i])), dtype=np.int64
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
        episode_rank=np.full(batch, np.nan),
        episode_min_score=np.full(batch, np.nan),
        action_times=np.full((batch, action_slots(policy)), np.nan),
        changed_at=np.full(batch, np.nan),
        reoffer_at=np.full(batch, np.nan),
        reoffer_rank=np.full(batch, np.nan),
        reoffer_min_score=np.full(batch, np.nan),
    )


def _cooldown_active(cooldown: float, changed_at: F64, now: float) -> Bool:
    active: Bool = (now - changed_at) < cooldown  # NaN (no change yet) compares False
    return active


def _actions_in_window(window: float, action_times: F64, now: float) -> I64:
    inside: I64 = ((now - action_times) < window).sum(axis=1, dtype=np.int64)
    return inside


def cooldown_active(policy: EffectivePolicy, changed_at: F64, now: float) -> Bool:
    """(B,) whether the newest executed revision change lies less than safety.cooldown ago."""
    return _cooldown_active(duration_seconds(policy.safety.cooldown), changed_at, now)


def actions_in_window(policy: EffectivePolicy, action_times: F64, now: float) -> I64:
    """(B,) executed actions inside the budget's sliding window (now - window, now]."""
    window = duration_seconds(policy.safety.max_actions_per_window.window)
    return _actions_in_window(window, action_times, now)


def _dwell(
    rules: Rules, score: F64, state: GuardArrays, *, now: float, can_fire: Bool | None
) -> tuple[F64, Bool]:
    """(since, satisfied), both (T, B): since when each point's minScore has been reached
    (NaN: it is not), and whether it has been for the point's sustain (and may fire)."""
    point = rules.min_score[:, None]
    before = np.ascontiguousarray(state.above_since.T)  # (T, B)
    # Comparisons with a NaN score are False both ways, so a gap changes nothing.
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
    if can_fire is not None:
        satisfied &= np.asarray(can_fire, dtype=np.bool_)[None, :]
    return since, satisfied


def advance(
    rules: Rules,
    score: F64,
    state: GuardArrays,
    *,
    now: float,
    can_fire: Bool | None = None,
) -> Transition:
    """The guard after scores ``score`` (B,) at time ``now``: dwell, episodes and safety.
    ``can_fire`` (B,) marks the members that may fire now (default: all)."""
    # Called once per evaluation by the simulator, so it works on (T, B) arrays, whose rows of
    # members make each operation one long vectorised loop, and with few temporaries.
    batch = score.shape[0]
    since, satisfied = _dwell(rules, score, state, now=now, can_fire=can_fire)

    # Hysteresis: recovery ends the episode before anything can fire (the resolver keeps
    # every minScore above clearBelow, so a recovering member cannot fire in the same step).
    recovered = score < rules.clear_below
    recovered &= state.degraded
    degraded = state.degraded > recovered  # degraded and not recovered
    ep_rank = np.where(degraded, state.episode_rank, np.nan)
    ep_min = np.where(degraded, state.episode_min_score, np.nan)
    reoffer_at = np.where(degraded & (now < state.reoffer_at), state.reoffer_at, np.nan)
    waiting = ~np.isnan(reoffer_at)
    re_rank = np.where(waiting, state.reoffer_rank, np.nan)
    re_min = np.where(waiting, state.reoffer_min_score, np.nan)
    # Within an episode only a point more severe than everything fired so far is eligible,
    # and a point blocked by cooldown (and anything weaker) waits for the cooldown's end.
    eligible = satisfied
    if degraded.any():
        p_rank, p_min = rules.rank[:, None], rules.min_score[:, None]
        eligible = satisfied & more_severe(p_rank, p_min, ep_rank, ep_min)
        if waiting.any():
            eligible &= more_severe(p_rank, p_min, re_rank, re_min)

    # The most severe eligible point fires, ties to the earlier one: the first in ``order``.
    fired = np.full(batch, -1, dtype=np.int64)
    blocked = np.zeros(batch, dtype="<U8")  # all ""
    if rules.order.size and eligible.any():
        ranked = eligible[rules.order]
        first = ranked.argmax(axis=0)
        hit = ranked[first, np.arange(batch)]
        fired[hit] = rules.order[first[hit]]
        degraded |= hit
        index = np.maximum(fired, 0)
        acting = hit & rules.acts[index]
        cool = np.zeros(batch, dtype=np.bool_)
        if acting.any():
            spent = acting & (
                _actions_in_window(rules.budget_window, state.action_times, now) >= rules.budget
            )
            cool = acting & ~spent & _cooldown_active(rules.cooldown, state.changed_at, now)
            blocked[spent] = BLOCKED_BUDGET
            blocked[cool] = BLOCKED_COOLDOWN
        raised = hit & ~cool
        ep_rank = np.where(raised, rules.rank[index], ep_rank)
        ep_min = np.where(raised, rules.min_score[index], ep_min)
        reoffer_at = np.where(cool, state.changed_at + rules.cooldown, reoffer_at)
        re_rank = np.where(cool, rules.rank[index], re_rank)
        re_min = np.where(cool, rules.min_score[index], re_min)
    return Transition(
        fired=fired,
        blocked=blocked,
        recovered=recovered,
        state=GuardArrays(
            above_since=since.T,
            degraded=degraded,
            episode_rank=ep_rank,
            episode_min_score=ep_min,
            action_times=state.action_times.copy(),
            changed_at=state.changed_at.copy(),
            reoffer_at=reoffer_at,
            reoffer_rank=re_rank,
            reoffer_min_score=re_min,
        ),
    )


def record_action(
    state: GuardArrays, acted: Bool, *, now: float | F64, changed: Bool | None = None
) -> GuardArrays:
    """The state after the members marked in ``acted`` executed a Rollback or Pause at ``now``
    (a time, or one per member); ``changed`` marks those whose action changed the revision (a
    Rollback; default: every member in ``acted``).

    Every execution spends budget (``now`` becomes the newest action time, the oldest drops
    out). A revision change also starts the cooldown, cancels a waiting re-offer and resets
    the dwell timers: evidence gathered against the revision that was replaced does not count
    against its successor. The episode is kept, so the same level does not fire again until
    the deployment has recovered.
    """
    acted = np.asarray(acted, dtype=np.bool_)
    change = acted if changed is None else acted & np.asarray(changed, dtype=np.bool_)
    at = np.broadcast_to(np.asarray(now, dtype=np.float64), acted.shape)
    shifted = np.concatenate([state.action_times[:, 1:], at[:, None]], axis=1)
    return GuardArrays(
        above_since=np.where(change[:, None], np.nan, state.above_since),
        degraded=state.degraded.copy(),
        episode_rank=state.episode_rank.copy(),
        episode_min_score=state.episode_min_score.copy(),
        action_times=np.where(acted[:, None], shifted, state.action_times),
        changed_at=np.where(change, at, state.changed_at),
        reoffer_at=np.where(change, np.nan, state.reoffer_at),
        reoffer_rank=np.where(change, np.nan, state.reoffer_rank),
        reoffer_min_score=np.where(change, np.nan, state.reoffer_min_score),
    )


def _rank_of(action: str | None) -> float:
    # A status written before episodes knew their action: the strongest action, so nothing
    # fires again in that episode that would not have fired before.
    return float(ACTION_RANK[action or "Rollback"])


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
            arrays.episode_rank[b] = _rank_of(st.episode_action)
            arrays.episode_min_score[b] = st.episode_min_score
        times = sorted(st.action_times)[-slots:]
        if times:
            arrays.action_times[b, slots - len(times) :] = times
        if st.changed_at is not None:
            arrays.changed_at[b] = st.changed_at
        if st.reoffer_at is not None:
            arrays.reoffer_at[b] = st.reoffer_at
            if st.reoffer_min_score is not None:
                arrays.reoffer_rank[b] = _rank_of(st.reoffer_action)
                arrays.reoffer_min_score[b] = st.reoffer_min_score
    return arrays


def _point(rank: float, min_score: float) -> tuple[Action | None, float | None]:
    if np.isnan(rank) or np.isnan(min_score):
        return None, None
    return _RANKED[int(rank)], float(min_score)


def arrays_to_states(policy: EffectivePolicy, arrays: GuardArrays) -> list[GuardState]:
    """The GuardStates to write back into each ModelDeployment's status."""
    states: list[GuardState] = []
    for b in range(arrays.degraded.shape[0]):
        action, min_score = _point(float(arrays.episode_rank[b]), arrays.episode_min_score[b])
        waiting = float(arrays.reoffer_at[b])
        re_action, re_min = _point(float(arrays.reoffer_rank[b]), arrays.reoffer_min_score[b])
        changed = float(arrays.changed_at[b])
        states.append(
            GuardState(
                above_since={
                    str(t): float(v)
                    for t, v in enumerate(arrays.above_since[b])
                    if t < len(policy.triggers) and not np.isnan(v)
                },
                degraded=bool(arrays.degraded[b]),
                episode_action=action,
                episode_min_score=min_score,
                action_times=[float(v) for v in arrays.action_times[b] if not np.isnan(v)],
                changed_at=None if np.isnan(changed) else changed,
                reoffer_at=None if np.isnan(waiting) else waiting,
                reoffer_action=re_action if not np.isnan(waiting) else None,
                reoffer_min_score=re_min if not np.isnan(waiting) else None,
            )
        )
    return states
