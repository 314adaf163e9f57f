"""Kopf glue: the only code that imports kopf. One module per kind, each thin: it reads the
event, calls the control loops in worker threads, and persists status.

``run`` starts the operator with the given settings."""

from __future__ import annotations

import logging

import kopf

from rollguard.control.settings import Settings

WATCH_LOGGER = "kopf._cogs.clients.watching"


class StreamPauses(logging.Filter):
    """Kopf says why its watch streams stop (peering in favour of another replica, a missing
    peering CRD) only at debug level, so an operator that processes nothing looks idle. Its
    "Pausing/Resuming the watch-stream ... (blockers: ...)" lines are raised to INFO; the rest
    of that logger's debug output is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            return True
        if record.getMessage().startswith(("Pausing the watch-stream", "Resuming the watch")):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        return False


def run(settings: Settings) -> None:
    """Run the operator until it is stopped (SIGTERM or Ctrl-C)."""
    # Imported here, not at module level: importing them registers their handlers with Kopf.
    from rollguard.handlers import decisions, policies, runtime  # noqa: PLC0415

    del decisions, policies  # imported for their handlers
    runtime.configure(settings)
    kopf.configure(verbose=False)
    watching = logging.getLogger(WATCH_LOGGER)
    watching.setLevel(logging.DEBUG)
    watching.addFilter(StreamPauses())
    kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.standalone,
        priority=settings.priority,
        peering_name=settings.peering,
        liveness_endpoint=f"http://0.0.0.0:{settings.metrics_port + 1}/healthz"
        if settings.metrics_port
        else None,
    )
