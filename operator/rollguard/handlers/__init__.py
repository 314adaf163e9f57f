"""Kopf glue: the only code that imports kopf. One module per kind, each thin: it reads the
event, calls the control loops in worker threads, and persists status.

``run`` checks what the operator needs (``domain.preflight``), then starts it."""

from __future__ import annotations

import dataclasses
import logging

import kopf

from rollguard.control.health import HEALTH, Health, parse_stream_line
from rollguard.control.settings import Settings
from rollguard.domain.preflight import assess
from rollguard.execution import access
from rollguard.execution.kube import Cluster, ConnectionSetupError, connect

WATCH_LOGGER = "kopf._cogs.clients.watching"
log = logging.getLogger("rollguard")


class StartupError(RuntimeError):
    """The operator cannot run; the message says what is missing and the command that fixes
    it."""


class StreamPauses(logging.Filter):
    """Kopf says why its watch streams stop (peering in favour of another replica, a missing
    peering CRD) only at debug level, so an operator that processes nothing looks idle. Its
    "Pausing/Resuming the watch-stream ... (blockers: ...)" lines are raised to INFO and feed
    readiness (``control.health``); the rest of that logger's debug output is dropped unless
    the log level is debug."""

    def __init__(self, health: Health = HEALTH, *, debug: bool = False) -> None:
        super().__init__()
        self.health, self.debug = health, debug

    def filter(self, record: logging.LogRecord) -> bool:
        parsed = parse_stream_line(record.getMessage())
        if parsed is not None:
            verb, stream, blockers = parsed
            if verb == "pause":
                self.health.stream_paused(stream, blockers)
            else:
                self.health.stream_resumed(stream)
            if record.levelno <= logging.DEBUG:
                record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        return self.debug or record.levelno > logging.DEBUG


def _configure_logging(level: str) -> None:
    kopf.configure(verbose=False)
    logging.getLogger().setLevel(level.upper())
    watching = logging.getLogger(WATCH_LOGGER)
    watching.setLevel(logging.DEBUG)
    watching.addFilter(StreamPauses(debug=level.upper() == "DEBUG"))


def preflight(settings: Settings, cluster: Cluster) -> Settings:
    """Check what the operator needs and log what it found; the settings to run with
    (standalone when peering is not installed). Raises ``StartupError``."""
    try:
        facts = access.gather(
            cluster,
            namespaces=settings.namespaces,
            standalone=settings.standalone,
            peering_name=settings.peering,
        )
    except access.ApiUnreachableError as err:
        raise StartupError(str(err)) from err
    HEALTH.identity = facts.username
    verdict = assess(facts, peering_name=settings.peering)
    for line in verdict.info:
        log.info("%s", line)
    for line in verdict.warnings:
        log.warning("%s", line)
    if not verdict.ok:
        raise StartupError(
            "cannot start:\n" + "\n".join(f"  - {problem}" for problem in verdict.problems)
        )
    if verdict.create_peering:
        access.create_peering(cluster, name=settings.peering, namespaces=settings.namespaces)
    return dataclasses.replace(settings, standalone=verdict.standalone)


def run(settings: Settings) -> None:
    """Run the operator until it is stopped (SIGTERM or Ctrl-C). Raises ``StartupError``."""
    # Imported here, not at module level: importing them registers their handlers with Kopf.
    from rollguard.handlers import decisions, policies, runtime  # noqa: PLC0415

    del decisions, policies  # imported for their handlers
    _configure_logging(settings.log_level)
    try:
        cluster = Cluster(connect(kubeconfig=settings.kubeconfig))
    except ConnectionSetupError as err:
        raise StartupError(str(err)) from err
    settings = preflight(settings, cluster)
    runtime.configure(settings, cluster)
    runtime.check_prometheus()
    kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.standalone,
        priority=settings.priority,
        # A peering name makes peering mandatory in Kopf, even with standalone=True.
        peering_name=None if settings.standalone else settings.peering,
        liveness_endpoint=f"http://0.0.0.0:{settings.metrics_port + 1}/healthz"
        if settings.metrics_port
        else None,
    )
