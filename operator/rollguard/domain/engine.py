"""The evaluation engine: one evaluation step for a batch of deployments under one policy.

PURE: numpy + rollguard.api only; no I/O, no clock (``now`` is an argument, Unix seconds).
The operator calls ``step`` once per policy per cycle with every bound deployment in the
batch; ``rollguard simulate`` calls it once per simulated evaluation with every seed in the
batch; ``rollguard replay`` calls it with a batch of one. Same code, same numbers: a member's
result does not depend on the other members or on padding (tested bit for bit).

Shapes: B = batch (deployments or seeds), S = signals (policy order), N = samples per window,
T = trigger points (policy order), C = impact categories (policy order).

One step: window statistics -> signal severities -> category severities -> impact score ->
threshold curve with dwell tracking -> hysteresis (episodes) -> safety (cooldown, budget).

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
from rollguard.domain.scoring import ImpactModel, category_severity, impact_score
from rollguard.domain.severity import SignalLimits, severities
from rollguard.domain.stats import window_stats

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

BLOCKED_COOLDOWN = "cooldown"
BLOCKED_BUDGET = "budget"


@dataclass(frozen=True)
class Measurements:
    """Samples of every signal over the window ending at ``now``.

    values[b, s, n] is the n-th sample of signal s for batch member b, oldest first; mask marks
    the samples that exist (missing data, NaN and samples outside the window are False; a
    non-finite value is ignored even where the mask is True). Statistics do not depend on
    timestamps, only on the order of the samples. ``available[b, s]`` is False when the query
    itself failed (Prometheus down): that signal is Inconclusive regardless of the mask.
    ``samples.measurements_from_samples`` builds one from recorded samples.
    """

    values: F64  # (B, S, N)
    mask: Bool  # (B, S, N)
    available: Bool  # (B, S)


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
class StepResult:
    """What one evaluation found, per batch member."""

    value: F64  # (B, S) mean over the window, NaN when Inconclusive
    lower: F64  # (B, S) lower confidence bound
    upper: F64  # (B, S) upper confidence bound
    count: I64  # (B, S) samples used
    inconclusive: Bool  # (B, S) too few samples or query failed (and onMissingData is Inconclusive)
    severity: F64  # (B, S) in [0, 1]
    category_severity: F64  # (B, C) in [0, 1]
    score: F64  # (B,) impact score in [0, 1]; NaN when every signal is Inconclusive
    fired: I64  # (B,) index of the trigger point that fired (the one with the highest minScore
    #             whose dwell time is satisfied), -1 when none
    blocked: NDArray[np.str_]  # (B,) "" or why a fired trigger may not act automatically now:
    #             "cooldown" | "budget" (the decision then requires a human)
    recovered: Bool  # (B,) degraded before and now below clearBelow
    state: GuardArrays  # the state to carry into the next step


def action_slots(policy: EffectivePolicy) -> int:
    """K: how many recent action times are kept, enough to judge the action budget."""
    return max(1, policy.safety.max_actions_per_window.count + 1)


def initial_state(policy: EffectivePolicy, batch: int) -> GuardArrays:
    """The state of a batch that has never been evaluated."""
    return GuardArrays(
        above_since=np.full((batch, len(policy.triggers)), np.nan),
        degraded=np.zeros(batch, dtype=np.bool_),
        episode_min_score=np.full(batch, np.nan),
        action_times=np.full((batch, action_slots(policy)), np.nan),
    )


def _check_shapes(policy: EffectivePolicy, m: Measurements, state: GuardArrays) -> int:
    signals = len(policy.signals)
    if m.values.ndim != 3 or m.values.shape[1] != signals or m.mask.shape != m.values.shape:
        raise ValueError(
            f"measurements: values and mask must be (B, {signals}, N), got "
            f"{m.values.shape} and {m.mask.shape}"
        )
    batch = int(m.values.shape[0])
    if m.available.shape != (batch, signals):
        raise ValueError(f"measurements.available must be ({batch}, {signals})")
    expected = {
        "above_since": (batch, len(policy.triggers)),
        "degraded": (batch,),
        "episode_min_score": (batch,),
        "action_times": (batch, action_slots(policy)),
    }
    for name, shape in expected.items():
        got = getattr(state, name).shape
        if got != shape:
            raise ValueError(f"state.{name} must be {shape} for this policy and batch, got {got}")
    return batch


def cooldown_active(policy: EffectivePolicy, action_times: F64, now: float) -> Bool:
    """(B,) whether the newest automatic action lies less than safety.cooldown before now."""
    cooldown = duration_seconds(policy.safety.cooldown)
    newest = action_times[:, -1]
    active: Bool = (now - newest) < cooldown  # NaN (no action yet) compares False
    return active


def actions_in_window(policy: EffectivePolicy, action_times: F64, now: float) -> I64:
    """(B,) automatic actions inside the budget's sliding window (now - window, now]."""
    window = duration_seconds(policy.safety.max_actions_per_window.window)
    inside: I64 = ((now - action_times) < window).sum(axis=1, dtype=np.int64)
    return inside


