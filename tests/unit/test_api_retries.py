"""Which API errors are retried, and after how long: Retry-After is honoured."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from rollguard.execution.kube import is_transient, retry_after


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
