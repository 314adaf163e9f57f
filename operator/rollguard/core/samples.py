"""From raw samples to ``Measurements``, so that the samples a decision records are exactly the
samples its numbers were computed from.

The measuring layer calls ``bound_samples`` on every series it fetched, BEFORE evaluating, then
``measurements_from_samples`` for the batch, and hands the same bounded samples to ``decide``
for the evidence. ``replay`` rebuilds its batch of one from the recorded samples with the same
function. PURE.

Warm-up (``warmup``): the measurements carry each member's ``born`` as given and, for samples
that record their grid ``step``, whether the series began inside the window [since, until]:
each sample's slot is its offset from ``since`` in steps (a range query evaluates at since,
since + step, ... up to until), and ``warmup.began_inside`` reads the slots, as the
simulators read their windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rollguard.api.decision import MAX_SAMPLES, Samples
from rollguard.core.engine import Measurements
from rollguard.core.warmup import began_inside

# More slots than this in one window is not a range query's grid (Prometheus answers at most
# 11,000 points per series); such samples are not placed, and their series counts as older.
_MAX_SLOTS = 100_000


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


def slots(samples: Samples, *, since: float, until: float) -> NDArray[np.bool_] | None:
    """Which slots of the window's grid (since, since + step, ... up to until) hold a sample,
    oldest first; None when the samples record no step or do not lie on that grid."""
    step = samples.step
    if step is None or not step > 0 or not until >= since:
        return None
    last = math.floor((until - since) / step + 1e-9)
    if last + 1 > _MAX_SLOTS:
        return None
    times = np.asarray(samples.timestamps, dtype=np.float64)
    offsets = (times - since) / step
    index = np.rint(offsets)
    if ((np.abs(offsets - index) > 1e-3) | (index < 0) | (index > last)).any():
        return None
    taken = np.zeros(last + 1, dtype=np.bool_)
    taken[index.astype(np.int64)] = True
    if int(taken.sum()) != times.size:  # two samples in one slot: not one grid
        return None
    return taken


def measurements_from_samples(
    rows: Sequence[Sequence[Samples | None]],
    *,
    born: Sequence[float | None] | None = None,
    since: float | None = None,
    until: float | None = None,
) -> Measurements:
    """A batch from per-member, per-signal samples (policy signal order). None marks a signal
    whose query failed. Samples are used in the order given; pass them through
    ``bound_samples`` first.

    ``born``: per member, since when its current revision can have data (None: unknown).
    With the window [``since``, ``until``], samples that record their step tell whether their
    series began inside it."""
    batch = len(rows)
    signals = len(rows[0]) if rows else 0
    if any(len(r) != signals for r in rows):
        raise ValueError("every batch member needs one entry per signal")
    width = max((len(s.values) for r in rows for s in r if s is not None), default=0)
    values = np.zeros((batch, signals, max(width, 1)), dtype=np.float64)
    mask = np.zeros(values.shape, dtype=np.bool_)
    available = np.ones((batch, signals), dtype=np.bool_)
    began = np.zeros((batch, signals), dtype=np.bool_)
    for b, row in enumerate(rows):
        for s, samples in enumerate(row):
            if samples is None:
                available[b, s] = False
                continue
            n = len(samples.values)
            values[b, s, :n] = samples.values
            mask[b, s, :n] = True
            if since is not None and until is not None:
                taken = slots(samples, since=since, until=until)
                began[b, s] = taken is not None and bool(began_inside(taken))
    if born is not None and len(born) != batch:
        raise ValueError("born needs one entry per batch member")
    return Measurements(
        values=values,
        mask=mask,
        available=available,
        born=None if born is None else np.array([math.nan if t is None else t for t in born]),
        began=began,
    )
