"""A file-backed source: answers range queries from a recorded series, for replay and backtests.

Used wherever ``rollguard.signals.measure`` should run without Prometheus: backtesting a
policy on a recording (``rollguard simulate`` on real data) and tests. The file format and its
parsing are ``rollguard.files.series`` (CSV ``timestamp,signal,value`` or JSON); this module
only maps queries to recorded signals and answers each range query as Prometheus would.

What a recording holds is each signal's *query result* on the recording's grid (what a range
query of it returned), not raw scrapes: a grid point without a sample is a time at which the
query returned nothing. ``measure`` sends each signal's query (an instant-vector expression
such as ``sum(rate(...[1m]))``) as ``/api/v1/query_range``, which evaluates it at start,
start + step, ... up to end. The stand-in answers at the same times with the value of the
recording's newest grid point at or before each one, and only while that point holds a
sample: a gap in the recording stays a gap, its last value is never repeated through it. That
is what Prometheus does for the series rollguard queries: a scraped series or a rule's output
that stops gets a staleness marker, after which an instant selector returns nothing, so the
5-minute lookback (``LOOKBACK_SECONDS``) only bridges the time between two evaluations of a
live series; it still bounds how long a point is held when the recording's grid is coarser
than 5 minutes. (A range selector, ``x[5m]``, returns raw samples only; ``rate`` and friends
over it are what the recording already holds.) At the recording's own step and grid the
answer is exactly the recorded samples in [start, end], as ``simulate --series`` sees them.

A recording holds one deployment. Queries are recognised by their exact text: the
per-deployment rendering of each signal's query and, for batchable ones, the batched
rendering for that one deployment, which are the two texts ``measure`` sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rollguard.api.signal import EffectiveSignal
from rollguard.files.series import Series as RecordedSeries
from rollguard.files.series import load_series
from rollguard.signals.prometheus import QueryError, Series
from rollguard.signals.promql import Target, plan, render

# Prometheus' default lookback: a sample older than this is stale at an evaluation time.
LOOKBACK_SECONDS = 300.0


class RecordedSource:
    """Range queries answered from a recording of one deployment's signals."""

    def __init__(
        self,
        *,
        series: RecordedSeries,
        queries: Mapping[str, str],
        labels: Mapping[str, str],
        query_labels: Mapping[str, Mapping[str, str]] | None = None,
        lookback: float = LOOKBACK_SECONDS,
    ) -> None:
        """``queries`` maps each query text to the recorded signal it reads; ``labels`` are
        the labels of every returned series, ``query_labels`` more for some query texts (a
        batched query's key labels, which split its result)."""
        unknown = sorted(set(queries.values()) - set(series.signals))
        if unknown:
            raise ValueError(f"no recorded signal {', '.join(unknown)}")
        self.series, self.queries, self.labels = series, dict(queries), dict(labels)
        self.query_labels = {q: dict(extra) for q, extra in (query_labels or {}).items()}
        self.lookback = lookback
        self.queries_served = 0

    @classmethod
    def for_signals(
        cls,
        *,
        series: RecordedSeries,
        signals: Sequence[EffectiveSignal],
        namespace: str,
        deployment: str,
        revision: str = "",
    ) -> RecordedSource:
        """A source that answers the queries ``measure`` sends for these signals and this
        deployment."""
        queries: dict[str, str] = {}
        query_labels: dict[str, dict[str, str]] = {}
        target = Target(namespace, deployment, revision)
        for signal in signals:
            if signal.name not in series.signals:
                continue  # never recorded: the query fails, the signal is Inconclusive
            one = render(
                signal.query, namespace=namespace, deployment=deployment, revision=revision
            )
            queries[one] = signal.name
            signal_plan = plan(signal.query)
            if signal_plan.batched:
                batched = signal_plan.render([target])
                queries[batched] = signal.name
                query_labels[batched] = dict(
                    zip(signal_plan.key_labels, signal_plan.key(target), strict=True)
                )
        labels = {"namespace": namespace, "deployment": deployment}
        return cls(series=series, queries=queries, labels=labels, query_labels=query_labels)

    @classmethod
    def load(
        cls,
        *,
        path: Path,
        signals: Sequence[EffectiveSignal],
        namespace: str,
        deployment: str,
        revision: str = "",
    ) -> RecordedSource:
        """Read a recording (``rollguard.files.series`` formats; ``SeriesError`` on a bad
        file) and answer these signals' queries from it."""
        recorded = load_series(path=path, signals=[s.name for s in signals])
        return cls.for_signals(
            series=recorded,
            signals=signals,
            namespace=namespace,
            deployment=deployment,
            revision=revision,
        )

    def query_range(self, *, query: str, start: float, end: float, step: float) -> list[Series]:
        signal = self.queries.get(query)
        if signal is None:
            raise QueryError(f"no recorded series answers the query {query}")
        if not (end >= start and step > 0):
            raise ValueError(f"bad range: start={start} end={end} step={step}")
        self.queries_served += 1
        row = self.series.signals.index(signal)
        recorded = self.series
        at = start + np.arange(int(np.floor((end - start) / step + 1e-9)) + 1) * step
        # The recording's newest grid point at or before each evaluation time; it answers only
        # when it holds a sample (a missing point is the end of the series until the next one).
        point = np.floor((at - recorded.start) / recorded.step + 1e-9).astype(np.int64)
        fresh = (point >= 0) & (point < recorded.mask.shape[1])
        fresh[fresh] &= recorded.mask[row, point[fresh]]
        fresh[fresh] &= at[fresh] - recorded.times[point[fresh]] <= self.lookback
        if not fresh.any():
            return []
        return [
            Series(
                labels={**self.labels, **self.query_labels.get(query, {})},
                timestamps=at[fresh].astype(np.float64),
                values=recorded.values[row, point[fresh]].astype(np.float64),
            )
        ]