def step(
    policy: EffectivePolicy,
    measurements: Measurements,
    state: GuardArrays,
    *,
    now: float,
) -> StepResult:
    """Evaluate every batch member once at time ``now`` (Unix seconds)."""
    batch = _check_shapes(policy, measurements, state)
    available = np.asarray(measurements.available, dtype=np.bool_)
    stats = window_stats(
        measurements.values,
        np.asarray(measurements.mask, dtype=np.bool_) & available[:, :, None],
        min_samples=policy.evaluation.min_samples,
        confidence=policy.evaluation.confidence,
    )
    severity, inconclusive = severities(
        SignalLimits.of(policy), stats.lower, stats.upper, ~stats.conclusive
    )
    model = ImpactModel.of(policy)
    categories = category_severity(model, severity)
    unknown: Bool = np.all(inconclusive, axis=1)
    score = impact_score(model, categories, unknown)

    # Dwell. Comparisons with a NaN score are False both ways, so a gap changes nothing.
    min_score = np.array([t.min_score for t in policy.triggers], dtype=np.float64)
    sustain = np.array([duration_seconds(t.sustained_for) for t in policy.triggers])
    above = score[:, None] >= min_score[None, :]
    below = score[:, None] < min_score[None, :]
    since = np.where(above & np.isnan(state.above_since), now, state.above_since)
    since = np.where(below, np.nan, since)
    satisfied = above & ((now - since) >= sustain[None, :])

    # Hysteresis: recovery ends the episode before anything can fire (the resolver keeps
    # every minScore above clearBelow, so a recovering member cannot fire in the same step).
    recovered = state.degraded & (score < policy.clear_below)
    degraded = state.degraded & ~recovered
    episode = np.where(degraded, state.episode_min_score, np.nan)
    eligible = satisfied & ~(min_score[None, :] <= episode[:, None])

    # Highest minScore wins, ties to the earlier point: visit points by descending minScore,
    # stable, and keep the first eligible one.
    fired = np.full(batch, -1, dtype=np.int64)
    for t in sorted(range(len(min_score)), key=lambda i: -min_score[i]):
        fired = np.where((fired < 0) & eligible[:, t], t, fired)
    hit = fired >= 0
    fired_min = min_score[np.maximum(fired, 0)] if len(min_score) else np.zeros(batch)
    degraded = degraded | hit
    episode = np.where(hit, fired_min, episode)

    acts = np.array([t.action != "Hold" for t in policy.triggers], dtype=np.bool_)
    acting = hit & (acts[np.maximum(fired, 0)] if len(acts) else np.zeros(batch, np.bool_))
    in_cooldown = cooldown_active(policy, state.action_times, now)
    budget = policy.safety.max_actions_per_window.count
    spent = actions_in_window(policy, state.action_times, now) >= budget
    blocked = np.where(
        acting & in_cooldown,
        BLOCKED_COOLDOWN,
        np.where(acting & spent, BLOCKED_BUDGET, ""),
    )

    return StepResult(
        value=stats.mean,
        lower=stats.lower,
        upper=stats.upper,
        count=stats.count,
        inconclusive=inconclusive,
        severity=severity,
        category_severity=categories,
        score=score,
        fired=fired,
        blocked=blocked,
        recovered=recovered,
        state=GuardArrays(
            above_since=since,
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


def acts_automatically(
    policy: EffectivePolicy, result: StepResult, *, revisions_back: int | I64 = 1
) -> Bool:
    """(B,) members whose fired point is a Rollback or Pause the operator may take alone:
    not blocked, the action in autoApprove.actions, score <= autoApprove.maxScore and, for a
    Rollback, ``revisions_back`` <= autoApprove.maxRevisionsBack. For the simulator; the
    operator reads the same verdict from the decision (``decide``), which also knows whether a
    rollback target exists."""
    auto = policy.authorization.auto_approve
    actions = [t.action for t in policy.triggers]
    fired = result.fired
    if not actions:
        return np.zeros(fired.shape, dtype=np.bool_)
    index = np.maximum(fired, 0)
    is_rollback = np.array([a == "Rollback" for a in actions], dtype=np.bool_)[index]
    allowed = np.array([a != "Hold" and a in auto.actions for a in actions], dtype=np.bool_)
    back_ok = ~is_rollback | (np.asarray(revisions_back) <= auto.max_revisions_back)
    ok: Bool = (
        (fired >= 0)
        & allowed[index]
        & (result.blocked == "")
        & (result.score <= auto.max_score)
        & back_ok
    )
    return ok


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
