"""The Prometheus client: one range query in, series out, every failure a typed exception.

Called by ``rollguard.signals.measure`` (and through it by the operator's handlers), never
by the pure layers. The ``Source`` protocol is what ``measure`` needs; ``PrometheusSource``
talks HTTP and ``rollguard.signals.file_source.RecordedSource`` replays files.

Failures map to three exceptions and nothing else escapes for network trouble:

* ``SourceUnavailable`` -- connection refused, timeout, 5xx, 408/429, auth or wrong URL:
  transient, the operator turns it into a TemporaryError and Inconclusive signals;
* ``QueryError`` -- 400/422 (``bad_data``, ``execution``): the query is wrong, permanent;
* ``GarbageResponse`` -- a body that is not a Prometheus matrix response: transient.

Why ``requests`` and not ``prometheus_api_client.PrometheusConnect.custom_query_range``
(which is in the stack and honours a per-request timeout): it reports the HTTP status only
inside an exception message, so 4xx (our query is wrong, permanent) and 5xx (Prometheus is
struggling, transient) could only be told apart by parsing that text; it rounds start and end
to whole seconds; and it mounts its own urllib3 retry adapter (on the session it is given,
too) whose sleeps our total deadline cannot bound. The request it sends is the same
``/api/v1/query_range`` call, so the data is identical.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import requests
from numpy.typing import NDArray

F64 = NDArray[np.float64]

# Longest error text kept from a response body: enough for Prometheus' messages, bounded
# because it ends up in statuses and events.
_MAX_ERROR_TEXT = 500


class MonitoringError(Exception):
    """Base of everything a source raises."""

    transient = True


class SourceUnavailable(MonitoringError):  # noqa: N818 - names from the design contract
    """Prometheus could not be reached or answered with a server error; try again later."""


class GarbageResponse(MonitoringError):  # noqa: N818 - names from the design contract
    """The response was not a Prometheus range-query result; try again later."""


class QueryError(MonitoringError):
    """Prometheus refused the query (bad_data): the query is wrong, retrying will not help."""

    transient = False


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: compare fields
class Series:
    """One returned series: finite samples only, oldest first; ``dropped`` counts the NaN and
    Inf samples left out (a ratio over zero traffic is NaN: missing data, not a value), and
    ``dropped_at`` holds their times."""

    labels: dict[str, str]
    timestamps: F64
    values: F64
    dropped: int = field(default=0)
    dropped_at: F64 = field(default_factory=lambda: np.zeros(0, dtype=np.float64))


class Source(Protocol):
    """Anything that answers range queries: Prometheus, or a recording."""

    def query_range(self, *, query: str, start: float, end: float, step: float) -> list[Series]:
        """Series of ``query`` evaluated at start, start + step, ... up to end (Unix seconds)."""
        ...


class PrometheusSource:
    """Range queries against a Prometheus HTTP API, with bounded retries and a deadline.

    ``timeout`` bounds each HTTP attempt (connect and each read) and is passed to Prometheus
    so it stops evaluating too; ``retries`` extra attempts follow transient failures after a
    jittered exponential backoff (``backoff`` x 2^n, at most ``max_backoff``); ``deadline``
    bounds the whole call including retries (default: enough for every attempt).
    """

    def __init__(
        self,
        *,
        url: str,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.25,
        max_backoff: float = 2.0,
        deadline: float | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if timeout <= 0 or retries < 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("timeout must be positive; retries and backoff not negative")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.deadline = (
            deadline if deadline is not None else (retries + 1) * timeout + retries * max_backoff
        )
        self.session = session if session is not None else requests.Session()
        self.queries = 0  # HTTP requests sent, retries included

    def query_range(self, *, query: str, start: float, end: float, step: float) -> list[Series]:
        if not (math.isfinite(start) and math.isfinite(end) and end >= start and step > 0):
            raise ValueError(f"bad range: start={start} end={end} step={step}")
        give_up = time.monotonic() + self.deadline
        attempt = 0
        while True:
            remaining = give_up - time.monotonic()
            try:
                if remaining <= 0:
                    raise SourceUnavailable(f"no answer from {self.url} within {self.deadline}s")
                return self._once(query, start, end, step, min(self.timeout, remaining))
            except MonitoringError as err:
                if not err.transient or attempt >= self.retries:
                    raise
                pause = min(self.max_backoff, self.backoff * 2**attempt)
                pause *= random.uniform(0.5, 1.0)  # jitter, not security: no secret depends on it
                if time.monotonic() + pause >= give_up:
                    raise
                time.sleep(pause)
                attempt += 1

    def _once(
        self, query: str, start: float, end: float, step: float, timeout: float
    ) -> list[Series]:
        form = {
            "query": query,
            "start": _seconds(start),
            "end": _seconds(end),
            "step": _seconds(step),
            # A Prometheus duration ("5.000s" is refused): whole milliseconds.
            "timeout": f"{max(1, int(timeout * 1000))}ms",
        }
        self.queries += 1
        try:
            # POST: a batched query over many deployments can outgrow a URL.
            response = self.session.post(
                f"{self.url}/api/v1/query_range", data=form, timeout=timeout
            )
            body = response.content
        except requests.Timeout as err:
            raise SourceUnavailable(f"{self.url}: no answer within {timeout:.3g}s") from err
        except requests.RequestException as err:
            raise SourceUnavailable(f"{self.url}: {type(err).__name__}: {err}") from err
        return _parse(response.status_code, body, self.url)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _error_text(body: bytes) -> str:
    try:
        doc = _json(body)
    except GarbageResponse:
        return body[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    if isinstance(doc, dict):
        kind, error = doc.get("errorType", ""), doc.get("error", "")
        return f"{kind}: {error}"[:_MAX_ERROR_TEXT] if kind else str(error)[:_MAX_ERROR_TEXT]
    return ""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise GarbageResponse(f"response is not JSON: {err}") from err


def _parse(status: int, body: bytes, url: str) -> list[Series]:
    if status in (400, 422):
        raise QueryError(f"Prometheus refused the query: {_error_text(body)}")
    if status in (408, 429) or status >= 500:
        raise SourceUnavailable(f"{url}: HTTP {status}: {_error_text(body)}")
    if status != 200:
        # 401/403/404 and friends: the operator's configuration, not the query, is wrong;
        # keep retrying (transient) so fixing the URL or credentials heals it.
        raise SourceUnavailable(f"{url}: HTTP {status}: {_error_text(body)}")
    doc = _json(body)
    if not isinstance(doc, dict) or doc.get("status") != "success":
        if isinstance(doc, dict) and doc.get("errorType") == "bad_data":
            raise QueryError(f"Prometheus refused the query: {_error_text(body)}")
        raise GarbageResponse("response is not a successful Prometheus API response")
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise GarbageResponse("response data is not a matrix")
    result = data.get("result")
    if not isinstance(result, list):
        raise GarbageResponse("response data.result is not a list")
    return [_series(item, i) for i, item in enumerate(result)]


def _series(item: Any, index: int) -> Series:
    where = f"data.result[{index}]"
    if not isinstance(item, dict):
        raise GarbageResponse(f"{where} is not an object")
    labels, values = item.get("metric", {}), item.get("values", [])
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise GarbageResponse(f"{where}.metric is not a map of strings")
    if not isinstance(values, list):
        raise GarbageResponse(f"{where}.values is not a list")
    try:
        pairs = np.array([(float(t), float(v)) for t, v in values], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise GarbageResponse(f"{where}.values holds a malformed sample: {err}") from err
    pairs = pairs.reshape(-1, 2)
    finite = np.isfinite(pairs).all(axis=1)
    ts, vs = pairs[finite, 0], pairs[finite, 1]
    order = np.argsort(ts, kind="stable")
    return Series(
        labels=dict(labels),
        timestamps=np.ascontiguousarray(ts[order]),
        values=np.ascontiguousarray(vs[order]),
        dropped=int((~finite).sum()),
        dropped_at=np.sort(pairs[~finite, 0]),
    )
