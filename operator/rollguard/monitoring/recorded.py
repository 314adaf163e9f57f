"""A file-backed source: answers range queries from a recorded series, for replay and backtests.

Used wherever ``rollguard.monitoring.measure`` should run without Prometheus: backtesting a
policy on a recording (``rollguard simulate`` on real data) and tests. The file format and its
parsing are ``rollguard.domain.series`` (CSV ``timestamp,signal,value`` or JSON); this module
only maps queries to recorded signals and evaluates them like Prometheus would at each step:
the newest sample at or before the evaluation time, if it is no older than the lookback.

A recording holds one deployment. Queries are recognised by their exact text: the
per-deployment rendering of each signal's query and, for batchable ones, the batched
rendering for that one deployment, which are the two texts ``measure`` sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rollguard.api.policy import EffectiveSignal
from rollguard.domain.series import Series as RecordedSeries
from rollguard.domain.series import load_series
from rollguard.monitoring.prometheus import QueryError, Series
from rollguard.monitoring.promql import plan, render

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
        lookback: float = LOOKBACK_SECONDS,
    ) -> None:
        """``queries`` maps each query text to the recorded signal it reads; ``labels`` are
        the labels of every returned series (``namespace`` and ``deployment``)."""
        unknown = sorted(set(queries.values()) - set(series.signals))
        if unknown:
            raise ValueError(f"no recorded signal {', '.join(unknown)}")
        self.series, self.queries, self.labels = series, dict(queries), dict(labels)
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
        for signal in signals:
            if signal.name not in series.signals:
                continue  # never recorded: the query fails, the signal is Inconclusive
            one = render(
                signal.query, namespace=namespace, deployment=deployment, revision=revision
            )
            queries[one] = signal.name
            signal_plan = plan(signal.query)
            if signal_plan.batched:
                queries[signal_plan.render([(namespace, deployment)])] = signal.name
        labels = {"namespace": namespace, "deployment": deployment}
        return cls(series=series, queries=queries, labels=labels)

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
        """Read a recording (``rollguard.domain.series`` formats; ``SeriesError`` on a bad
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
        present = self.series.mask[row]
        times, values = self.series.times[present], self.series.values[row, present]
        at = start + np.arange(int(np.floor((end - start) / step + 1e-9)) + 1) * step
        # Index of the newest sample at or before each evaluation time (-1: none yet).
        newest = np.searchsorted(times, at, side="right") - 1
        fresh = newest >= 0
        fresh[fresh] &= at[fresh] - times[newest[fresh]] <= self.lookback
        if not fresh.any():
            return []
        return [
            Series(
                labels=dict(self.labels),
                timestamps=at[fresh].astype(np.float64),
                values=values[newest[fresh]].astype(np.float64),
            )
        ]
