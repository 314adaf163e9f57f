"""When the operator evaluates a policy: at the whole multiples of its evaluation interval in
Unix time, each once the query offset has passed after it (the samples up to that instant have
then been ingested by Prometheus). Every replica, every restart and ``rollguard backtest``
evaluate at the same instants, and a decision's ``evaluatedAt`` is one of them.

PURE: no I/O. Instants are computed in whole milliseconds, so a 1500ms interval lands on
exact instants too.
"""

from __future__ import annotations

import math


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def latest_instant(*, wall: float, interval: float, offset: float) -> float:
    """The newest evaluation instant whose offset has passed at ``wall``."""
    step = _ms(interval)
    return math.floor((wall - offset) * 1000 / step) * step / 1000


def next_instant(*, wall: float, last: float | None, interval: float, offset: float) -> float:
    """The instant to evaluate next: the newest one whose offset has passed at ``wall``, unless
    it was evaluated already (``last``); then the first instant after ``last``, due at that
    instant plus ``offset``. A late cycle skips the instants it missed rather than judging
    them after the fact."""
    latest = latest_instant(wall=wall, interval=interval, offset=offset)
    if last is None or latest > last:
        return latest
    step = _ms(interval)
    return (_ms(last) // step + 1) * step / 1000


def instants(*, start: float, end: float, interval: float) -> list[float]:
    """Every evaluation instant in [start, end]."""
    step = _ms(interval)
    first = -(-math.ceil(start * 1000) // step)
    last = math.floor(end * 1000) // step
    return [k * step / 1000 for k in range(first, last + 1)]
