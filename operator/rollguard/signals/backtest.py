"""Range data for a backtest: every signal of a policy for one deployment over [start, end],
fetched from Prometheus and laid on the grid the recorded-series runner uses.

Called by ``rollguard backtest``; the decisions are then made by the same code as
``rollguard simulate --series`` and the operator, at the operator's own evaluation instants
(``rollguard.core.schedule``): the range starts on the step's grid, as the operator's range queries
do, so with a step that divides the evaluation interval every instant is a sample time and
each evaluation sees the samples the operator's query at that instant saw.
"""

from __future__ import annotations

import math

from rollguard.api.policy import EffectivePolicy
from rollguard.files.series import MAX_GRID_POINTS, Row, Series, SeriesError, to_grid
from rollguard.signals.prometheus import Source
from rollguard.signals.promql import render

# Prometheus refuses range queries with more than 11,000 points per series.
MAX_POINTS = 11_000


def fetch(
    *,
    source: Source,
    policy: EffectivePolicy,
    namespace: str,
    deployment: str,
    revision: str = "",
    start: float,
    end: float,
    step: float,
) -> Series:
    """Every signal's samples, one range query per signal (split when the range is long)."""
    if not end > start:
        raise SeriesError(f"--to must be after --from (got {start} .. {end})")
    if not (math.isfinite(step) and step > 0):
        raise SeriesError(f"--step must be a positive number of seconds, got {step}")
    start = math.floor(start / step) * step
    points = (end - start) / step + 1
    if points > MAX_GRID_POINTS:
        raise SeriesError(
            f"--from/--to/--step: {points:.0f} samples per signal is more than {MAX_GRID_POINTS}; "
            "use a shorter range or a longer step"
        )
    rows: list[Row] = []
    for signal in policy.signals:
        try:
            query = render(
                signal.query, namespace=namespace, deployment=deployment, revision=revision
            )
        except ValueError as err:  # an empty value, such as $revision without --revision
            label = str(err).split()[0]
            raise SeriesError(
                f"--{label}: signal {signal.name}'s query uses ${label}; give its value"
            ) from None
        chunk = step * (MAX_POINTS - 1)
        at = start
        while at <= end:
            stop = min(end, at + chunk)
            for series in source.query_range(query=query, start=at, end=stop, step=step):
                for t, v in zip(series.timestamps.tolist(), series.values.tolist(), strict=True):
                    rows.append(Row(t, signal.name, v, None, f"prometheus: {signal.name} at {t}"))
            at = stop + step
    if not rows:
        raise SeriesError(
            f"Prometheus returned no samples for {namespace}/{deployment} between {start} and {end}"
        )
    return to_grid(rows, source="prometheus", signals=[s.name for s in policy.signals])
