"""From raw samples to ``Measurements``, so that the samples a decision records are exactly the
samples its numbers were computed from.

The measuring layer calls ``bound_samples`` on every series it fetched, BEFORE evaluating, then
``measurements_from_samples`` for the batch, and hands the same bounded samples to ``decide``
for the evidence. ``replay`` rebuilds its batch of one from the recorded samples with the same
function. PURE.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from rollguard.api.decision import MAX_SAMPLES, Samples
from rollguard.domain.engine import Measurements


def bound_samples(
    timestamps: ArrayLike,
    values: ArrayLike,
    *,
    since: float | None = None,
    until: float | None = None,
) -> tuple[list[float], list[float]]:
    """The samples an evaluation uses: finite values only, within [since, until] when given,
    oldest first (stable for equal timestamps), at most the newest ``MAX_SAMPLES``.

    Non-finite values (a ratio over zero traffic is NaN) are missing data, not measurements,
    and a decision could not record them.
    """
    ts = np.asarray(timestamps, dtype=np.float64).ravel()
    vs = np.asarray(values, dtype=np.float64).ravel()
    if ts.shape != vs.shape:
        raise ValueError(f"timestamps ({ts.size}) and values ({vs.size}) differ in length")
    keep = np.isfinite(ts) & np.isfinite(vs)
    if since is not None:
        keep &= ts >= since
    if until is not None:
        keep &= ts <= until
    ts, vs = ts[keep], vs[keep]
    order = np.argsort(ts, kind="stable")[-MAX_SAMPLES:]
    return [float(t) for t in ts[order]], [float(v) for v in vs[order]]


def measurements_from_samples(rows: Sequence[Sequence[Samples | None]]) -> Measurements:
    """A batch from per-member, per-signal samples (policy signal order). None marks a signal
    whose query failed. Samples are used in the order given; pass them through
    ``bound_samples`` first."""
    batch = len(rows)
    signals = len(rows[0]) if rows else 0
    if any(len(r) != signals for r in rows):
        raise ValueError("every batch member needs one entry per signal")
    width = max((len(s.values) for r in rows for s in r if s is not None), default=0)
    values = np.zeros((batch, signals, max(width, 1)), dtype=np.float64)
    mask = np.zeros(values.shape, dtype=np.bool_)
    available = np.ones((batch, signals), dtype=np.bool_)
    for b, row in enumerate(rows):
        for s, samples in enumerate(row):
            if samples is None:
                available[b, s] = False
                continue
            n = len(samples.values)
            values[b, s, :n] = samples.values
            mask[b, s, :n] = True
    return Measurements(values=values, mask=mask, available=available)
