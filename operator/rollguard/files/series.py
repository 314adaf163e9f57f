"""Recorded signal series (CSV or JSON) on a regular time grid.

Formats (binding):

* CSV with a header naming the columns ``timestamp,signal,value`` and optionally
  ``regression`` (0/1 ground truth), rows in any order, signals interleaved;
* JSON ``{"series": [{"timestamp": ..., "signal": ..., "value": ..., "regression": 0}]}``.

Timestamps are Unix seconds or RFC 3339 times with an offset. Samples are placed on a grid
whose step is the median spacing of consecutive samples of a signal, starting at the first
timestamp; grid points without a sample are masked, as are NaN/Inf values. Problems raise
``SeriesError`` naming the line (CSV) or item (JSON) and the field. ``load_series`` reads a
file (keyword-only); everything else is pure. ``rollguard.simulation.recorded`` runs a policy over
the result.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rollguard.core.times import parse_timestamp
from rollguard.files.loading import InputError

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]


MAX_GRID_POINTS = 5_000_000
_COLUMNS = ("timestamp", "signal", "value")


class SeriesError(InputError):
    """A recorded series is malformed; the message names the line or item and the field."""


@dataclass(frozen=True)
class Row:
    timestamp: float
    signal: str
    value: float
    regression: bool | None
    where: str  # "series.csv line 17" or "series.json: series[3]"


@dataclass(frozen=True)
class Series:
    """Samples of every signal on a regular grid: ``values[s, k]`` at ``start + k * step``."""

    start: float  # Unix seconds of grid point 0
    step: float  # seconds between grid points
    signals: list[str]
    values: F64  # (S, K), NaN where missing
    mask: Bool  # (S, K), True where a sample exists
    regression: Bool | None  # (K,) ground truth, None when the file has none
    warnings: list[str] = field(default_factory=list)

    @property
    def times(self) -> F64:
        return self.start + np.arange(self.values.shape[1], dtype=np.float64) * self.step


def to_csv(series: Series, *, regression_from: float | None = None) -> str:
    """The series in the CSV format above, masked points left out; with ``regression_from``
    (Unix seconds) a ground-truth column marks the points from then on as a regression."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "signal", "value"] + (["regression"] if regression_from else []))
    times = series.times
    for k, t in enumerate(times.tolist()):
        for s, name in enumerate(series.signals):
            if series.mask[s, k]:
                row: list[Any] = [f"{t:.3f}", name, repr(float(series.values[s, k]))]
                if regression_from:
                    row.append(int(t >= regression_from))
                writer.writerow(row)
    return out.getvalue()


def _number(text: Any) -> float:
    if isinstance(text, bool) or text is None:
        raise ValueError(f"{text!r} is not a number")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number") from None


def _flag(text: Any) -> bool | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, bool):
        return text
    if str(text).strip() in ("0", "1"):
        return str(text).strip() == "1"
    if isinstance(text, int | float) and text in (0, 1):
        return bool(text)
    raise ValueError(f"{text!r} is not 0 or 1")


def _row(where: str, get: dict[str, Any]) -> Row:
    def field_value(name: str, parse: Any) -> Any:
        try:
            return parse(get.get(name))
        except ValueError as err:
            raise SeriesError(f"{where}: {name}: {err}") from None

    signal = get.get("signal")
    if not isinstance(signal, str) or not signal.strip():
        raise SeriesError(f"{where}: signal: missing or empty")
    return Row(
        timestamp=field_value("timestamp", parse_timestamp),
        signal=signal.strip(),
        value=field_value("value", _number),
        regression=field_value("regression", _flag),
        where=where,
    )


