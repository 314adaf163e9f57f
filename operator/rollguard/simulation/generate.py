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
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.simulation.scenarios import Effect, Flapping, Scenario

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]
_G = TypeVar("_G", bound=np.generic)


@dataclass(frozen=True)
class Noise:
    """Per-seed noise and missing samples. noise[b, s, t] is added (Gaussian signals) or
    multiplied (log-normal signals); present[b, s, t] is False for a missing sample (read-only
    when nothing is missing). Both are (B, S, T) views of time-major (T, B, S) memory:
    ``time_major`` gives that layout back."""

    noise: F64  # (B, S, T)
    present: Bool  # (B, S, T)


def time_major(a: NDArray[_G]) -> NDArray[_G]:
    """(B, S, T) -> a (T, B, S) view (contiguous for the arrays made here)."""
    return a.transpose(2, 0, 1)


def member_major(a: NDArray[_G]) -> NDArray[_G]:
    """(T, B, S) -> a (B, S, T) view: the inverse of ``time_major``."""
    return a.transpose(1, 2, 0)


def sample_times(scenario: Scenario) -> F64:
    """Seconds from the scenario start of every sample: 0, dt, 2 dt, ..."""
    return np.arange(scenario.samples, dtype=np.float64) * scenario.dt


_SEED_BLOCK = 64  # seeds drawn before one blocked transpose into time-major memory


def generate_noise(scenario: Scenario, signals: list[str], seeds: list[int]) -> Noise:
    """Noise and missing-sample masks for ``seeds``, signals in the order given."""
    gens = [scenario.signals[name] for name in signals]
    n_b, n_s, n_t = len(seeds), len(signals), scenario.samples
    drop = np.array([g.drop_rate for g in gens])
    # Time-major (T, B, S): the AR(1) recursion below and the simulator's window statistics
    # touch whole rows. Each seed's draws are (S, T), so they are transposed a block at a time.
    z = np.empty((n_t, n_b, n_s))
    gaps = scenario.gaps
    present: Bool = (
        np.ones((n_t, n_b, n_s), dtype=np.bool_)
        if drop.any() or gaps
        else np.broadcast_to(np.True_, (n_t, n_b, n_s))  # nothing missing: no memory
    )
    eps = np.empty((min(_SEED_BLOCK, n_b), n_s, n_t))
    for i0 in range(0, n_b, _SEED_BLOCK):
        part = eps[: min(_SEED_BLOCK, n_b - i0)]
        for i, seed in enumerate(seeds[i0 : i0 + part.shape[0]]):
            rng = np.random.Generator(np.random.PCG64(seed))
            rng.standard_normal(out=part[i])
            if drop.any():
                present[:, i0 + i, :] = (rng.random((n_s, n_t)) >= drop[:, None]).T
        z[:, i0 : i0 + part.shape[0], :] = part.transpose(2, 0, 1)
    del eps
    # Per-signal constants repeated along a row (B x S), so that every operation below is one
    # long loop over a row rather than many loops over S.
    flat = z.reshape(n_t, n_b * n_s)
    phi = np.array([g.autocorrelation for g in gens])
    if phi.any():
        # z[t] = innovation * eps[t] + phi * z[t - 1]; the first product does not depend on
        # the recursion, so it is taken for every t at once.
        flat[1:] *= np.tile(np.sqrt(1.0 - phi**2), n_b)
        phi_row = np.tile(phi, n_b)
        carried = np.empty(n_b * n_s)
        for t in range(1, n_t):
            np.multiply(phi_row, flat[t - 1], out=carried)
            flat[t] += carried
    scale = 1.0 / np.sqrt(scenario.traffic)
    sigmas = np.array([g.noise.sigma * scale for g in gens])
    flat *= np.tile(sigmas, n_b)
    for s, g in enumerate(gens):
        if g.noise.model == "lognormal":
            column = z[:, :, s]
            column -= sigmas[s] ** 2 / 2.0
            np.exp(column, out=column)
    for gap in gaps:
        k0 = int(np.ceil(duration_seconds(gap.start) / scenario.dt - 1e-9))
        rows = [signals.index(n) for n in gap.signals] if gap.signals else list(range(n_s))
        present[k0 : k0 + gap.samples, :, rows] = False
    return Noise(noise=member_major(z), present=member_major(present))


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


def compose(
    scenario: Scenario, signals: list[str], noise: F64, shift: F64, *, out: F64 | None = None
) -> F64:
    """Values from noise (n, S, T) and level shifts (n or 1, S, T): clip(level + or * noise),
    laid out in memory like ``noise`` (or written into ``out``)."""
    if out is None:
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
    ``frozen_at[n, E]`` (inf: never). (1, S, len(t)) when every seed has the same shifts,
    which ``compose`` broadcasts. Laid out time-major in memory, like the noise."""
    mag = magnitudes(scenario, signals)
    factors: list[tuple[int, F64]] = []  # (effect, factor (len(t), 1 or n))
    for e, effect in enumerate(scenario.effects):
        on = live[:, e]
        if np.isinf(frozen_at[:, e]).all():  # the same growth for every seed: compute once
            if not on.any():
                continue  # cured everywhere: adds exactly nothing
            factor = effect_factor(scenario, effect, t, np.inf)[:, None]
            if not on.all():
                factor = factor * on.T
        else:
            factor = effect_factor(scenario, effect, t[:, None], frozen_at[None, :, e]) * on.T
        factors.append((e, factor))
    width = max((f.shape[1] for _, f in factors), default=1)
    out = np.zeros((t.shape[0], width, len(signals)))
    for e, factor in factors:
        for s in np.flatnonzero(mag[e]):
            out[:, :, s] += mag[e, s] * factor
    return member_major(out)
