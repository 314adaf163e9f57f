"""The Prometheus client against a tiny local HTTP server (127.0.0.1 only): answers, errors,
timeouts, garbage, retries and the deadline; then ``measure`` splitting batched results per
deployment, its fallbacks and failures, ``to_measurements`` and the recorded source."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pytest
import requests

from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.core.tiers import resolve
from rollguard.files.series import parse_series
from rollguard.signals.file_source import RecordedSource
from rollguard.signals.measure import Target, measure, query_step, to_measurements
from rollguard.signals.prometheus import (
    GarbageResponse,
    PrometheusSource,
    QueryError,
    Series,
    SourceUnavailable,
)
from rollguard.signals.promql import plan

Reply = tuple[int, bytes, float]  # status, body, delay before answering
Handler = Callable[[dict[str, str]], Reply]


def _ok(result: list[dict[str, Any]]) -> Reply:
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return 200, json.dumps(body).encode(), 0.0


class _Server:
    """Answers POST /api/v1/query_range with whatever the test's handler says."""

    def __init__(self) -> None:
        self.handler: Handler = lambda form: _ok([])
        self.requests: list[dict[str, str]] = []
        server = self

        class Handle(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = parse_qs(self.rfile.read(length).decode())
                form = {k: v[0] for k, v in raw.items()} | {"path": self.path}
                server.requests.append(form)
                status, body, delay = server.handler(form)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing left to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    try:
        yield s
    finally:
        s.close()


def _source(server: _Server, **kw: Any) -> PrometheusSource:
    return PrometheusSource(url=server.url, **({"timeout": 1.0, "backoff": 0.01} | kw))


def _query(source: PrometheusSource) -> list[Series]:
    return source.query_range(query="up", start=1000.0, end=1060.0, step=15.0)


def test_parses_a_matrix_dropping_and_counting_non_finite_values(server: _Server) -> None:
    server.handler = lambda form: _ok(
        [
            {
                "metric": {"namespace": "ml", "deployment": "web"},
                "values": [[1015, "2"], [1000, "1"], [1030, "NaN"], [1045, "+Inf"], [1060.5, "4"]],
            },
            {"metric": {}, "values": []},
        ]
    )
    series = _query(_source(server))
    assert series[0].labels == {"namespace": "ml", "deployment": "web"}
    np.testing.assert_array_equal(series[0].timestamps, [1000.0, 1015.0, 1060.5])
    np.testing.assert_array_equal(series[0].values, [1.0, 2.0, 4.0])
    assert series[0].dropped == 2
    assert series[0].values.dtype == np.float64 and series[1].values.size == 0
    sent = server.requests[0]
    assert sent["path"] == "/api/v1/query_range"
    assert (sent["query"], sent["start"], sent["end"], sent["step"]) == (
        "up", "1000.000", "1060.000", "15.000"
    )  # fmt: skip
    assert sent["timeout"] == "1000ms"  # Prometheus stops evaluating when we stop waiting


def test_server_errors_are_retried_then_reported_as_unavailable(server: _Server) -> None:
    server.handler = lambda form: (503, b'{"status":"error","errorType":"timeout"}', 0.0)
    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        _query(_source(server, retries=2))
    assert len(server.requests) == 3


def test_a_transient_failure_heals_on_retry(server: _Server) -> None:
    replies = iter([(500, b"oops", 0.0), (200, b"not json", 0.0), _ok([])])
    server.handler = lambda form: next(replies)
    source = _source(server, retries=2)
    assert _query(source) == []
    assert source.queries == 3


@pytest.mark.parametrize("status", [400, 422])
def test_a_refused_query_is_a_permanent_query_error_and_not_retried(
    server: _Server, status: int
) -> None:
    body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    server.handler = lambda form: (status, json.dumps(body).encode(), 0.0)
    with pytest.raises(QueryError, match='bad_data: parse error: unexpected "}"') as err:
        _query(_source(server, retries=3))
    assert not err.value.transient
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"status": "success", "data": {"resultType": "vector", "result": []}}',
        b'{"status": "success", "data": {"resultType": "matrix", "result": [{"values": [[1]]}]}}',
        b'{"status": "success", "data": {"resultType": "matrix", "result": [{"values": [[1, "x"]]}]}}',
        b'{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {"a": 1}}]}}',
        b"[]",
    ],
)
def test_garbage_is_reported_as_garbage(server: _Server, body: bytes) -> None:
    server.handler = lambda form: (200, body, 0.0)
    with pytest.raises(GarbageResponse) as err:
        _query(_source(server, retries=1))
    assert err.value.transient
    assert len(server.requests) == 2


