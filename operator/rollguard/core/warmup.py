"""Warm-up is not missing data: the one rule, for every path that judges a window.

PURE: numpy only. ``engine`` applies the rule (``young``, ``warming_up``; and
``rows_began_inside`` on the simulator's ``sample_rows``) for the operator's cycle, ``replay``,
``simulate --series`` and the Monte Carlo alike; whoever knows where a window's samples lie in
time says whether its series began inside it (``began_inside``):
``samples.measurements_from_samples`` from timestamps and the range query's step (the
operator, replay), ``simulation.recorded`` from windows on the series' grid.

The rule. A signal with too few samples in the whole window (fewer than minSamples, or a
failed query) is *warming up* when its series is younger than the window, that is when
either

* the member's current revision can have data only since ``born`` (its rollout start,
  ``revisions.revision_born``) and now - born < window: the window does not lie wholly after
  the rollout yet (``young``); or
* its samples say so: laid out on the window's time grid (one slot per step, oldest first),
  they fill a contiguous run of slots that starts after the window's first slot and reaches
  its last, none missing after the first (``began_inside``): the series began inside the
  window, as a ``$revision``-scoped query does after a rollout or a rollback. A series back
  from an outage longer than the window looks the same and is treated the same: its samples
  flow again, and are judged once there are minSamples of them.

A warming-up signal is Inconclusive whatever onMissingData says (``severity.severities``),
and the evaluation, the status and a decision's evidence say so (``warmingUp``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rollguard.core.statistics.sample_rows import SampleRows, all_valid, row_indices

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


def young(now: float | F64, born: F64, window: float) -> Bool:
    """Where the current revision rolled out less than ``window`` seconds before ``now``
    (now - born < window, broadcast); a NaN born (unknown) is never young."""
    out: Bool = (np.asarray(now, dtype=np.float64) - np.asarray(born, dtype=np.float64)) < window
    return out


def warming_up(conclusive: Bool, young: Bool | None, began: Bool | None) -> Bool:
    """(..., S): the rule. ``conclusive`` (..., S) says which signals have enough samples in
    the whole window, ``young`` (...) which members' revisions are younger than the window,
    ``began`` (..., S) which series began inside it; None: not known."""
    warming: Bool = np.zeros(np.shape(conclusive), dtype=np.bool_)
    if young is not None:
        warming |= young[..., None]
    if began is not None:
        warming |= began
    warming &= ~conclusive
    return warming


def began_inside(valid: Bool) -> Bool:
    """(...) from (..., N) samples laid out on the window's time grid, oldest first: whether
    the series began inside the window: its samples fill every slot from some slot after the
    window's first to its last (the module docstring states the rule). ``rows_began_inside``
    on one window."""
    valid = np.asarray(valid, dtype=np.bool_)
    if valid.shape[-1] == 0:
        return np.zeros(valid.shape[:-1], dtype=np.bool_)
    index: list[slice | I64] = [slice(n, n + 1) for n in range(valid.shape[-1])]
    began: Bool = _began(np.moveaxis(valid, -1, 0), index)[0]
    return began


def rows_began_inside(rows: SampleRows, starts: I64, window: int) -> Bool:
    """(J, ...): ``began_inside`` of each window of ``window`` rows starting at each of
    ``starts``; rows are on the time grid (row t one step after row t - 1)."""
    starts = np.asarray(starts, dtype=np.int64)
    if window < 1 or starts.size == 0 or all_valid(rows, starts, window):
        return np.zeros((starts.size, *rows.valid.shape[1:]), dtype=np.bool_)
    return _began(rows.valid, row_indices(starts, window))


def _began(valid: Bool, index: list[slice | I64]) -> Bool:
    """Row by row, oldest first: a sample in some slot after the first, none missing since."""
    seen = valid[index[0]].copy()
    broken = np.zeros(seen.shape, dtype=np.bool_)
    for ix in index[1:]:
        now = valid[ix]
        broken |= seen & ~now
        seen |= now
    began: Bool = seen & ~broken & ~valid[index[0]]
    return began
