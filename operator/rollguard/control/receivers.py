"""Notification receivers: the file that defines them (mounted from a Secret, read again when
it changes) and what each kind of receiver is sent.

The file holds every URL and token; nothing here logs, records or raises them: a problem with
the file names the field, never its value.

    dashboardURL: http://127.0.0.1:8765     # optional: messages link to the decision's page
    receivers:
      - name: oncall
        slack: {url: https://hooks.slack.com/services/T000/B000/XXXX}
      - name: audit
        webhook: {url: https://hooks.example/rollguard, headers: {Authorization: Bearer ...}}
      - name: alerts
        alertmanager: {url: http://alertmanager.monitoring:9093}
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from rollguard.api.base import Model
from rollguard.core.notices import Notice
from rollguard.core.times import format_time
from rollguard.files.loading import format_validation_error

_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
ALERT_NAME = "RollguardDecision"
log = logging.getLogger("rollguard")


def _http_url(value: str) -> str:
    url = urlparse(value)
    if url.scheme not in ("http", "https") or not url.netloc:
        # The value may be a secret: the message never repeats it.
        raise ValueError("must be an http(s) URL")
    return value


class Endpoint(Model):
    """Where a receiver posts, and the headers it adds (a token, for instance)."""

    url: str = Field(description="http(s) URL.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError("a header name must be letters, digits and -")
            if any(c in text for c in "\r\n") or not text.isascii():
                # A YAML block scalar leaves a trailing newline; the value is never repeated.
                raise ValueError(f"header {name}: the value must be one line of ASCII")
        return value


class Receiver(Model):
    """One receiver: exactly one of ``webhook``, ``slack`` and ``alertmanager``."""

    name: Name
    webhook: Endpoint | None = None
    slack: Endpoint | None = None
    alertmanager: Endpoint | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _one_kind(self) -> Receiver:
        kinds = [k for k in ("webhook", "slack", "alertmanager") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("set exactly one of webhook, slack and alertmanager")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("webhook", "slack", "alertmanager") if getattr(self, k))

    @property
    def endpoint(self) -> Endpoint:
        endpoint = self.webhook or self.slack or self.alertmanager
        assert endpoint is not None  # _one_kind
        return endpoint


class ReceiversFile(Model):
    dashboard_url: str | None = Field(default=None, alias="dashboardURL")
    receivers: list[Receiver] = Field(default_factory=list, max_length=64)

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard(cls, value: str | None) -> str | None:
        return value if value is None else _http_url(value)

    @model_validator(mode="after")
    def _unique(self) -> ReceiversFile:
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receivers: duplicate name {', '.join(dupes)}")
        return self

    def named(self, name: str) -> Receiver | None:
        return next((r for r in self.receivers if r.name == name), None)


class ReceiversError(ValueError):
    """The receivers file is unreadable or wrong; the message names the field, not values."""


def parse(text: str, *, source: str) -> ReceiversFile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ReceiversError(f"{source}: not YAML{where}") from None
    if data is None:
        return ReceiversFile()
    if not isinstance(data, dict):
        raise ReceiversError(f"{source}: must be a mapping with a receivers list")
    try:
        return ReceiversFile.model_validate(data)
    except ValidationError as err:
        # Field paths and pydantic's messages, which never quote the value they refuse.
        raise ReceiversError(format_validation_error(source, err)) from None


@dataclass
class ReceiversSource:
    """The receivers file at ``path``, read again whenever it changes (a Secret's update
    reaches a mounted file within a minute or so). No path: nobody is notified."""

    path: str | None
    _stamp: tuple[float, int] | None = None
    _loaded: ReceiversFile | None = None
    error: str | None = None

    def current(self) -> ReceiversFile:
        """The receivers as the file now says; the last good ones while the file is wrong
        (``error`` says why), none while it is missing."""
        if not self.path:
            return ReceiversFile()
        try:
            st = os.stat(self.path)
        except OSError:
            if self._stamp is not None or self.error is None:
                log.warning("Found no receivers file at %s: nobody is notified", self.path)
            self._stamp, self._loaded = None, None
            self.error = f"{self.path}: no such file; nobody is notified"
            return ReceiversFile()
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            self._read(self.path)
        return self._loaded or ReceiversFile()

    def _read(self, path: str) -> None:
        try:
            self._loaded = parse(Path(path).read_text(), source=path)
            self.error = None
        except (OSError, UnicodeDecodeError):
            self.error = f"{path}: cannot be read"
        except ReceiversError as err:
            self.error = str(err)
        if self.error:
            kept = "keeping the last good receivers" if self._loaded else "nobody is notified"
            log.error("Refused receivers file %s (%s): %s", path, kept, self.error)
        else:
            names = [f"{r.name} ({r.kind})" for r in (self._loaded or ReceiversFile()).receivers]
            log.info("Read receivers file %s: %s", path, ", ".join(names) or "no receivers")


# --- what each kind of receiver is sent --------------------------------------------------


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


def _webhook(notice: Notice, key: str) -> dict[str, Any]:
    return {
        "kind": "RollguardNotification",
        "version": "v1",
        "key": key,
        "event": notice.event,
        "title": notice.title,
        "text": notice.text,
        "decision": {"namespace": notice.namespace, "name": notice.decision, "phase": notice.phase},
        "modelDeployment": notice.model_deployment,
        "target": notice.target,
        "score": notice.score,
        "moneyAtRisk": (
            {"perHour": notice.money_per_hour, "currency": notice.currency}
            if notice.money_per_hour is not None
            else None
        ),
        "recommendation": {
            "action": notice.action,
            "fromRevision": notice.from_revision,
            "toRevision": notice.to_revision,
            "reason": notice.reason,
        },
        "signals": list(notice.signals),
        "commands": notice.commands,
        "link": notice.link,
    }


def _mrkdwn(text: str) -> str:
    """``text`` as Slack's markup shows it literally (``<``, ``>`` and ``&`` escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(notice: Notice) -> dict[str, Any]:
    body = "\n".join(
        f"`{_mrkdwn(line[2:])}`" if line.startswith("  ") else _mrkdwn(line)
        for line in notice.lines
    )
    return {
        "text": _mrkdwn(notice.text),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
        ],
    }