def parse_csv_rows(text: str, *, source: str) -> list[Row]:
    """Rows of a CSV series; the header names the columns (any order)."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[Row] = []
    for record in reader:
        if not record or all(not c.strip() for c in record):
            continue
        if header is None:
            header = [c.strip().lower() for c in record]
            missing = [c for c in _COLUMNS if c not in header]
            if missing:
                raise SeriesError(
                    f"{source} line {reader.line_num}: header: missing column "
                    f"{', '.join(missing)} (expected timestamp,signal,value[,regression])"
                )
            unknown = [c for c in header if c not in (*_COLUMNS, "regression")]
            if unknown:
                raise SeriesError(
                    f"{source} line {reader.line_num}: header: unknown column {unknown[0]!r}"
                )
            continue
        where = f"{source} line {reader.line_num}"
        if len(record) != len(header):
            raise SeriesError(
                f"{where}: expected {len(header)} fields ({','.join(header)}), got {len(record)}"
            )
        rows.append(_row(where, dict(zip(header, record, strict=True))))
    if header is None:
        raise SeriesError(f"{source}: empty file (expected a header timestamp,signal,value)")
    return rows


def parse_json_rows(text: str, *, source: str) -> list[Row]:
    """Rows of a JSON series ``{"series": [...]}``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise SeriesError(f"{source} line {err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("series"), list):
        raise SeriesError(f'{source}: series: expected an object with a list under "series"')
    rows = []
    for i, item in enumerate(doc["series"]):
        where = f"{source}: series[{i}]"
        if not isinstance(item, dict):
            raise SeriesError(f"{where}: expected an object with timestamp, signal, value")
        unknown = sorted(set(item) - {*_COLUMNS, "regression"})
        if unknown:
            raise SeriesError(f"{where}.{unknown[0]}: unknown field")
        for name in _COLUMNS:
            if name not in item:
                raise SeriesError(f"{where}.{name}: missing")
        try:
            rows.append(_row(where, item))
        except SeriesError as err:
            # "file: series[3]: value: ..." reads better as "file: series[3].value: ...".
            raise SeriesError(str(err).replace(f"{where}: ", f"{where}.", 1)) from None
    return rows


def _median_step(rows: list[Row], source: str) -> float:
    per_signal: dict[str, list[float]] = {}
    for row in rows:
        per_signal.setdefault(row.signal, []).append(row.timestamp)
    diffs = np.concatenate(
        [np.diff(np.unique(np.asarray(ts))) for ts in per_signal.values()] or [np.zeros(0)]
    )
    if diffs.size == 0:
        raise SeriesError(
            f"{source}: every signal has a single timestamp: cannot find the sample spacing"
        )
    return float(np.median(diffs))


def to_grid(rows: list[Row], *, source: str, signals: Iterable[str] | None = None) -> Series:
    """Rows on a regular grid. With ``signals`` (the policy's), rows of any other signal are
    refused and the grid rows follow that order; a named signal without rows is all missing."""
    if not rows:
        raise SeriesError(f"{source}: no samples")
    seen: dict[tuple[str, float], str] = {}
    first_line: dict[str, str] = {}
    for row in rows:
        key = (row.signal, row.timestamp)
        if key in seen:
            raise SeriesError(
                f"{row.where}: timestamp: second sample of {row.signal} at {row.timestamp:g} "
                f"(first at {seen[key]})"
            )
        seen[key] = row.where
        first_line.setdefault(row.signal, row.where)
    warnings: list[str] = []
    if signals is None:
        names = sorted(first_line)
    else:
        names = list(signals)
        for name, where in first_line.items():
            if name not in names:
                raise SeriesError(
                    f"{where}: signal: {name!r} is not a signal of the policy "
                    f"(policy signals: {', '.join(names)})"
                )
        warnings += [
            f"signal {n} has no samples: it is Inconclusive throughout"
            for n in names
            if n not in first_line
        ]
    step = _median_step(rows, source)
    ts = np.array([r.timestamp for r in rows])
    start = float(ts.min())
    size = round((float(ts.max()) - start) / step) + 1
    if size > MAX_GRID_POINTS:
        raise SeriesError(
            f"{source}: {size} grid points at a {step:g}s step is more than {MAX_GRID_POINTS}"
        )
    index = np.rint((ts - start) / step).astype(np.int64)
    sig = np.array([names.index(r.signal) for r in rows], dtype=np.int64)
    vals = np.array([r.value for r in rows])
    good = np.isfinite(vals)
    # Samples that land on the same grid point (jitter, faster scrapes) are averaged.
    total = np.zeros((len(names), size))
    count = np.zeros((len(names), size))
    np.add.at(total, (sig[good], index[good]), vals[good])
    np.add.at(count, (sig[good], index[good]), 1.0)
    mask = count > 0
    values = np.where(mask, total / np.where(mask, count, 1.0), np.nan)
    regression = _ground_truth(rows, index, size)
    return Series(start, step, names, values, mask, regression, warnings)


def _ground_truth(rows: list[Row], index: NDArray[np.int64], size: int) -> Bool | None:
    flags = np.array([-1 if r.regression is None else int(r.regression) for r in rows])
    if (flags < 0).all():
        return None
    known = flags >= 0
    state = np.full(size, -1)
    np.maximum.at(state, index[known], flags[known])  # any 1 at a grid point wins
    # Grid points without a labelled row keep the last known label (0 before the first).
    last = np.maximum.accumulate(np.where(state >= 0, np.arange(size), -1))
    filled = np.where(last >= 0, state[np.maximum(last, 0)], 0)
    return np.asarray(filled == 1, dtype=np.bool_)


def parse_series(
    text: str, *, source: str, json_format: bool, signals: Iterable[str] | None = None
) -> Series:
    """A series from CSV or JSON text."""
    rows = (parse_json_rows if json_format else parse_csv_rows)(text, source=source)
    return to_grid(rows, source=source, signals=signals)


def load_series(*, path: Path, signals: Iterable[str] | None = None) -> Series:
    """Read a ``.json`` or CSV (any other suffix) series file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SeriesError(f"{path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise SeriesError(f"{path}: not UTF-8 text") from err
    return parse_series(
        text, source=path.name, json_format=path.suffix.lower() == ".json", signals=signals
    )
