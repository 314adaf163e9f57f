"""One scenario's Monte Carlo run: the time loop of ``rollguard simulate``.

PURE: numpy + rollguard.api/domain; no I/O, no clock (simulated time starts at
``SIM_EPOCH``), randomness only from the seeds given. ``rollguard.domain.simulate`` is the
entry point; this module runs the batch.

Seeds run as one batch through exactly the operator's ``engine.step``,
once per policy interval, on the window of samples ending at that time. The batch holds each
seed twice: an *acted* copy, where a Rollback or Pause that fires (not blocked, mode Enforce)
is executed, and a *counterfactual* copy that never acts; comparing the two gives the impact a
policy avoids. Executing means: ``engine.record_action`` now (cooldown, budget), and, after a
human's approval delay when the action lies outside autoApprove and the scenario's rollout
delay, a Rollback removes every curable regression from that seed's future (until a
``reapply`` event brings it back) and a Pause stops a curable ramp (a rollout in progress) from growing.
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
from rollguard.domain import engine
from rollguard.domain.generate import (
    compose,
    effect_span,
    generate_noise,
    sample_times,
    shifts,
)
from rollguard.domain.scenarios import Scenario

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


class _Sim:
    """Mutable state of one batch run; only ``run_scenario`` uses it."""

    def __init__(
        self, policy: EffectivePolicy, scenario: Scenario, seeds: list[int], tl: Timeline
    ) -> None:
        self.policy, self.scenario, self.tl = policy, scenario, tl
        self.signals = [s.name for s in policy.signals]
        n_b, n_t, pad = len(seeds), tl.samples, tl.window - 1
        gen = generate_noise(scenario, self.signals, seeds)
        self.noise = gen.noise
        self.t = sample_times(scenario)
        n_e = len(scenario.effects)
        self.live = np.ones((n_b, n_e, n_t), dtype=np.bool_)
        self.frozen = np.full((n_b, n_e), np.inf)
        # [copy 0 = counterfactual, copy 1 = acted]; pad - 1 missing samples up front so that
        # every window, even the first ones, is a fixed-size view.
        shape = (2, n_b, len(self.signals), pad + n_t)
        self.values = np.full(shape, np.nan)
        self.mask = np.zeros(shape, dtype=np.bool_)
        full = compose(
            scenario,
            self.signals,
            self.noise,
            shifts(scenario, self.signals, self.t, self.live, self.frozen),
        )
        self.values[:, :, :, pad:] = full
        self.mask[:, :, :, pad:] = gen.present & np.isfinite(full)
        self.pad = pad
        self.reapply = scenario.reapply_times
        self.curable = np.array([e.curable for e in scenario.effects], dtype=np.bool_)
        self.grows = np.array([e.shape == "ramp" for e in scenario.effects], dtype=np.bool_)

    def apply(self, seeds: I64, action: str, at: float, now_index: int) -> None:
        """Execute ``action`` for batch members ``seeds`` taking effect at ``at`` seconds."""
        first = max(math.ceil(at / self.tl.dt - 1e-9), now_index + 1)
        if first >= self.tl.samples or seeds.size == 0:
            return
        for e, effect in enumerate(self.scenario.effects):
            if not self.curable[e] or effect.start_s > at:
                continue
            if action == "Rollback":
                later = [r for r in self.reapply if r > at]
                stop = math.ceil(later[0] / self.tl.dt - 1e-9) if later else self.tl.samples
                self.live[seeds, e, first:stop] = False
            elif self.grows[e]:
                self.frozen[seeds, e] = np.minimum(self.frozen[seeds, e], at)
        t = self.t[first:]
        values = compose(
            self.scenario,
            self.signals,
            self.noise[seeds, :, first:],
            shifts(self.scenario, self.signals, t, self.live[seeds, :, first:], self.frozen[seeds]),
        )
        self.values[1, seeds, :, self.pad + first :] = values
        present = self.mask[0, seeds, :, self.pad + first :]
        self.mask[1, seeds, :, self.pad + first :] = present & np.isfinite(values)

    def active(self) -> Bool:
        spans = [effect_span(self.scenario, e, self.t) for e in self.scenario.effects]
        if not spans:
            return np.zeros(self.live.shape, dtype=np.bool_)
        out: Bool = self.live & np.stack(spans)[None]
        return out


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
    sim = _Sim(policy, scenario, seeds, tl)
    n_b, n_j = len(seeds), tl.eval_times.size
    n_s = len(policy.signals)
    flat_values = sim.values.reshape(2 * n_b, n_s, -1)
    flat_mask = sim.mask.reshape(2 * n_b, n_s, -1)
    available = np.ones((2 * n_b, n_s), dtype=np.bool_)
    state = engine.initial_state(policy, 2 * n_b)
    action_of = np.array([ACTIONS.index(t.action) for t in policy.triggers] or [2])
    responds = action_of < 2  # Rollback or Pause
    enforce = policy.mode == "Enforce"
    delay_human = human_delay(policy, scenario)
    rollout = duration_seconds(scenario.rollout_delay)

    score = np.empty((n_j, 2 * n_b))
    fired = np.empty((n_j, n_b), dtype=np.int64)
    blocked = np.empty((n_j, n_b), dtype=np.bool_)
    executed = np.zeros((n_j, n_b), dtype=np.bool_)
    for j in range(n_j):
        k = int(tl.eval_index[j])
        now = SIM_EPOCH + float(tl.eval_times[j])
        window = slice(k, k + tl.window)  # padded coordinates: samples k - N + 1 .. k
        measured = engine.Measurements(
            flat_values[:, :, window], flat_mask[:, :, window], available
        )
        result = engine.step(policy, measured, state, now=now)
        state = result.state
        score[j] = result.score
        fired_acted = result.fired[n_b:]
        fired[j] = fired_acted
        blocked[j] = result.blocked[n_b:] != ""
        if enforce:
            hit = (fired_acted >= 0) & responds[np.maximum(fired_acted, 0)] & ~blocked[j]
            if hit.any():
                auto = engine.acts_automatically(policy, result)[n_b:]
                delay = np.where(auto, 0.0, delay_human)
                go = hit & np.isfinite(delay)
                executed[j] = go
                if go.any():
                    acted = np.concatenate([np.zeros(n_b, dtype=np.bool_), go])
                    state = engine.record_action(state, acted, now=now)
                    _execute(
                        sim,
                        policy=policy,
                        fired=fired_acted,
                        go=go,
                        delay=delay,
                        rollout=rollout,
                        j=j,
                    )
        if progress is not None:
            progress(1)
    return ScenarioRun(
        scenario=scenario,
        seeds=list(seeds),
        timeline=tl,
        score=score[:, n_b:],
        score_counterfactual=score[:, :n_b],
        fired=fired,
        blocked=blocked,
        executed=executed,
        active=sim.active(),
        values=sim.values[1, :, :, sim.pad :] if keep_series else None,
        present=sim.mask[1, :, :, sim.pad :] if keep_series else None,
    )


def _execute(
    sim: _Sim, *, policy: EffectivePolicy, fired: I64, go: Bool, delay: F64, rollout: float, j: int
) -> None:
    t = float(sim.tl.eval_times[j])
    k = int(sim.tl.eval_index[j])
    actions = np.array([p.action for p in policy.triggers])
    for action in ("Rollback", "Pause"):
        for wait in np.unique(delay[go]):
            members = np.flatnonzero(
                go & (delay == wait) & (actions[np.maximum(fired, 0)] == action)
            )
            sim.apply(members, action, t + float(wait) + rollout, k)
