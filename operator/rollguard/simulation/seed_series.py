"""The simulated series of one batch of seeds, and what executed actions do to them.

PURE: numpy + rollguard.core; no I/O, no clock. Only the Monte Carlo uses it
(``rollguard.simulation.scenario_run`` and ``simdecisions``).

Each seed is held twice: copy 0, the counterfactual that never acts, and copy 1, the acted
copy. Both come from the same noise; a Rollback removes every curable regression from the
acted copy's future (until a ``reapply`` event brings it back) and a Pause stops a curable ramp
(a rollout in progress) from growing. The scenario also says what the Deployment is doing, as
the operator sees it: a rollout is in progress while a curable ramp is still ramping
(``rolling_out``), and an approved older revision exists to roll back to while the seed runs a
bad revision (``rollback_target``). A sample's value depends only on the noise and on which
cures and freezes apply at its time, and an action only changes samples after it, so the rows
the engine reads are composed when needed, a block of evaluation times at a time, from the
current cures and freezes: the same values the series would have held had every action
rewritten it eagerly, without keeping two full copies of it in memory.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from rollguard.core.statistics.sample_rows import SampleRows
from rollguard.simulation.generate import (
    compose,
    effect_end,
    effect_span,
    generate_noise,
    magnitudes,
    member_major,
    sample_times,
    shifts,
    time_major,
)
from rollguard.simulation.scenarios import Scenario

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


class SimSeries:
    """Noise, cures and freezes of a batch; rows of samples for the engine on demand.

    Rows are indexed in padded coordinates: row r holds sample r - pad (pad = window - 1), so
    the window of the evaluation whose newest sample is k spans rows k .. k + pad and even the
    first windows have N rows (missing samples before the start and after the end).
    """

    def __init__(
        self, scenario: Scenario, signals: list[str], seeds: list[int], *, dt: float, pad: int
    ) -> None:
        self.scenario, self.signals, self.dt, self.pad = scenario, signals, dt, pad
        gen = generate_noise(scenario, signals, seeds)
        self.noise = time_major(gen.noise)  # (T, B, S)
        self.present = time_major(gen.present)  # (T, B, S)
        self.t = sample_times(scenario)
        n_b, n_t, n_e = len(seeds), self.t.size, len(scenario.effects)
        # live[b, e, t]: effect e not cured at sample t in seed b's acted copy (time-major).
        self.live = member_major(np.ones((n_t, n_b, n_e), dtype=np.bool_))
        self.frozen = np.full((n_b, n_e), np.inf)
        # The first sample at which a seed's acted copy may differ from its counterfactual.
        self.diverged = np.full(n_b, n_t, dtype=np.int64)
        self.base = shifts(
            scenario, signals, self.t, np.ones((1, n_e, n_t), np.bool_), np.full((1, n_e), np.inf)
        )
        self.shifted = magnitudes(scenario, signals).any(axis=0)  # (S,) some effect shifts it
        self._buffer: SampleRows | None = None
        self.reapply = scenario.reapply_times
        self.curable = np.array([e.curable for e in scenario.effects], dtype=np.bool_)
        self.grows = np.array([e.shape == "ramp" for e in scenario.effects], dtype=np.bool_)
        # When a new bad revision arrives: a curable regression begins, or GitOps re-applies.
        starts = [
            e.start_s for e, cures in zip(scenario.effects, self.curable, strict=True) if cures
        ]
        self.releases = np.array(sorted([*starts, *self.reapply]), dtype=np.float64)

    @property
    def samples(self) -> int:
        return int(self.t.size)

    @property
    def seeds(self) -> int:
        return int(self.noise.shape[1])

    def rolling_out(self, seeds: I64, *, at: float, index: int) -> Bool:
        """(len(seeds),) whether the acted copy of each of ``seeds`` has a rollout in progress
        at ``at`` seconds (newest sample ``index``): a curable ramp in force and not cured that
        is still ramping, or was paused before it finished (a paused rollout is still in
        progress)."""
        out = np.zeros(seeds.size, dtype=np.bool_)
        for e, effect in enumerate(self.scenario.effects):
            if not (self.curable[e] and self.grows[e]):
                continue
            if not effect.start_s <= at < effect_end(self.scenario, effect):
                continue
            done = effect.start_s + (effect.ramp_s or 0.0)
            ramping = (self.frozen[seeds, e] < done) | (at < done)
            out |= ramping & self.live[seeds, e, index]
        return out

    def rollback_target(self, rolled_back_at: F64, *, at: float) -> Bool:
        """Whether each seed has an approved older revision to roll back to at ``at`` seconds,
        given when its last rollback took effect (NaN: never): it runs a bad revision from the
        start, and again once one arrives after its rollback (``releases``)."""
        arrived = np.searchsorted(self.releases, at, side="right")
        before = np.searchsorted(self.releases, rolled_back_at, side="right")
        target: Bool = np.isnan(rolled_back_at) | (arrived > before)
        return target

    def _values(
        self,
        first: int,
        stop: int,
        seeds: I64 | slice | None,
        out: F64 | None = None,
        signals: list[int] | None = None,
    ) -> F64:
        """Time-major values (stop - first, n, S) of samples first..stop-1: the counterfactual
        of every seed when ``seeds`` is None, else the acted copy of ``seeds``. With
        ``signals``, only those are composed into ``out``."""
        if seeds is None:
            noise, shift = self.noise[first:stop], self.base[:, :, first:stop]
        else:
            noise = self.noise[first:stop, seeds]
            live = time_major(self.live)[first:stop, seeds]
            shift = shifts(
                self.scenario,
                self.signals,
                self.t[first:stop],
                member_major(live),
                self.frozen[seeds],
            )
        if out is not None and signals is not None:
            for s in signals:
                compose(
                    self.scenario,
                    [self.signals[s]],
                    member_major(noise[:, :, s : s + 1]),
                    shift[:, s : s + 1],
                    out=member_major(out[:, :, s : s + 1]),
                )
            return out
        target = None if out is None else member_major(out)
        values = compose(self.scenario, self.signals, member_major(noise), shift, out=target)
        return time_major(values)

    def rows(self, start: int, stop: int) -> SampleRows:
        """Rows start..stop-1 (padded coordinates) of both copies: (R, 2, B, S). They live in
        a buffer reused by the next call (fresh memory is costly; one span is used at a time)."""
        n_b, n_s = self.noise.shape[1:]
        if self._buffer is None or self._buffer.x.shape[0] < stop - start:
            self._buffer = SampleRows.missing((stop - start, 2, n_b, n_s))
        rows = self._buffer.take(0, stop - start, ())
        first, end = max(start - self.pad, 0), min(stop - self.pad, self.samples)
        at = slice(first + self.pad - start, max(end + self.pad - start, 0))
        for gap in (slice(0, at.start), slice(at.stop, None)):  # before the start, after the end
            rows.x[gap] = 0.0
            rows.valid[gap] = False
        if first >= end:
            return rows
        self._values(first, end, None, out=rows.x[at, 0])
        rows.accept(self.present[first:end], at=(at, 0))
        diverged = np.flatnonzero(self.diverged < end)
        if diverged.size < n_b:  # the acted copy is the counterfactual, but where it diverged
            rows.x[at, 1] = rows.x[at, 0]
            rows.valid[at, 1] = rows.valid[at, 0]
        self.refresh(rows, start, diverged, since=first)
        return rows

    def refresh(self, rows: SampleRows, start: int, seeds: I64, *, since: int) -> None:
        """Recompose the acted copy of ``seeds`` (sorted, distinct) in ``rows``, which begin at
        padded row ``start``, from sample ``since`` on, after cures or freezes changed."""
        first = max(since, start - self.pad, 0)
        end = min(start + rows.x.shape[0] - self.pad, self.samples)
        if seeds.size == 0 or first >= end:
            return
        at = slice(first + self.pad - start, end + self.pad - start)
        # A sample missing in the counterfactual (copy 0) stays missing in the acted copy.
        if seeds.size == self.noise.shape[1]:  # everyone: compose in place
            # A signal no effect shifts is the same in both copies.
            shifted = [int(s) for s in np.flatnonzero(self.shifted)]
            for same in np.flatnonzero(~self.shifted):
                rows.x[at, 1, :, same] = rows.x[at, 0, :, same]
                rows.valid[at, 1, :, same] = rows.valid[at, 0, :, same]
            self._values(first, end, slice(None), out=rows.x[at, 1], signals=shifted)
            for s in shifted:
                rows.accept(rows.valid[at, 0, :, s], at=(at, 1, slice(None), s))
        else:
            values = self._values(first, end, seeds)
            rows.write(values, rows.valid[at, 0, seeds], at=(at, 1, seeds))

    def apply(self, seeds: I64, action: str, at: float, now_index: int) -> None:
        """Execute ``action`` for seeds ``seeds`` taking effect at ``at`` seconds; samples up
        to ``now_index`` never change."""
        first = max(math.ceil(at / self.dt - 1e-9), now_index + 1)
        if first >= self.samples or seeds.size == 0:
            return
        for e, effect in enumerate(self.scenario.effects):
            if not self.curable[e] or effect.start_s > at:
                continue
            if action == "Rollback":
                later = [r for r in self.reapply if r > at]
                stop = math.ceil(later[0] / self.dt - 1e-9) if later else self.samples
                self.live[seeds, e, first:stop] = False
            elif self.grows[e]:
                self.frozen[seeds, e] = np.minimum(self.frozen[seeds, e], at)
        self.diverged[seeds] = np.minimum(self.diverged[seeds], first)

    def acted(self) -> tuple[F64, Bool]:
        """The acted copy's values and present samples, (B, S, T), as they end up."""
        everyone = np.arange(self.noise.shape[1])
        values = self._values(0, self.samples, everyone)
        counterfactual = self._values(0, self.samples, None)
        present = self.present & np.isfinite(counterfactual) & np.isfinite(values)
        return member_major(values), member_major(present)

    def active(self) -> Bool:
        """Ground truth (B, E, T): effect e in force at sample t of seed b's acted copy."""
        spans = [effect_span(self.scenario, e, self.t) for e in self.scenario.effects]
        if not spans:
            return np.zeros(self.live.shape, dtype=np.bool_)
        out: Bool = self.live & np.stack(spans)[None]
        return out