# Once a decision no longer waits, the alert that asked for its approval is resolved (an
# alert sent again with the same labels and an end in the past or now).
_ANSWERS = frozenset({"Approved", "Rejected", "Expired"})


def _labels(notice: Notice, event: str) -> dict[str, str]:
    return {
        "alertname": ALERT_NAME,
        "namespace": notice.namespace,
        "decision": notice.decision,
        "modeldeployment": notice.model_deployment,
        "event": event,
        "severity": "critical" if event == "PendingApproval" else "warning",
    }


def _alerts(notice: Notice, *, now: datetime, until: datetime | None) -> list[dict[str, Any]]:
    ends = until if until is not None and until > now else now + timedelta(hours=1)
    resolved = (
        [{"labels": _labels(notice, "PendingApproval"), "endsAt": format_time(now)}]
        if notice.event in _ANSWERS
        else []
    )
    return [
        *resolved,
        {
            "labels": _labels(notice, notice.event),
            "annotations": {
                "summary": notice.title,
                "description": notice.text,
                **{k: v for k, v in notice.commands.items()},
                **({"link": notice.link} if notice.link else {}),
            },
            "startsAt": format_time(now),
            "endsAt": format_time(ends),
            **({"generatorURL": notice.link} if notice.link else {}),
        },
    ]


def request_for(
    receiver: Receiver, notice: Notice, *, key: str, now: datetime, until: datetime | None
) -> Request:
    """The HTTP POST that tells ``receiver`` of ``notice``; ``until``: when an alert about it
    stops mattering (a pending decision's approval deadline), for Alertmanager; ``now``: when
    the transition was made."""
    endpoint = receiver.endpoint
    headers = {"Content-Type": "application/json", "X-Rollguard-Key": key, **endpoint.headers}
    if receiver.kind == "alertmanager":
        url = endpoint.url.rstrip("/") + "/api/v2/alerts"
        payload: Any = _alerts(notice, now=now, until=until)
    elif receiver.kind == "slack":
        url, payload = endpoint.url, _slack(notice)
    else:
        url, payload = endpoint.url, _webhook(notice, key)
    return Request(url, json.dumps(payload).encode(), headers)
