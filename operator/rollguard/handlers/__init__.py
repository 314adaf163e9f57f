"""Kopf glue: the only code that imports kopf. One module per kind, each thin: it reads the
event, calls the control loops in worker threads, and persists status.

``run`` checks what the operator needs (``rollguard.kube.preflight``), then starts it."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading

import kopf

from rollguard.control.health import HEALTH, Health, parse_stream_line, parse_watch_failure
from rollguard.control.settings import Settings
from rollguard.kube import access
from rollguard.kube.client import Cluster, ConnectionSetupError, connect
from rollguard.kube.preflight import assess

WATCH_LOGGER = "kopf._cogs.clients.watching"
ORCHESTRATION_LOGGER = "kopf._core.reactor.orchestration"
log = logging.getLogger("rollguard")


class StartupError(RuntimeError):
    """The operator cannot run; the message says what is missing and the command that fixes
    it."""


class WatchFailedError(RuntimeError):
    """A watch stream failed for good and the operator stopped, so that it is restarted with
    fresh watches."""


class WatchFailures(logging.Filter):
    """Kopf logs "Watcher for R@NS has failed: ..." when a watch stream ends on an error it
    does not retry (or after its retries), and never starts that stream again: the operator
    would run on, blind to that kind. So the first such line stops it (``stop``, Kopf's stop
    flag), and ``run`` then raises ``WatchFailedError``: in a cluster, Kubernetes restarts it
    and it lists everything afresh. Kopf can hang while stopping (its other watchers retrying
    on a closed connection), so if the process is still there ``grace`` seconds later it
    exits with status 1 at once; every step the operator takes survives a kill."""

    def __init__(
        self, health: Health = HEALTH, stop: threading.Event | None = None, grace: float = 10.0
    ) -> None:
        super().__init__()
        self.health, self.stop = health, stop if stop is not None else threading.Event()
        self.grace = grace

    def filter(self, record: logging.LogRecord) -> bool:
        failed = parse_watch_failure(record.getMessage())
        if failed is not None and self.health.watch_failed(failed):
            log.error(
                "A watch stream failed and Kopf does not start it again (%s); stopping so that "
                "the operator restarts with fresh watches",
                failed,
            )
            self.stop.set()
            if self.grace > 0:
                threading.Thread(target=self._exit_later, args=(failed,), daemon=True).start()
        return True

    def _exit_later(self, failed: str) -> None:
        threading.Event().wait(self.grace)
        sys.stderr.write(
            f"rollguard run: stopped: the watch stream {failed} (still stopping after "
            f"{self.grace:.0f}s; exiting)\n"
        )
        sys.stderr.flush()
        os._exit(1)


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


def _configure_logging(level: str, failures: WatchFailures) -> None:
    kopf.configure(verbose=False)
    logging.getLogger().setLevel(level.upper())
    watching = logging.getLogger(WATCH_LOGGER)
    watching.setLevel(logging.DEBUG)
    watching.addFilter(StreamPauses(debug=level.upper() == "DEBUG"))
    logging.getLogger(ORCHESTRATION_LOGGER).addFilter(failures)


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
    """Run the operator until it is stopped (SIGTERM or Ctrl-C). Raises ``StartupError``, or
    ``WatchFailedError`` when it stopped because a watch stream failed."""
    # Imported here, not at module level: importing them registers their handlers with Kopf.
    from rollguard.handlers import decisions, policies, runtime  # noqa: PLC0415

    del decisions, policies  # imported for their handlers
    failures = WatchFailures()
    _configure_logging(settings.log_level, failures)

    @kopf.on.cleanup()
    def release_stop_flag(**_: object) -> None:
        # Kopf waits on the stop flag in a worker thread; when it stops for another reason
        # (SIGTERM, Ctrl-C) that thread would keep the interpreter from exiting.
        failures.stop.set()

    del release_stop_flag  # registered with Kopf
    try:
        cluster = Cluster(connect(kubeconfig=settings.kubeconfig))
    except ConnectionSetupError as err:
        raise StartupError(str(err)) from err
    settings = preflight(settings, cluster)
    runtime.configure(settings, cluster)
    runtime.check_prometheus()
    try:
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
            stop_flag=failures.stop,
        )
    except Exception as err:
        # Kopf re-raises the watcher's error when that watcher was among its first tasks.
        if failures.health.failed is None:
            raise
        raise WatchFailedError(f"stopped: the watch stream {failures.health.failed}") from err
    if failures.health.failed is not None:
        raise WatchFailedError(f"stopped: the watch stream {failures.health.failed}")
