"""The evaluation engine: one evaluation step for a batch of deployments under one policy.

PURE: numpy + rollguard.api only; no I/O, no clock (``now`` is an argument, Unix seconds).
The operator calls ``step`` once per policy per cycle with every bound deployment in the
batch; ``rollguard simulate`` calls it once per simulated evaluation with every seed in the
batch; ``rollguard replay`` calls it with a batch of one. Same code, same numbers.

Shapes: B = batch (deployments or seeds), S = signals (policy order), N = samples per window,
T = trigger points (policy order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollguard.api.policy import EffectivePolicy

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class Measurements:
    """Samples of every signal over the window ending at ``now``.

    values[b, s, n] is the n-th sample of signal s for batch member b; mask marks the samples
    that exist (missing data, NaN and samples outside the window are False). timestamps may be
    used for ordering only; statistics do not depend on them. ``available[b, s]`` is False
    when the query itself failed (Prometheus down): that signal is Inconclusive regardless of
    the mask.
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
    action_times[b, k]: Unix times of the most recent automatic actions (NaN padded), newest
        last, K = max(1, safety.maxActionsPerWindow.count + 1).
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


def initial_state(policy: EffectivePolicy, batch: int) -> GuardArrays:
    """The state of a batch that has never been evaluated."""
    raise NotImplementedError


def step(
    policy: EffectivePolicy,
    measurements: Measurements,
    state: GuardArrays,
    *,
    now: float,
) -> StepResult:
    """Evaluate every batch member once at time ``now``."""
    raise NotImplementedError


def record_action(state: GuardArrays, acted: Bool, *, now: float) -> GuardArrays:
    """The state after the members marked in ``acted`` took an automatic action at ``now``
    (starts the cooldown, spends budget, resets dwell timers)."""
    raise NotImplementedError
