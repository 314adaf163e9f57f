"""Kopf glue: the only code that imports kopf. One module per kind, each thin: it reads the
event, calls the control loops in worker threads, and persists status.

``run`` starts the operator with the given settings."""

from __future__ import annotations

import kopf

from rollguard.control.settings import Settings


def run(settings: Settings) -> None:
    """Run the operator until it is stopped (SIGTERM or Ctrl-C)."""
    # Imported here, not at module level: importing them registers their handlers with Kopf.
    from rollguard.handlers import decisions, policies, runtime  # noqa: PLC0415

    del decisions, policies  # imported for their handlers
    runtime.configure(settings)
    kopf.configure(verbose=False)
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
