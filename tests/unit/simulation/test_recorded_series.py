"""Recorded series: CSV and JSON parsing, the grid, errors that name the line and field, and
what the policy would have done on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rollguard.core.times import format_seconds, parse_timestamp
from rollguard.files.loading import load_policy
from rollguard.files.series import SeriesError, load_series, parse_series, to_csv
from rollguard.signals.backtest import fetch
from rollguard.signals.prometheus import Series as PromSeries
from rollguard.simulation.recorded import run_recorded

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"
SIGNALS = ["error_rate", "latency_p99", "revenue_per_minute"]


def test_timestamps_unix_or_rfc3339() -> None:
    assert parse_timestamp("1714564800") == 1714564800.0
    assert parse_timestamp(1714564800.5) == 1714564800.5
    assert parse_timestamp("2024-05-01T12:00:00Z") == 1714564800.0
    assert parse_timestamp("2024-05-01T14:00:00.250+02:00") == 1714564800.25
    assert parse_timestamp("2024-05-01 12:00:00z") == 1714564800.0
    with pytest.raises(ValueError, match="not Unix seconds or an RFC 3339"):
        parse_timestamp("2024-05-01T12:00:00")  # no offset
    with pytest.raises(ValueError, match="not a valid time"):
        parse_timestamp("2024-13-01T12:00:00Z")


def test_csv_in_any_order_with_interleaved_signals_lands_on_the_median_grid() -> None:
    text = "\n".join(
        [
            "signal,timestamp,value,regression",
            "b,2024-05-01T12:00:30Z,5,0",
            "a,1714564800,1.5,0",
            "a,1714564815,2.5,0",
            "b,1714564800,4,0",
            "a,1714564845,3.5,1",  # 1714564830 is missing for a
            "b,1714564815,nan,1",
        ]
    )
    s = parse_series(text, source="s.csv", json_format=False)
    assert s.signals == ["a", "b"]
    assert s.step == 15.0
    assert s.start == 1714564800.0
    np.testing.assert_array_equal(s.mask, [[1, 1, 0, 1], [1, 0, 1, 0]])
    np.testing.assert_array_equal(s.values[0, [0, 1, 3]], [1.5, 2.5, 3.5])
    assert s.regression is not None
    # Any row labelled 1 marks its grid point; the row of b at +30 s says 0.
    np.testing.assert_array_equal(s.regression, [False, True, False, True])


def test_json_is_equivalent_to_csv() -> None:
    csv_text = "timestamp,signal,value\n0,a,1\n10,a,2\n20,a,3\n"
    doc = {
        "series": [
            {"timestamp": t, "signal": "a", "value": v} for t, v in ((0, 1), (10, 2), (20, 3))
        ]
    }
    a = parse_series(csv_text, source="s.csv", json_format=False)
    b = parse_series(json.dumps(doc), source="s.json", json_format=True)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.regression is None and b.regression is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "timestamp,signal,value\n0,a,1\n15,a,abc\n",
            "series.csv line 3: value: 'abc' is not a number",
        ),
        (
            "timestamp,signal,value\n0,a,1\n\nyesterday,a,2\n",
            "series.csv line 4: timestamp: 'yesterday' is not Unix seconds or an RFC 3339 time",
        ),
        ("timestamp,value\n0,1\n", "series.csv line 1: header: missing column signal"),
        ("timestamp,signal,value\n0,a\n", "series.csv line 2: expected 3 fields"),
        (
            "timestamp,signal,value,regression\n0,a,1,maybe\n",
            "series.csv line 2: regression: 'maybe' is not 0 or 1",
        ),
        (
            "timestamp,signal,value\n0,a,1\n0,a,2\n",
            "series.csv line 3: timestamp: second sample of a at 0 (first at series.csv line 2)",
        ),
        ("timestamp,signal,value\n0,a,1\n0,b,1\n", "series.csv: every signal has a single"),
        ("", "series.csv: empty file"),
    ],
)
def test_csv_errors_name_the_line_and_field(text: str, message: str) -> None:
    with pytest.raises(SeriesError) as err:
        parse_series(text, source="series.csv", json_format=False)
    assert str(err.value).startswith(message), str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            '{"series": [{"timestamp": 0, "signal": "a", "value": "abc"}]}',
            "series.json: series[0].value: 'abc' is not a number",
        ),
        ('{"series": [{"timestamp": 0, "signal": "a"}]}', "series.json: series[0].value: missing"),
        (
            '{"series": [{"timestamp": 0, "signal": "a", "value": 1, "x": 2}]}',
            "series.json: series[0].x: unknown field",
        ),
        ('{"points": []}', "series.json: series: expected an object"),
        ('{"series": [\n{"timestamp": 0,}]}', "series.json line 2: invalid JSON"),
    ],
)
def test_json_errors_name_the_item_and_field(doc: str, message: str) -> None:
    with pytest.raises(SeriesError) as err:
        parse_series(doc, source="series.json", json_format=True)
    assert str(err.value).startswith(message), str(err.value)


def test_unknown_signal_is_refused_at_its_first_line_and_absent_ones_warned() -> None:
    text = "timestamp,signal,value\n0,error_rate,0.1\n15,error_rate,0.1\n15,cpu,3\n"
    with pytest.raises(SeriesError, match=r"^s.csv line 4: signal: 'cpu' is not a signal of "):
        parse_series(text, source="s.csv", json_format=False, signals=SIGNALS)
    s = parse_series(text.rsplit("\n", 2)[0], source="s.csv", json_format=False, signals=SIGNALS)
    assert s.signals == SIGNALS
    assert not s.mask[1:].any()
    assert any("latency_p99 has no samples" in w for w in s.warnings)


def recorded_csv(path: Path, *, regression_from: int, minutes: int = 60) -> Path:
    rng = np.random.default_rng(5)
    lines = ["timestamp,signal,value,regression"]
    start = 1714564800
    for k in range(minutes * 4):
        t = start + 15 * k
        bad = k >= regression_from
        stamp = format_seconds(t) if k % 2 else str(t)
        lines.append(
            f"{stamp},error_rate,{0.003 + (0.08 if bad else 0) + rng.normal(0, 1e-3)},{int(bad)}"
        )
        lines.append(f"{t},latency_p99,{0.15 + rng.normal(0, 0.01)},{int(bad)}")
        lines.append(f"{t},revenue_per_minute,{240 + rng.normal(0, 10)},{int(bad)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_run_recorded_lists_actions_detection_delay_and_false_rollbacks(tmp_path: Path) -> None:
    policy = load_policy(path=EXAMPLES / "policy.yaml")
    series = load_series(path=recorded_csv(tmp_path / "r.csv", regression_from=80), signals=SIGNALS)
    result = run_recorded(policy, series)
    assert result.regression_start == "2024-05-01T12:20:00Z"
    assert result.actions, "the error burst must be acted on"
    first = result.actions[0]
    assert first.action == "Rollback" and first.false_rollback is False
    assert result.detection_delay_seconds is not None
    assert 0 < result.detection_delay_seconds <= 300
    assert result.false_rollbacks == 0
    wire = result.wire()
    assert {"time", "trigger", "wanted", "action", "score", "requiresApproval", "executed"} <= set(
        wire["actions"][0]
    )
    assert {"phase", "falseRollback"} <= set(wire["actions"][0])
    assert "detectionDelaySeconds" in wire


def test_run_recorded_flags_a_rollback_without_labelled_regression(tmp_path: Path) -> None:
    policy = load_policy(path=EXAMPLES / "policy.yaml")
    path = recorded_csv(tmp_path / "r.csv", regression_from=80)
    # Same data, but nobody labelled the regression.
    path.write_text(path.read_text().replace(",1\n", ",0\n"))
    result = run_recorded(policy, load_series(path=path, signals=SIGNALS))
    assert result.actions[0].false_rollback is True
    assert result.detection_delay_seconds is None
    assert result.false_rollbacks == 1


def test_to_csv_round_trips_with_ground_truth() -> None:
    text = "timestamp,signal,value\n0,a,1.25\n10,a,2\n20,a,3\n0,b,7\n20,b,9\n"
    series = parse_series(text, source="s.csv", json_format=False)
    written = to_csv(series, regression_from=10.0)
    again = parse_series(written, source="again.csv", json_format=False)
    np.testing.assert_array_equal(again.values[again.mask], series.values[series.mask])
    np.testing.assert_array_equal(again.mask, series.mask)
    assert again.regression is not None
    np.testing.assert_array_equal(again.regression, [False, True, True])
    assert "regression" not in to_csv(series).splitlines()[0]


def test_run_recorded_refuses_a_series_whose_span_needs_absurdly_many_evaluations() -> None:
    policy = load_policy(path=EXAMPLES / "policy.yaml")
    text = "timestamp,signal,value\n1,error_rate,0.1\n1e15,error_rate,0.1\n"
    series = parse_series(text, source="s.csv", json_format=False, signals=SIGNALS)
    with pytest.raises(SeriesError, match=r"evaluations every 30s is more than 1000000"):
        run_recorded(policy, series)


class _Unreachable:
    """A Prometheus that must not be asked: the checks come first."""

    def query_range(self, *, query: str, start: float, end: float, step: float) -> list[PromSeries]:
        raise AssertionError("no query may be sent")


@pytest.mark.parametrize(
    ("start", "end", "step", "message"),
    [
        (1000.0, 2000.0, 0.0, "--step must be a positive number"),
        (1000.0, 2000.0, float("nan"), "--step must be a positive number"),
        (1000.0, 2000.0, -5.0, "--step must be a positive number"),
        (0.0, 1e12, 0.001, "is more than 5000000"),
    ],
)
def test_backtest_refuses_a_step_or_range_it_cannot_fetch_before_asking_prometheus(
    start: float, end: float, step: float, message: str
) -> None:
    policy = load_policy(path=EXAMPLES / "policy.yaml")
    with pytest.raises(SeriesError, match=message):
        fetch(source=_Unreachable(), policy=policy, namespace="ml", deployment="fraud",
              start=start, end=end, step=step)  # fmt: skip


def test_backtest_names_the_missing_revision_of_a_query_that_uses_it() -> None:
    base = load_policy(path=EXAMPLES / "policy.yaml")
    first = base.signals[0]
    query = 'sum(rate(model_requests_total{deployment="$deployment",revision="$revision"}[1m]))'
    policy = base.model_copy(
        update={"signals": [first.model_copy(update={"query": query}), *base.signals[1:]]}
    )
    with pytest.raises(SeriesError, match=r"--revision: signal .*'s query uses \$revision"):
        fetch(source=_Unreachable(), policy=policy, namespace="ml", deployment="fraud",
              start=1000.0, end=2000.0, step=15.0)  # fmt: skip
