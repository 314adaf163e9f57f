"""Readiness and the operator state: a standby is ready, a replica paused for any other reason
or whose decisions are refused is not; a refusal is said once; the summary of what is watched."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request

import pytest

from devenv.processes import free_port
from rollguard.control.health import (
    Health,
    PolicyView,
    parse_stream_line,
    parse_watch_failure,
    serve,
    summary,
)
from rollguard.handlers import ORCHESTRATION_LOGGER, WATCH_LOGGER, StreamPauses, WatchFailures


def test_stream_lines_are_parsed() -> None:
    assert parse_stream_line(
        "Pausing the watch-stream for deployments.v1.apps cluster-wide (blockers: a@None, b c)."
    ) == ("pause", "deployments.v1.apps cluster-wide", ("a@None", "b c"))
    assert parse_stream_line("Resuming the watch-stream for x in 'ns'.") == (
        "resume", "x in 'ns'", ()
    )  # fmt: skip
    assert parse_stream_line("Starting the watch-stream for x.") is None


def test_a_standby_is_ready_and_a_missing_peering_crd_is_not() -> None:
    health = Health()
    assert health.state() == ("ready", "")
    health.stream_paused("a", ["rollguard@None"])
    assert health.state()[0] == "standby"
    health.stream_paused("b", ["peering CRD is missing"])
    state, why = health.state()
    assert state == "paused" and "peering CRD is missing" in why
    health.stream_resumed("b")
    health.stream_resumed("a")
    assert health.state() == ("ready", "")


def test_a_refusal_is_said_once_and_cleared_by_the_next_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = Health(identity="admin")
    with caplog.at_level(logging.INFO, logger="rollguard"):
        assert health.decision_refused("only the operator may create decisions")
        assert not health.decision_refused("only the operator may create decisions")
        assert health.state()[0] == "refused"
        health.decision_created()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "as admin" in errors[0].getMessage()
    assert "kubectl apply -k deploy/" in errors[0].getMessage()
    assert health.state() == ("ready", "")


def test_the_stream_filter_feeds_readiness() -> None:
    health = Health()
    line = "Pausing the watch-stream for x cluster-wide (blockers: peering CRD is missing)."
    record = logging.LogRecord(WATCH_LOGGER, logging.DEBUG, __file__, 1, line, None, None)
    assert StreamPauses(health).filter(record) and record.levelname == "INFO"
    assert health.state()[0] == "paused"
    debug = logging.LogRecord(WATCH_LOGGER, logging.DEBUG, __file__, 1, "other", None, None)
    assert not StreamPauses(health).filter(debug)
    assert StreamPauses(health, debug=True).filter(debug)
    warning = logging.LogRecord(WATCH_LOGGER, logging.WARNING, __file__, 1, "odd", None, None)
    assert StreamPauses(health).filter(warning) and warning.levelname == "WARNING"


def test_summary_names_policies_models_and_targets() -> None:
    views = {
        ("ml", "fraud"): PolicyView(True, (("ml", "fraud"),), (("ml", "fraud-v2"),)),
        ("ml", "bad"): PolicyView(False, (), ()),
    }
    assert summary(views) == (
        "Watching 2 RollbackPolicy(s) (1 ready, 1 invalid: ml/bad), 1 ModelDeployment(s) "
        "bound to them, targets: Deployment ml/fraud-v2"
    )
    assert "create a RollbackPolicy" in summary({})


def test_readyz_answers_503_with_the_reason_and_metrics_still_served() -> None:
    health = Health()
    port = free_port()
    serve(port, health)
    base = f"http://127.0.0.1:{port}"
    assert urllib.request.urlopen(f"{base}/readyz", timeout=5).read() == b"ready\n"
    health.decision_refused("nope")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/readyz", timeout=5)
    assert err.value.code == 503 and b"refused" in err.value.read()
    assert (
        b"rollguard_operator_state" in urllib.request.urlopen(f"{base}/metrics", timeout=5).read()
    )


def test_a_watch_stream_kopf_gives_up_on_stops_the_operator_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Kopf's own guard writes the line, as when a LIST came back undecodable.
    from kopf._cogs.aiokits import aiotasks  # noqa: PLC0415 - the line's real author

    async def failing() -> None:
        raise UnicodeDecodeError("utf-8", b"\x1f\x8b", 1, 2, "invalid start byte")

    health, failures = Health(), WatchFailures(Health(), grace=0)
    failures.health = health
    orchestration = logging.getLogger(ORCHESTRATION_LOGGER)
    orchestration.addFilter(failures)
    try:
        for _ in range(2):  # said, and stopped, once
            with caplog.at_level(logging.ERROR), pytest.raises(UnicodeDecodeError):
                asyncio.run(
                    aiotasks.guard(
                        failing(),
                        "watcher for modeldeployments.v1alpha1.rollguard.dev@None",
                        logger=orchestration,
                    )
                )
    finally:
        orchestration.removeFilter(failures)
    assert failures.stop.is_set()
    state, why = health.state()
    assert state == "failed"
    assert why.startswith("a watch stream failed: modeldeployments.v1alpha1.rollguard.dev@none")
    ours = [r for r in caplog.records if r.name == "rollguard"]
    assert len(ours) == 1 and "stopping so that the operator restarts" in ours[0].getMessage()


def test_only_kopfs_failure_lines_are_watch_failures() -> None:
    assert parse_watch_failure("Watcher for pods@None has failed: boom\nTraceback") == (
        "pods@None: boom"
    )
    assert parse_watch_failure("Peering observer for rollguard@None has failed: x") == (
        "rollguard@None: x"
    )
    assert parse_watch_failure("Watcher for pods@None is cancelled.") is None
    assert parse_watch_failure("Daemon has failed: x") is None
