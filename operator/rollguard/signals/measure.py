"""One measuring cycle: every signal of a policy, for every deployment bound to it.

Called by the operator once per policy per cycle (and by anything else that measures live,
such as an integration test); ``rollguard replay`` does not measure, it reads the samples a
decision recorded. Cost grows with policies x signals, not with deployments: a batched signal
is ONE range query for all targets (more only beyond ``max_batch`` targets, or where targets'
names could be confused: ``BatchPlan.batches``), a signal that cannot be batched is one query
per target. The result is split per target by the plan's key labels (``BatchPlan.key``).
``to_measurements`` then builds the decision engine's input and the bounded samples that
decisions record as evidence.

Per target and signal the outcome is one of: samples (possibly none: missing data, which the
domain reports as Inconclusive), or unavailable with a reason (the query failed, or it
returned more than one series for the target). Source failures never escape: they are
recorded per signal, and ``MeasurementBatch.transient_failure`` tells the caller to retry
(a TemporaryError) after recording the Inconclusive result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from rollguard.api.base import duration_seconds
from rollguard.api.decision import MAX_SAMPLES, Samples
from rollguard.api.policy import EffectivePolicy, QueryMode
from rollguard.api.signal import EffectiveSignal
from rollguard.core.engine import Measurements
from rollguard.core.samples import bound_samples, measurements_from_samples
from rollguard.signals.prometheus import F64, MonitoringError, Series, Source
from rollguard.signals.promql import MAX_BATCH, BatchPlan, InvalidQuery, Target, plan, render

__all__ = [
    "MAX_BATCH",
    "MeasurementBatch",
    "SignalRun",
    "SignalSamples",
    "Target",
    "measure",
    "query_step",
    "to_measurements",
]


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields, not objects
class SignalSamples:
    """One signal of one target: the samples, or why there are none to trust."""

    timestamps: F64
    values: F64
    available: bool
    query: str  # the query as rendered for this target alone: the decision's evidence
    message: str = ""


@dataclass(frozen=True)
class SignalRun:
    """How one signal was queried this cycle."""

    signal: str
    mode: QueryMode
    reason: str  # why it ran per deployment, if it did
    queries: tuple[str, ...]  # the texts sent
    error: str = ""  # the last failure, "" when every query succeeded
    transient: bool = False  # that failure may heal by itself (Prometheus down, garbage)

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True, eq=False)
class MeasurementBatch:
    """Everything one cycle measured: ``samples[b][s]`` for target b and signal s (policy
    order), plus how each signal was queried and counters for metrics."""

    targets: tuple[Target, ...]
    signals: tuple[str, ...]
    start: float
    end: float
    step: float
    samples: tuple[tuple[SignalSamples, ...], ...]
    runs: tuple[SignalRun, ...]
    queries_issued: int
    dropped_values: int  # NaN/Inf samples left out

    @property
    def transient_failure(self) -> bool:
        return any(run.transient for run in self.runs)


def query_step(window: float, step: float) -> float:
    """The range-query step: at least ``step`` (the scrape interval) and coarse enough that
    the window holds at most MAX_SAMPLES points (both ends included), in whole milliseconds."""
    wanted = max(step, window / (MAX_SAMPLES - 1))
    return math.ceil(round(wanted * 1000, 6)) / 1000


def measure(
    *,
    source: Source,
    policy: EffectivePolicy,
    plans: Mapping[str, BatchPlan] | None = None,
    targets: Sequence[Target],
    now: float,
    step: float,
    max_batch: int = MAX_BATCH,
) -> MeasurementBatch:
    """Query every signal of ``policy`` over [now - window, now] for ``targets``.

    ``plans`` maps signal names to plans made when the policy was admitted; a signal without
    one is planned here. ``step`` is the scrape interval (the finest useful step).
    """
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    window = duration_seconds(policy.evaluation.window)
    qstep = query_step(window, step)
    start, end = now - window, now
    issued = dropped = 0
    columns: list[list[SignalSamples]] = []
    runs: list[SignalRun] = []
    for signal in policy.signals:
        run = _SignalRun(signal, (plans or {}).get(signal.name), targets)
        run.query(source, (start, end, qstep), max_batch)
        issued += len(run.sent)
        dropped += run.dropped
        columns.append(run.results)
        runs.append(run.summary())
    rows = tuple(tuple(col[b] for col in columns) for b in range(len(targets)))
    return MeasurementBatch(
        targets=tuple(targets),
        signals=tuple(s.name for s in policy.signals),
        start=start,
        end=end,
        step=qstep,
        samples=rows,
        runs=tuple(runs),
        queries_issued=issued,
        dropped_values=dropped,
    )


def to_measurements(
    batch: MeasurementBatch, *, born: Sequence[float | None] | None = None
) -> tuple[Measurements, list[list[Samples | None]]]:
    """The engine's input (values/mask of shape (B, S, N), available (B, S)) and, per target
    and signal, the bounded samples it was built from (None where unavailable), which the
    decision records as evidence so that replay computes the same numbers.

    ``born``: per target, since when its current revision can have data (Unix seconds, None
    unknown; ``revisions.revision_born``). The samples record the query's step, so that where
    they lie in the window (a series that began inside it) is known to the engine and to
    replay alike: both are warm-up, not missing data."""
    rows: list[list[Samples | None]] = []
    for per_signal in batch.samples:
        row: list[Samples | None] = []
        for got in per_signal:
            if not got.available:
                row.append(None)
                continue
            ts, vs = bound_samples(got.timestamps, got.values, since=batch.start, until=batch.end)
            row.append(Samples(timestamps=ts, values=vs, step=batch.step))
        rows.append(row)
    if not rows:
        signals = len(batch.signals)
        empty = Measurements(
            values=np.zeros((0, signals, 1)),
            mask=np.zeros((0, signals, 1), dtype=np.bool_),
            available=np.zeros((0, signals), dtype=np.bool_),
        )
        return empty, rows
    return measurements_from_samples(rows, born=born, since=batch.start, until=batch.end), rows


_EMPTY: F64 = np.zeros(0, dtype=np.float64)


class _SignalRun:
    """The queries of one signal in one cycle (mutable while it runs)."""

    def __init__(
        self, signal: EffectiveSignal, known: BatchPlan | None, targets: Sequence[Target]
    ) -> None:
        self.signal, self.targets = signal, list(targets)
        self.sent: list[str] = []
        self.dropped = 0
        self.error, self.transient = "", False
        # A plan made for an older version of the query would batch the wrong text.
        self.plan = known if known is not None and known.query == signal.query else None
        if self.plan is None:
            try:
                self.plan = plan(signal.query)
            except InvalidQuery as err:  # admission should have refused it already
                self.error = f"invalid query: {err}"
        # The per-target text is the evidence even when a batched query fetched the data:
        # it is what that target's share of the batched result equals.
        self.rendered = [self._render(t) for t in self.targets]
        self.results = [
            self._unavailable(b, self.error or "not measured") for b in range(len(self.targets))
        ]

    def _render(self, target: Target) -> str:
        if self.plan is None:
            return ""
        try:
            return render(
                self.signal.query,
                namespace=target.namespace,
                deployment=target.deployment,
                revision=target.revision,
            )
        except ValueError as err:  # an empty label value
            self.error = f"cannot render the query for {target}: {err}"
            return ""

    def _unavailable(self, b: int, message: str) -> SignalSamples:
        return SignalSamples(_EMPTY, _EMPTY, False, self.rendered[b], message)

    def query(self, source: Source, span: tuple[float, float, float], max_batch: int) -> None:
        members = [b for b, text in enumerate(self.rendered) if text]
        if self.plan is None or not members:
            return
        if not self.plan.batched:
            for b in members:
                self._run(source, self.rendered[b], [b], span=span, split=False)
            return
        for batch in self.plan.batches([self.targets[b] for b in members], max_batch):
            chunk = [members[i] for i in batch.members]
            self._run(source, batch.query, chunk, span=span, split=True)

    def _run(
        self,
        source: Source,
        text: str,
        members: list[int],
        *,
        span: tuple[float, float, float],
        split: bool,
    ) -> None:
        self.sent.append(text)
        try:
            start, end, step = span
            series = source.query_range(query=text, start=start, end=end, step=step)
        except MonitoringError as err:
            self.error, self.transient = str(err), self.transient or err.transient
            for b in members:
                self.results[b] = self._unavailable(b, f"query failed: {err}")
            return
        if not split or self.plan is None:
            self.results[members[0]] = self._one(members[0], series)
            return
        labels, fill = self.plan.key_labels, self.plan.fill
        by_key: dict[tuple[str, ...], list[Series]] = {}
        for s in series:
            by_key.setdefault(tuple(s.labels.get(label, "") for label in labels), []).append(s)
        for b in members:
            mine = by_key.get(self.plan.key(self.targets[b]), [])
            self.results[b] = self._one(b, mine if fill is None else _or_vector(mine, fill, span))

    def _one(self, b: int, series: list[Series]) -> SignalSamples:
        if len(series) > 1:
            return self._unavailable(
                b,
                f"query returned {len(series)} series for {self.targets[b]}; it must return one",
            )
        if not series:
            return SignalSamples(_EMPTY, _EMPTY, True, self.rendered[b])
        self.dropped += series[0].dropped
        return SignalSamples(series[0].timestamps, series[0].values, True, self.rendered[b])

    def summary(self) -> SignalRun:
        mode: QueryMode = self.plan.mode if self.plan is not None else "PerDeployment"
        reason = self.plan.reason if self.plan is not None else self.error
        return SignalRun(
            self.signal.name, mode, reason, tuple(self.sent), self.error, self.transient
        )


def _or_vector(
    series: list[Series], value: float, span: tuple[float, float, float]
) -> list[Series]:
    """What ``X or vector(value)`` returns for one target, from X's series, X carrying no
    labels (``promql_batch``): one series, X's samples and ``value`` at every step where X had
    neither a sample nor a NaN (a NaN stays a gap, as from Prometheus)."""
    if len(series) > 1:
        return series
    grid = range_grid(*span)
    if not series:
        return [Series(labels={}, timestamps=grid, values=np.full(grid.size, value))]
    x = series[0]
    empty = grid[~np.isin(grid, np.concatenate([x.timestamps, x.dropped_at]))]
    if not empty.size:
        return series
    times = np.concatenate([x.timestamps, empty])
    order = np.argsort(times, kind="stable")
    values = np.concatenate([x.values, np.full(empty.size, value)])
    return [replace(x, timestamps=times[order], values=values[order])]


def range_grid(start: float, end: float, step: float) -> F64:
    """The times Prometheus evaluates a range query at: start, start + step, ... up to end,
    in whole milliseconds as it parses them."""
    first, last, every = round(start * 1000), round(end * 1000), round(step * 1000)
    count = max(0, (last - first) // every + 1)
    return (first + np.arange(count, dtype=np.int64) * every) / 1000.0
