"""Operator settings: flags and ROLLGUARD_* environment variables, checked at start-up so a
wrong setting fails fast with a message that names it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from rollguard import __version__

LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """A setting is wrong; the message names it."""


@dataclass(frozen=True)
class Settings:
    prometheus_url: str
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    audit_log: str = "-"
    keep_decisions: int = 20
    scrape_interval: float = 15.0
    query_timeout: float = 5.0
    query_offset: float = 1.0
    decision_poll: float = 2.0
    peering: str = "rollguard"
    priority: int = 0
    standalone: bool = False
    log_level: str = "info"
    receivers: str | None = None
    operator_version: str = __version__
    kubeconfig: str | None = field(default=None)

    def validate(self) -> Settings:
        url = urlparse(self.prometheus_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise SettingsError(
                f"--prometheus-url / ROLLGUARD_PROMETHEUS_URL: {self.prometheus_url!r} is not an "
                "http(s) URL such as http://prometheus.monitoring:9090"
            )
        if not 0 <= self.metrics_port <= 65535:
            raise SettingsError(f"--metrics-port: {self.metrics_port} is not a port (0 disables)")
        if self.keep_decisions < 1:
            raise SettingsError(f"--keep-decisions: must be at least 1, got {self.keep_decisions}")
        for name, value in (
            ("--scrape-interval", self.scrape_interval),
            ("--query-timeout", self.query_timeout),
            ("--decision-poll", self.decision_poll),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise SettingsError(f"{name}: must be a positive number of seconds, got {value}")
        if not (0 <= self.query_offset <= 300 and math.isfinite(self.query_offset)):
            raise SettingsError(
                f"--query-offset: must be between 0 and 300 seconds, got {self.query_offset}"
            )
        if self.audit_log != "-":
            parent = Path(self.audit_log).parent
            if not parent.is_dir():
                raise SettingsError(f"--audit-log: directory {parent} does not exist")
        if self.log_level.lower() not in LOG_LEVELS:
            raise SettingsError(
                f"--log-level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        for ns in self.namespaces:
            if not ns or len(ns) > 63:
                raise SettingsError(f"--namespace: {ns!r} is not a namespace name")
        return self
