"""Synthetic signal series for a scenario, vectorised over seeds x signals x time.

PURE: numpy only. Seed ``k`` always yields the same series, whatever other seeds run beside
it (each seed has its own ``Generator(PCG64(seed))``), so a single seed of a large run can be
re-run alone and reproduced exactly.

A value is ``clip(level + noise)`` (Gaussian) or ``clip(level * noise)`` (log-normal), where
``level = baseline + sum of active effect shifts`` and the noise is AR(1) with unit marginal
variance, scaled by ``sigma / sqrt(traffic)``. Effects are kept apart from the noise so that
the simulator can remove a cured regression from one seed's future without regenerating it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.domain.scenarios import Effect, Flapping, Scenario

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class Noise:
    """Per-seed noise and missing samples. noise[b, s, t] is added (Gaussian signals) or
    multiplied (log-normal signals); present[b, s, t] is False for a missing sample."""

    noise: F64  # (B, S, T)
    present: Bool  # (B, S, T)


def sample_times(scenario: Scenario) -> F64:
    """Seconds from the scenario start of every sample: 0, dt, 2 dt, ..."""
    return np.arange(scenario.samples, dtype=np.float64) * scenario.dt


def generate_noise(scenario: Scenario, signals: list[str], seeds: list[int]) -> Noise:
    """Noise and missing-sample masks for ``seeds``, signals in the order given."""
    gens = [scenario.signals[name] for name in signals]
    n_b, n_s, n_t = len(seeds), len(signals), scenario.samples
    drop = np.array([g.drop_rate for g in gens])
    eps = np.empty((n_b, n_s, n_t))
    present = np.ones((n_b, n_s, n_t), dtype=np.bool_)
    for i, seed in enumerate(seeds):
        rng = np.random.Generator(np.random.PCG64(seed))
        eps[i] = rng.standard_normal((n_s, n_t))
        if drop.any():
            present[i] = rng.random((n_s, n_t)) >= drop[:, None]
    phi = np.array([g.autocorrelation for g in gens])
    # Time-major so the AR(1) recursion below touches contiguous rows.
    z = np.ascontiguousarray(eps.transpose(2, 0, 1))
    del eps
    if phi.any():
        innovation = np.sqrt(1.0 - phi**2)
        for t in range(1, n_t):
            z[t] *= innovation
            z[t] += phi * z[t - 1]
    scale = 1.0 / np.sqrt(scenario.traffic)
    noise = np.empty((n_b, n_s, n_t))
    for s, g in enumerate(gens):  # one signal at a time: no full-size temporaries
        sigma = g.noise.sigma * scale
        row = noise[:, s, :]
        np.multiply(z[:, :, s].T, sigma, out=row)
        if g.noise.model == "lognormal":
            row -= sigma**2 / 2.0
            np.exp(row, out=row)
    for gap in scenario.gaps:
        k0 = int(np.ceil(duration_seconds(gap.start) / scenario.dt - 1e-9))
        rows = [signals.index(n) for n in gap.signals] if gap.signals else list(range(n_s))
        present[:, rows, k0 : k0 + gap.samples] = False
    return Noise(noise=noise, present=present)


def effect_end(scenario: Scenario, effect: Effect) -> float:
    """When the effect stops by itself (the end of the run when it does not)."""
    end = effect.end_s
    return scenario.duration_s + scenario.dt if end is None else end


def effect_span(scenario: Scenario, effect: Effect, t: F64) -> Bool:
    """Whether the effect is in force at times ``t`` (ground truth: a regression is active
    from its start to its end, including the off phases of a flapping one)."""
    return (t >= effect.start_s) & (t < effect_end(scenario, effect))


def effect_factor(scenario: Scenario, effect: Effect, t: F64, frozen_at: F64 | float) -> F64:
    """Fraction of the magnitude in force at times ``t`` (broadcast with ``frozen_at``).

    ``frozen_at`` is when a Pause stopped the rollout: a ramp or drift grows no further after
    it. Off phases of a flapping effect and times outside its span give 0.
    """
    start = effect.start_s
    grown = np.maximum(np.minimum(t, frozen_at) - start, 0.0)
    if effect.shape == "step":
        factor = np.ones_like(grown)
    elif effect.shape == "ramp":
        factor = np.minimum(grown / (effect.ramp_s or 1.0), 1.0)
    else:
        ramp = effect.ramp_s or (effect_end(scenario, effect) - start)
        factor = grown / ramp
    factor = np.where(effect_span(scenario, effect, t), factor, 0.0)
    if isinstance(effect, Flapping):
        phase = np.mod(t - start, duration_seconds(effect.period))
        factor = np.where(phase < duration_seconds(effect.on_for), factor, 0.0)
    return factor


def magnitudes(scenario: Scenario, signals: list[str]) -> F64:
    """magnitude[e, s]: shift of signal s at full strength of effect e."""
    out = np.zeros((len(scenario.effects), len(signals)))
    for e, effect in enumerate(scenario.effects):
        for name, shift in effect.magnitude.items():
            out[e, signals.index(name)] = shift
    return out


def compose(scenario: Scenario, signals: list[str], noise: F64, shift: F64) -> F64:
    """Values from noise (n, S, T) and level shifts (n, S, T): clip(level + or * noise)."""
    out = np.empty_like(noise)
    for s, name in enumerate(signals):
        gen = scenario.signals[name]
        level = gen.baseline + shift[:, s]
        if gen.noise.model == "lognormal":
            np.multiply(level, noise[:, s], out=out[:, s])
        else:
            np.add(level, noise[:, s], out=out[:, s])
        if gen.floor is not None or gen.ceiling is not None:
            np.clip(out[:, s], gen.floor, gen.ceiling, out=out[:, s])
    return out


def shifts(
    scenario: Scenario,
    signals: list[str],
    t: F64,
    live: Bool,
    frozen_at: F64,
) -> F64:
    """Level shifts (n, S, len(t)) of n seeds, given per seed and effect whether the effect is
    live (not cured) at each time ``live[n, E, len(t)]`` and when it was frozen
    ``frozen_at[n, E]`` (inf: never)."""
    mag = magnitudes(scenario, signals)
    out = np.zeros((live.shape[0], len(signals), t.shape[0]))
    for e, effect in enumerate(scenario.effects):
        if np.isinf(frozen_at[:, e]).all():  # the same for every seed: compute once
            factor = effect_factor(scenario, effect, t, np.inf)[None, :] * live[:, e]
        else:
            factor = effect_factor(scenario, effect, t, frozen_at[:, e, None]) * live[:, e]
        for s in np.flatnonzero(mag[e]):
            out[:, s] += mag[e, s] * factor
    return out
