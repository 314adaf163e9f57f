"""Kopf's watch streams pausing, and why, reach the operator's log at INFO: an operator
paused by peering or by a missing peering CRD says so instead of looking idle."""

from __future__ import annotations

import logging

import pytest

from rollguard.handlers import WATCH_LOGGER, StreamPauses


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(WATCH_LOGGER, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    "message",
    [
        "Pausing the watch-stream for rollbackdecisions cluster-wide (blockers: rollguard@None).",
        "Pausing the watch-stream for deployments cluster-wide (blockers: peering CRD is missing).",
        "Resuming the watch-stream for rollbackdecisions cluster-wide.",
    ],
)
def test_pauses_and_resumes_are_raised_to_info(message: str) -> None:
    record = _record(logging.DEBUG, message)
    assert StreamPauses().filter(record)
    assert (record.levelno, record.levelname) == (logging.INFO, "INFO")


def test_the_rest_of_the_watch_debug_output_is_dropped_and_warnings_kept() -> None:
    assert not StreamPauses().filter(_record(logging.DEBUG, "Starting the watch-stream for x."))
    warning = _record(logging.WARNING, "Ignoring an unsupported event type: {}")
    assert StreamPauses().filter(warning) and warning.levelno == logging.WARNING
