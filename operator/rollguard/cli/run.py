"""``rollguard run``: start the operator.

Its settings come from flags, each defaulting to a ``ROLLGUARD_<NAME>`` environment variable
named in its help; they are checked before Kopf is imported, so a wrong one fails fast with a
message naming it. Registered in ``rollguard.cli``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from rollguard.cli.base import EXIT_FOUND, EXIT_OK, EXIT_USAGE, Command, UsageError
from rollguard.control.settings import Settings, SettingsError


def _env(name: str, default: str | None = None) -> str | None:
    """The one place the product reads the environment: a setting of ``run``, named in its
    help."""
    return os.environ.get(f"ROLLGUARD_{name}", default)


def _priority(value: str) -> int:
    """A peering priority: an integer, or ``auto`` for a random one in [1, 2**31)."""
    if value == "auto":
        return secrets.randbelow(2**31 - 1) + 1
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither an integer nor 'auto'") from None


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prometheus-url",
        default=_env("PROMETHEUS_URL"),
        help="Prometheus base URL [ROLLGUARD_PROMETHEUS_URL] (required)",
    )
    p.add_argument(
        "--namespace",
        action="append",
        default=[n for n in (_env("NAMESPACES") or "").split(",") if n] or None,
        help="watch only this namespace; repeatable [ROLLGUARD_NAMESPACES, comma-separated]; cluster-wide when absent",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=_env("METRICS_PORT", "8080"),
        help="port of /metrics (0 disables); liveness is served on the next port [ROLLGUARD_METRICS_PORT]",
    )
    p.add_argument(
        "--audit-log",
        default=_env("AUDIT_LOG", "-"),
        help="file for JSON audit lines, - for stdout [ROLLGUARD_AUDIT_LOG]",
    )
    p.add_argument(
        "--keep-decisions",
        type=int,
        default=_env("KEEP_DECISIONS", "20"),
        help="decisions kept per ModelDeployment after export [ROLLGUARD_KEEP_DECISIONS]",
    )
    p.add_argument(
        "--scrape-interval",
        type=float,
        default=_env("SCRAPE_INTERVAL", "15"),
        help="Prometheus scrape interval in seconds: the finest query step [ROLLGUARD_SCRAPE_INTERVAL]",
    )
    p.add_argument(
        "--query-timeout",
        type=float,
        default=_env("QUERY_TIMEOUT", "5"),
        help="seconds per Prometheus request [ROLLGUARD_QUERY_TIMEOUT]",
    )
    p.add_argument(
        "--query-offset",
        type=float,
        default=_env("QUERY_OFFSET", "1"),
        help="seconds after an evaluation instant before it is evaluated, for Prometheus to "
        "ingest the samples up to it: above your slowest scrape, backtests reproduce every "
        "evaluation exactly [ROLLGUARD_QUERY_OFFSET]",
    )
    p.add_argument(
        "--decision-poll",
        type=float,
        default=_env("DECISION_POLL", "2"),
        help="seconds between lifecycle steps of an open decision [ROLLGUARD_DECISION_POLL]",
    )
    p.add_argument(
        "--peering",
        default=_env("PEERING", "rollguard"),
        help="Kopf peering name: of several replicas only one acts [ROLLGUARD_PEERING]",
    )
    p.add_argument(
        "--priority",
        type=_priority,
        default=_env("PRIORITY", "auto"),
        help="peering priority: the replica with the highest acts, the others stand by; 'auto' "
        "(default) draws a random one so that replicas never tie (tied replicas all freeze) "
        "[ROLLGUARD_PRIORITY]",
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        default=_env("STANDALONE", "") == "true",
        help="no peering (one replica only) [ROLLGUARD_STANDALONE=true]",
    )
    p.add_argument(
        "--receivers",
        default=_env("RECEIVERS", ""),
        help="notification receivers file, read again when it changes; missing: nobody is "
        "notified (docs/operating/notifications.md) [ROLLGUARD_RECEIVERS]",
    )
    p.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        help="debug, info, warning or error; debug adds Kopf's own [ROLLGUARD_LOG_LEVEL]",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The operator's settings from the parsed ``run`` command line, checked."""
    return Settings(
        prometheus_url=args.prometheus_url or "",
        namespaces=tuple(args.namespace or ()),
        metrics_port=args.metrics_port,
        audit_log=args.audit_log,
        keep_decisions=args.keep_decisions,
        scrape_interval=args.scrape_interval,
        query_timeout=args.query_timeout,
        query_offset=args.query_offset,
        decision_poll=args.decision_poll,
        peering=args.peering,
        priority=args.priority,
        standalone=args.standalone,
        log_level=args.log_level,
        receivers=args.receivers or None,
    ).validate()


def _run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except SettingsError as err:
        raise UsageError(f"rollguard run: {err}") from err
    from rollguard import handlers  # noqa: PLC0415 - importing Kopf is only needed here

    try:
        handlers.run(settings)
    except handlers.StartupError as err:
        print(f"rollguard run: {err}", file=sys.stderr)
        return EXIT_USAGE
    except handlers.WatchFailedError as err:
        print(f"rollguard run: {err}", file=sys.stderr)
        return EXIT_FOUND
    return EXIT_OK


RUN = Command("run the operator", _run_args, _run)
