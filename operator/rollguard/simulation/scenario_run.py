"""One scenario's Monte Carlo run: the time loop of ``rollguard simulate``.

PURE: numpy + rollguard.api and rollguard.core; no I/O, no clock (simulated time starts at
``SIM_EPOCH``), randomness only from the seeds given. ``rollguard.simulation.montecarlo`` is the
entry point; this module runs the batch.

Seeds run as one batch through exactly the operator's engine, in its two halves: the
stateless scoring (``engine.evaluate_rows``) of a block of evaluation times at once, then the
guard's state machine (``guard.advance``) once per policy interval, in time order; every
window holds the samples in [t - window, t]. The batch holds each seed twice: an *acted* copy,
which the operator runs, and a *counterfactual* copy that never acts; comparing the two gives
the impact a policy avoids.

Between evaluations the acted copy follows the operator's rules (``machine``), held for the
whole batch by ``simdecisions.Decisions`` as ``virtual.VirtualMember`` holds them for one
member: a seed fires only while it has no open decision and is not escalated; a fired point
becomes a decision, which may fall back to Hold, wait for a human (``scenario.approvalDelay``)
or the approval timeout, execute, and after a rollback be validated; a fire beyond the action
budget and a failed validation escalate the seed, which then decides nothing more. Executing
means ``engine.record_action`` at once (budget; a Rollback also starts the cooldown and resets
the dwell timers) and, once the rollout is done (``scenario.rolloutDelay``), a Rollback removes
every curable regression from that seed's future (until a ``reapply`` event brings it back)
and a Pause stops a curable ramp (a rollout in progress) from growing (``simseries``). Samples
an action changes are recomposed, and the rest of the block rescored, before the guard sees
them, so a run does not depend on how many evaluation times are scored together (tested), and
``VirtualMember`` run on a seed's acted samples makes the same decisions at the same times
(tests/unit/simulation/test_agreement.py). Metrics over the resulting runs are computed in
``rollguard.simulation.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.api.policy import ACTIONS, EffectivePolicy
from rollguard.core import engine, guard, machine
from rollguard.simulation.recorded import window_samples
from rollguard.simulation.scenarios import Scenario
from rollguard.simulation.seed_decisions import Decisions
from rollguard.simulation.seed_series import SimSeries

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

SIM_EPOCH = 1_704_067_200.0  # 2024-01-01T00:00:00Z: simulated time 0, in Unix seconds

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
    each sees the samples in [t - window, t], both ends included, as the operator's range
    query does (``recorded.window_samples``)."""
    dt, interval = scenario.dt, duration_seconds(policy.evaluation.interval)
    window_s = duration_seconds(policy.evaluation.window)
    eval_times = np.arange(interval, scenario.duration_s + 1e-9, interval)
    return Timeline(
        dt=dt,
        samples=scenario.samples,
        window=window_samples(window_s, dt),
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
    fired: I64  # (J, B) trigger index of the point that fired (a decision was made), -1 none
    blocked: Bool  # (J, B) fired but blocked by cooldown or budget
    recommended: NDArray[np.int8]  # (J, B) the decision's action (api ACTIONS index), -1 none
    executed: Bool  # (J, B) the decision made at j was executed (then or after approval)
    executions: Bool  # (J, B) a Rollback or Pause was executed at j
    escalation: NDArray[np.int8]  # (J, B) why humans were needed at j (simdecisions.ESCALATIONS)
    active: Bool  # (B, E, T) ground truth: effect e in force at sample t
    values: F64 | None = None  # (B, S, T) acted series
    present: Bool | None = None  # (B, S, T)


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
    decisions = Decisions(policy, scenario, series, evaluations=n_j)
    rollout = duration_seconds(scenario.rollout_delay)
    block = max(1, _BLOCK_CELLS // (2 * n_b * n_s))
    starts = tl.eval_index  # padded rows: the window of evaluation j is starts[j] + (0..N-1)
    # Who may fire: only acted copies, each while machine.may_fire says so.
    can_fire = np.zeros(2 * n_b, dtype=np.bool_)
    # Since when each copy's revision can have data, for warm-up (``revisions.revision_born``
    # with no ReplicaSet creation known): the newest executed Rollback, NaN before any.
    born = np.full((2, n_b), np.nan)
    now_at = SIM_EPOCH + tl.eval_times

    score = np.empty((n_j, 2 * n_b))
    fired = np.empty((n_j, n_b), dtype=np.int64)
    blocked = np.zeros((n_j, n_b), dtype=np.bool_)
    for s0 in range(0, n_j, block * _SPAN_BLOCKS):
        s1 = min(n_j, s0 + block * _SPAN_BLOCKS)
        lo = int(starts[s0])
        rows = series.rows(lo, int(starts[s1 - 1]) + window)
        for j0 in range(s0, s1, block):
            j1 = min(s1, j0 + block)
            # Scores of both copies at every evaluation time of the block: (J, 2, B).
            scores = engine.evaluate_rows(
                policy, rows, starts[j0:j1] - lo, window, now=now_at[j0:j1], born=born
            ).score
            for j in range(j0, j1):
                now = SIM_EPOCH + float(tl.eval_times[j])
                can_fire[n_b:] = decisions.may_fire
                moved = guard.advance(
                    rules, scores[j - j0].reshape(2 * n_b), state, now=now, can_fire=can_fire
                )
                state = moved.state
                fired_acted = moved.fired[n_b:]
                fired[j] = fired_acted
                if not decisions.open and fired_acted.max(initial=-1) < 0:
                    continue  # no decision made or open: nothing moves
                blocked[j] = moved.blocked[n_b:] != ""
                t, k = float(tl.eval_times[j]), int(tl.eval_index[j])
                rollbacks, pauses = decisions.step(
                    j,
                    now=now,
                    t=t,
                    k=k,
                    fired=fired_acted,
                    blocked=moved.blocked[n_b:],
                    score=scores[j - j0, 1],
                )
                state = _after_decisions(policy, state, decisions, j=j, blocked=moved.blocked)
                members = np.union1d(rollbacks, pauses)
                if not members.size:
                    continue
                state = _record_actions(state, members, rollbacks, n_b=n_b, now=now)
                born[1] = state.changed_at[n_b:]
                series.apply(rollbacks, "Rollback", t + rollout, k)
                series.apply(pauses, "Pause", t + rollout, k)
                # Samples after now may have changed: recompose them, rescore the rest of the
                # block (later blocks are scored from the recomposed rows).
                series.refresh(rows, lo, members, since=int(starts[j]) + 1)
                if j + 1 < j1:
                    later = starts[j + 1 : j1] - lo
                    part = rows.take(int(later[0]), int(later[-1]) + window, (1, members))
                    scores[j + 1 - j0 :, 1, members] = engine.evaluate_rows(
                        policy,
                        part,
                        later - later[0],
                        window,
                        now=now_at[j + 1 : j1],
                        born=born[1, members],
                    ).score
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
        recommended=decisions.recommended,
        executed=decisions.executed,
        executions=decisions.executions,
        escalation=decisions.escalation,
        active=series.active(),
        values=values,
        present=present,
    )


def _record_actions(
    state: engine.GuardArrays, members: I64, rollbacks: I64, *, n_b: int, now: float
) -> engine.GuardArrays:
    """The state once the acted copies of ``members`` executed their actions at ``now``; a
    Rollback (``rollbacks``) also changed the revision."""
    acted = np.zeros(2 * n_b, dtype=np.bool_)
    acted[n_b + members] = True
    changed = np.zeros(2 * n_b, dtype=np.bool_)
    changed[n_b + rollbacks] = True
    return engine.record_action(state, acted, now=now, changed=changed)


def _after_decisions(
    policy: EffectivePolicy,
    state: engine.GuardArrays,
    decisions: Decisions,
    *,
    j: int,
    blocked: NDArray[np.str_],
) -> engine.GuardArrays:
    """The guard state once the decisions made at evaluation ``j`` are known
    (``machine.after_decision``, for the acted copies whose point safety blocked: the only
    ones it can change; rare, so one member at a time through its GuardState). ``blocked``
    holds both copies, (2B,); the acted copies come second."""
    n_b = decisions.recommended.shape[1]
    members = np.flatnonzero((blocked[n_b:] != "") & (decisions.recommended[j] >= 0))
    if not members.size:
        return state
    arrays = {f.name: getattr(state, f.name).copy() for f in fields(state)}
    for b in members.tolist():
        i = n_b + b
        row = engine.GuardArrays(**{name: a[i : i + 1] for name, a in arrays.items()})
        [before] = engine.arrays_to_states(policy, row)
        after = machine.after_decision(
            before,
            blocked=str(blocked[i]),
            action=ACTIONS[int(decisions.recommended[j, b])],
        )
        if after is before:
            continue
        new = engine.state_to_arrays(policy, [after])
        for name, a in arrays.items():
            a[i] = getattr(new, name)[0]
    return engine.GuardArrays(**arrays)