class _TimedSession(requests.Session):
    """A real HTTP session that notes the timeout the client gives each request."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def post(self, url: str | bytes, data: Any = None, **kw: Any) -> requests.Response:
        self.timeouts.append(kw["timeout"])
        return super().post(url, data=data, **kw)


def test_a_slow_server_times_out_within_the_deadline(server: _Server) -> None:
    server.handler = lambda form: (*_ok([])[:2], 2.0)  # it would answer, after 2 s
    session = _TimedSession()
    source = _source(server, timeout=0.2, retries=10, deadline=0.6, session=session)
    with pytest.raises(SourceUnavailable, match="no answer"):
        _query(source)
    # An attempt lasts at least the timeout it was given, so these hold however fast or
    # loaded the machine is: no attempt waited longer than the timeout, all of them together
    # no longer than the deadline, and the deadline, not the retries, ended the call.
    assert session.timeouts and max(session.timeouts) <= 0.2
    assert sum(session.timeouts) <= 0.6
    assert len(session.timeouts) == source.queries < 1 + source.retries


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    source = PrometheusSource(url=f"http://127.0.0.1:{port}", timeout=0.5, retries=1, backoff=0)
    with pytest.raises(SourceUnavailable, match="ConnectionError"):
        _query(source)


def test_not_found_is_unavailable_so_fixing_the_url_heals_it(server: _Server) -> None:
    server.handler = lambda form: (404, b"404 page not found", 0.0)
    with pytest.raises(SourceUnavailable, match="HTTP 404: 404 page not found"):
        _query(_source(server, retries=0))


# --- measure ------------------------------------------------------------------------------

PIN = 'namespace="$namespace",deployment="$deployment"'
NOW = 1_700_000_000.0


def _policy(*queries: str, window: str = "5m") -> EffectivePolicy:
    signals = [
        {"name": f"s{i}", "query": q, "objective": {"max": 1.0}, "critical": 10.0}
        for i, q in enumerate(queries)
    ]
    return resolve(
        RollbackPolicySpec.model_validate(
            {
                "riskTier": "medium",
                "evaluation": {"window": window},
                "signals": signals,
                "impact": {"categories": [{"name": "r", "weight": 1, "signals": {"s0": 1}}]},
            }
        )
    )


class _Fake:
    """A Source answering from a function of the query text; counts calls."""

    def __init__(self, answer: Callable[[str], list[Series]]) -> None:
        self.answer, self.calls = answer, []  # type: ignore[var-annotated]

    def query_range(self, *, query: str, start: float, end: float, step: float) -> list[Series]:
        self.calls.append((query, start, end, step))
        return self.answer(query)


def _series(ns: str, dep: str, *values: float, **extra: str) -> Series:
    ts = (NOW - np.arange(len(values))[::-1] * 15.0).astype(np.float64)
    labels = {"namespace": ns, "deployment": dep, **extra}
    return Series(labels, ts, np.array(values, dtype=np.float64))


TARGETS = [Target("ns-a", "web"), Target("ns-b", "web"), Target("ns-a", "api"), Target("ns-c", "x")]


def test_a_batched_signal_is_one_query_split_per_target() -> None:
    policy = _policy(f"sum(rate(req{{{PIN}}}[1m]))")
    fake = _Fake(
        lambda q: [
            _series("ns-a", "web", 1.0, 2.0),
            _series("ns-b", "web", 3.0),
            _series("ns-b", "api", 9.0),  # the cross product: not a target, dropped
            _series("ns-a", "api", 5.0, code="200"),
            _series("ns-a", "api", 6.0, code="500"),
        ]
    )
    batch = measure(source=fake, policy=policy, targets=TARGETS, now=NOW, step=1.0)
    assert batch.queries_issued == 1 and len(fake.calls) == 1
    query, start, end, step = fake.calls[0]
    assert 'namespace=~"ns-a|ns-b|ns-c"' in query and (start, end) == (NOW - 300, NOW)
    assert step == query_step(300.0, 1.0) and 300 / step <= 299
    web_a, web_b, api_a, missing = (row[0] for row in batch.samples)
    np.testing.assert_array_equal(web_a.values, [1.0, 2.0])
    assert (
        web_a.available and web_a.query == 'sum(rate(req{namespace="ns-a",deployment="web"}[1m]))'
    )
    np.testing.assert_array_equal(web_b.values, [3.0])
    assert not api_a.available
    assert api_a.message == "query returned 2 series for ns-a/api; it must return one"
    assert missing.available and missing.values.size == 0  # missing data, not a failure
    assert batch.runs[0].mode == "Batched" and batch.runs[0].ok


def test_a_fallback_signal_runs_once_per_target_and_failures_stay_per_signal() -> None:
    policy = _policy(f"sum(rate(req{{{PIN}}}[1m]))", f"topk(1, req{{{PIN}}})")

    def answer(q: str) -> list[Series]:
        if q.startswith("topk"):
            raise SourceUnavailable("connection refused")
        return [_series("ns-a", "web", 1.0)]

    fake = _Fake(answer)
    batch = measure(source=fake, policy=policy, targets=TARGETS[:2], now=NOW, step=15.0)
    assert batch.queries_issued == 1 + 2
    assert [r.mode for r in batch.runs] == ["Batched", "PerDeployment"]
    assert batch.runs[1].reason == "topk aggregations are not rewritten for batches"
    assert batch.transient_failure and not batch.runs[1].ok
    assert [row[1].available for row in batch.samples] == [False, False]
    assert batch.samples[0][1].message == "query failed: connection refused"
    assert batch.samples[0][0].available


def test_chunks_beyond_max_batch_and_the_step_never_exceeds_the_sample_budget() -> None:
    fake = _Fake(lambda q: [])
    policy = _policy(f"sum(rate(req{{{PIN}}}[1m]))", window="1h")
    batch = measure(source=fake, policy=policy, targets=TARGETS, now=NOW, step=1.0, max_batch=3)
    assert batch.queries_issued == 2
    assert batch.step == pytest.approx(3600 / 299, abs=1e-3) and 3600 / batch.step <= 300
    assert query_step(60.0, 15.0) == 15.0


def test_to_measurements_builds_engine_arrays_and_bounded_evidence() -> None:
    policy = _policy(f"sum(rate(req{{{PIN}}}[1m]))", f"topk(1, req{{{PIN}}})")

    def answer(q: str) -> list[Series]:
        if q.startswith("topk"):
            raise QueryError("bad_data")
        return [_series("ns-a", "web", 1.0, np.nan, 3.0), _series("ns-b", "web", 7.0)]

    batch = measure(source=_Fake(answer), policy=policy, targets=TARGETS[:3], now=NOW, step=15.0)
    m, evidence = to_measurements(batch)
    assert m.values.shape == (3, 2, 2) and m.mask.shape == (3, 2, 2)  # N: most samples
    np.testing.assert_array_equal(m.available, [[True, False]] * 3)
    np.testing.assert_array_equal(m.mask[:, 0].sum(axis=1), [2, 1, 0])  # NaN is not a sample
    np.testing.assert_array_equal(m.values[0, 0, :2], [1.0, 3.0])
    assert evidence[0][1] is None and evidence[0][0] is not None
    assert evidence[0][0].values == [1.0, 3.0] and not batch.transient_failure


def test_measure_through_http_sends_one_request_per_batched_signal(server: _Server) -> None:
    server.handler = lambda form: _ok(
        [{"metric": {"namespace": "ns-a", "deployment": "web"}, "values": [[NOW, "0.5"]]}]
    )
    policy = _policy(f"sum(rate(req{{{PIN}}}[1m]))", f"max(lat{{{PIN}}})")
    batch = measure(source=_source(server), policy=policy, targets=TARGETS, now=NOW, step=1.0)
    assert len(server.requests) == 2 == batch.queries_issued
    assert [row[1].values.tolist() for row in batch.samples] == [[0.5], [], [], []]


# --- recorded source -----------------------------------------------------------------------


def test_recorded_source_answers_the_queries_measure_sends() -> None:
    text = "timestamp,signal,value\n" + "".join(
        f"{NOW - 600 + 10 * k},s0,{k}\n{NOW - 600 + 10 * k},s1,{2 * k}\n" for k in range(61)
    )
    recorded = parse_series(text, source="rec.csv", json_format=False)
    policy = _policy(f"sum(rate(req{{{PIN}}}[1m]))", f"topk(1, req{{{PIN}}})", window="1m")
    assert plan(policy.signals[1].query).mode == "PerDeployment"
    source = RecordedSource.for_signals(
        series=recorded, signals=policy.signals, namespace="ml", deployment="web"
    )
    target = [Target("ml", "web")]
    batch = measure(source=source, policy=policy, targets=target, now=NOW, step=10.0)
    np.testing.assert_array_equal(batch.samples[0][0].values, np.arange(54, 61))  # both ends
    np.testing.assert_array_equal(batch.samples[0][1].values, 2 * np.arange(54, 61))
    np.testing.assert_array_equal(batch.samples[0][0].timestamps, NOW - 60 + 10 * np.arange(7))
    with pytest.raises(QueryError, match="no recorded series"):
        source.query_range(query="up", start=NOW - 60, end=NOW, step=10)


def test_recorded_source_leaves_a_gap_empty_instead_of_repeating_the_last_value() -> None:
    # s0 every 10 s, with nothing recorded for 60 s: a gap well inside the 5-minute lookback.
    gap = range(8, 14)
    text = "timestamp,signal,value\n" + "".join(
        f"{NOW - 200 + 10 * k},s0,{k}\n" for k in range(21) if k not in gap
    )
    recorded = parse_series(text, source="gap.csv", json_format=False)
    labels = {"namespace": "ml", "deployment": "web"}
    source = RecordedSource(series=recorded, queries={"q": "s0"}, labels=labels)
    kept = [k for k in range(21) if k not in gap]
    # At the recording's own step: exactly the recorded samples, the gap stays empty.
    [same] = source.query_range(query="q", start=NOW - 200, end=NOW, step=10)
    np.testing.assert_array_equal(same.timestamps, [NOW - 200 + 10 * k for k in kept])
    np.testing.assert_array_equal(same.values, kept)
    # At a finer step a point is held until the recording's next grid point, never into the
    # gap: 70 s holds sample 7, 80 s to 135 s have nothing.
    [fine] = source.query_range(query="q", start=NOW - 200, end=NOW, step=5)
    offsets = (fine.timestamps - (NOW - 200)).tolist()
    assert 75.0 in offsets and fine.values[offsets.index(75.0)] == 7
    assert not [t for t in offsets if 80.0 <= t < 140.0]
    assert fine.values[offsets.index(140.0)] == 14
