"""One scenario's Monte Carlo run: the time loop of ``rollguard simulate``.

PURE: numpy + rollguard.api/domain; no I/O, no clock (simulated time starts at
``SIM_EPOCH``), randomness only from the seeds given. ``rollguard.domain.simulate`` is the
entry point; this module runs the batch.

Seeds run as one batch through exactly the operator's engine, in its two halves: the
stateless scoring (``engine.evaluate_rows``) of a block of evaluation times at once, then the
guard's state machine (``guard.advance``) once per policy interval, in time order; every
window ends at its evaluation time. The batch holds each seed twice: an *acted* copy, where a
Rollback or Pause that fires (not blocked, mode Enforce) is executed, and a *counterfactual*
copy that never acts; comparing the two gives the impact a policy avoids. Executing means:
``engine.record_action`` now (cooldown, budget), and, after a human's approval delay when the
action lies outside autoApprove and the scenario's rollout delay, a Rollback removes every
curable regression from that seed's future (until a ``reapply`` event brings it back) and a
Pause stops a curable ramp (a rollout in progress) from growing (``simseries``). Samples an
action changes are recomposed, and the rest of the block rescored, before the guard sees them,
so a run does not depend on how many evaluation times are scored together (tested).
Metrics over the resulting runs are computed in ``rollguard.domain.simmetrics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.api.policy import EffectivePolicy
from rollguard.domain import engine, guard
from rollguard.domain.scenarios import Scenario
from rollguard.domain.simseries import SimSeries

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

SIM_EPOCH = 1_704_067_200.0  # 2024-01-01T00:00:00Z: simulated time 0, in Unix seconds
ACTIONS = ("Rollback", "Pause", "Hold")

Progress = Callable[[int], None]
"""Called with the number of evaluation steps just done (for a progress bar)."""


@dataclass(frozen=True)
class Timeline:
    """Where samples and evaluations fall in a scenario under a policy."""

    dt: float  # seconds between samples
    samples: int  # T
    window: int  # N: samples per evaluation window
    window_s: float
    interval: float  # seconds between evaluations
    eval_times: F64  # (J,) seconds from the start
    eval_index: I64  # (J,) index of the newest sample in each window

    @property
    def sample_times(self) -> F64:
        return np.arange(self.samples, dtype=np.float64) * self.dt


def timeline(policy: EffectivePolicy, scenario: Scenario) -> Timeline:
    """Evaluations every policy interval from the first interval to the end of the scenario;
    each sees the samples in (t - window, t]."""
    dt, interval = scenario.dt, duration_seconds(policy.evaluation.interval)
    window_s = duration_seconds(policy.evaluation.window)
    eval_times = np.arange(interval, scenario.duration_s + 1e-9, interval)
    return Timeline(
        dt=dt,
        samples=scenario.samples,
        window=max(1, math.floor(window_s / dt + 1e-9)),
        window_s=window_s,
        interval=interval,
        eval_times=eval_times,
        eval_index=np.floor(eval_times / dt + 1e-9).astype(np.int64),
    )


@dataclass(frozen=True)
class ScenarioRun:
    """Everything one scenario's run produced, per evaluation j and seed b (acted copy unless
    named otherwise). ``values``/``present`` are kept only when asked (for plots)."""

    scenario: Scenario
    seeds: list[int]
    timeline: Timeline
    score: F64  # (J, B)
    score_counterfactual: F64  # (J, B)
    fired: I64  # (J, B) trigger index, -1 none
    blocked: Bool  # (J, B) fired but blocked by cooldown or budget
    executed: Bool  # (J, B) a Rollback or Pause was executed (possibly after approval)
    active: Bool  # (B, E, T) ground truth: effect e in force at sample t
    values: F64 | None = None  # (B, S, T) acted series
    present: Bool | None = None  # (B, S, T)


def human_delay(policy: EffectivePolicy, scenario: Scenario) -> float:
    """Seconds until an action outside autoApprove executes; inf when it never does."""
    timeout = duration_seconds(policy.authorization.approval_timeout)
    delay = None if scenario.approval_delay is None else duration_seconds(scenario.approval_delay)
    if delay is not None and delay <= timeout:
        return delay
    return timeout if policy.authorization.on_timeout == "Execute" else math.inf


# Evaluation times scored together: a block of about this many (time, member, signal) cells
# stays in the CPU cache; rows of samples are composed for a span of several blocks at once.
_BLOCK_CELLS = 1 << 16
_SPAN_BLOCKS = 8


def run_scenario(
    policy: EffectivePolicy,
    scenario: Scenario,
    seeds: list[int],
    *,
    keep_series: bool = False,
    progress: Progress | None = None,
) -> ScenarioRun:
    """Run ``seeds`` (one batch) of ``scenario`` under ``policy``."""
    tl = timeline(policy, scenario)
    n_b, n_j, n_s, window = len(seeds), tl.eval_times.size, len(policy.signals), tl.window
    series = SimSeries(scenario, [s.name for s in policy.signals], seeds, dt=tl.dt, pad=window - 1)
    state = engine.initial_state(policy, 2 * n_b)
    rules = guard.Rules.of(policy)
    action_of = np.array([ACTIONS.index(t.action) for t in policy.triggers] or [2])
    responds = action_of < 2  # Rollback or Pause
    enforce = policy.mode == "Enforce"
    delay_human = human_delay(policy, scenario)
    rollout = duration_seconds(scenario.rollout_delay)
    block = max(1, _BLOCK_CELLS // (2 * n_b * n_s))
    starts = tl.eval_index  # padded rows: the window of evaluation j is starts[j] + (0..N-1)

    score = np.empty((n_j, 2 * n_b))
    fired = np.empty((n_j, n_b), dtype=np.int64)
    blocked = np.zeros((n_j, n_b), dtype=np.bool_)
    executed = np.zeros((n_j, n_b), dtype=np.bool_)
    for s0 in range(0, n_j, block * _SPAN_BLOCKS):
        s1 = min(n_j, s0 + block * _SPAN_BLOCKS)
        lo = int(starts[s0])
        rows = series.rows(lo, int(starts[s1 - 1]) + window)
        for j0 in range(s0, s1, block):
            j1 = min(s1, j0 + block)
            # Scores of both copies at every evaluation time of the block: (J, 2, B).
            scores = engine.evaluate_rows(policy, rows, starts[j0:j1] - lo, window).score
            for j in range(j0, j1):
                now = SIM_EPOCH + float(tl.eval_times[j])
                moved = guard.advance(rules, scores[j - j0].reshape(2 * n_b), state, now=now)
                state = moved.state
                fired_acted = moved.fired[n_b:]
                fired[j] = fired_acted
                if fired_acted.max(initial=-1) < 0:
                    continue  # nothing fired, so nothing is blocked or executed
                blocked[j] = moved.blocked[n_b:] != ""
                if not enforce:
                    continue
                hit = (fired_acted >= 0) & responds[np.maximum(fired_acted, 0)] & ~blocked[j]
                if not hit.any():
                    continue
                auto = engine.auto_approved(
                    policy, fired_acted, moved.blocked[n_b:], scores[j - j0, 1]
                )
                delay = np.where(auto, 0.0, delay_human)
                go = hit & np.isfinite(delay)
                executed[j] = go
                if not go.any():
                    continue
                acted = np.concatenate([np.zeros(n_b, dtype=np.bool_), go])
                state = engine.record_action(state, acted, now=now)
                _execute(
                    series,
                    policy=policy,
                    fired=fired_acted,
                    go=go,
                    delay=delay,
                    rollout=rollout,
                    j=j,
                    tl=tl,
                )
                # Samples after now may have changed: recompose them, rescore the rest of the
                # block (later blocks are scored from the recomposed rows).
                members = np.flatnonzero(go)
                series.refresh(rows, lo, members, since=int(starts[j]) + 1)
                if j + 1 < j1:
                    later = starts[j + 1 : j1] - lo
                    part = rows.take(int(later[0]), int(later[-1]) + window, (1, members))
                    rescored = engine.evaluate_rows(policy, part, later - later[0], window)
                    scores[j + 1 - j0 :, 1, members] = rescored.score
            score[j0:j1] = scores.reshape(j1 - j0, 2 * n_b)
            if progress is not None:
                progress(j1 - j0)
    values, present = series.acted() if keep_series else (None, None)
    return ScenarioRun(
        scenario=scenario,
        seeds=list(seeds),
        timeline=tl,
        score=score[:, n_b:],
        score_counterfactual=score[:, :n_b],
        fired=fired,
        blocked=blocked,
        executed=executed,
        active=series.active(),
        values=values,
        present=present,
    )


def _execute(
    series: SimSeries,
    *,
    policy: EffectivePolicy,
    fired: I64,
    go: Bool,
    delay: F64,
    rollout: float,
    j: int,
    tl: Timeline,
) -> None:
    t = float(tl.eval_times[j])
    k = int(tl.eval_index[j])
    actions = np.array([p.action for p in policy.triggers])
    for action in ("Rollback", "Pause"):
        for wait in np.unique(delay[go]):
            members = np.flatnonzero(
                go & (delay == wait) & (actions[np.maximum(fired, 0)] == action)
            )
            series.apply(members, action, t + float(wait) + rollout, k)
