"""Which API errors are retried, and after how long: Retry-After is honoured, by the client
itself for 429s (as client-go does) and by the callers for what is left."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollguard.kube.client import (
    REQUEST_TIMEOUT,
    THROTTLE_RETRIES,
    THROTTLE_WAIT_DEFAULT,
    THROTTLE_WAIT_MAX,
    hardened,
    is_transient,
    retry_after,
)


def _error(status: int, headers: dict[str, str] | None = None) -> ApiException:
    err = ApiException(status=status, reason="x")
    err.headers = headers
    return err


@pytest.mark.parametrize(
    ("status", "transient"),
    [(409, True), (429, True), (500, True), (503, True), (400, False), (403, False), (404, False),
     (422, False)],
)  # fmt: skip
def test_conflicts_throttling_and_server_errors_are_transient(status: int, transient: bool) -> None:
    assert is_transient(_error(status)) is transient


def test_retry_after_is_honoured_and_bad_values_fall_back() -> None:
    assert retry_after(_error(429, {"Retry-After": "7"}), 1.0) == 7.0
    assert retry_after(_error(429, {"Retry-After": "soon"}), 1.0) == 1.0
    assert retry_after(_error(429, {"Retry-After": "-3"}), 1.0) == 0.0
    assert retry_after(_error(503), 2.5) == 2.5
    assert retry_after(_error(429, {"Retry-After": "inf"}), 1.0) == 1.0
    assert retry_after(_error(429, {"Retry-After": "nan"}), 1.0) == 1.0


class _Response:
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        self.status = status
        self.headers = {"Retry-After": retry_after} if retry_after is not None else {}


class _Rest:
    """A REST client whose answers are scripted, recording each request."""

    def __init__(self, *answers: _Response) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, object]]] = []

    def request(self, method: str, url: str, **kwargs: object) -> _Response:
        self.calls.append((method, kwargs))
        return self.answers.pop(0)


def _client(rest: _Rest) -> tuple[client.ApiClient, list[float]]:
    api = client.ApiClient()
    api.rest_client = rest
    slept: list[float] = []
    hardened(api, sleep=slept.append)
    return api, slept


def test_a_throttled_request_is_retried_after_its_retry_after() -> None:
    rest = _Rest(_Response(429, "3"), _Response(429, "junk"), _Response(201))
    api, slept = _client(rest)
    answer = api.rest_client.request("PATCH", "https://api/x", body={"a": 1})
    assert answer.status == 201
    assert slept == [3.0, THROTTLE_WAIT_DEFAULT]
    assert [c[0] for c in rest.calls] == ["PATCH"] * 3
    assert all(c[1]["body"] == {"a": 1} for c in rest.calls)  # the same request each time
    assert all(c[1]["_request_timeout"] == REQUEST_TIMEOUT for c in rest.calls)


def test_retries_are_bounded_and_long_waits_capped() -> None:
    rest = _Rest(*[_Response(429, "3600")] * (THROTTLE_RETRIES + 1))
    api, slept = _client(rest)
    assert api.rest_client.request("GET", "https://api/x").status == 429
    assert slept == [THROTTLE_WAIT_MAX] * THROTTLE_RETRIES
    assert len(rest.calls) == THROTTLE_RETRIES + 1


@pytest.mark.parametrize("status", [200, 404, 409, 500])
def test_other_answers_are_returned_at_once(status: int) -> None:
    rest = _Rest(_Response(status, "5"))
    api, slept = _client(rest)
    assert api.rest_client.request("GET", "https://api/x", _request_timeout=1).status == status
    assert slept == []
    assert rest.calls[0][1]["_request_timeout"] == 1
