"""The receivers file (``rollguard.control.receivers``): errors that name the field and never
the value (it may be a token), reading it again when it changes, what each kind of receiver
is sent, and ``post`` against real loopback HTTP servers."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollguard.control.notifications import DeliveryError, post
from rollguard.control.receivers import ReceiversError, ReceiversSource, Request, parse

TOKEN = "xoxb-very-secret"


def test_a_wrong_file_names_each_field_and_never_the_secret() -> None:
    text = f"""
receivers:
  - name: a
    slack: {{url: "ftp://{TOKEN}"}}
  - name: b
    webhook: {{url: "http://x"}}
    slack: {{url: "http://y"}}
  - name: a
    alertmanager: {{url: "http://am:9093", tokne: {TOKEN}}}
"""
    with pytest.raises(ReceiversError) as err:
        parse(text, source="receivers.yaml")
    message = str(err.value)
    assert "receivers[0].slack.url: must be an http(s) URL" in message
    assert "receivers[1]: set exactly one of webhook, slack and alertmanager" in message
    assert "receivers[2].alertmanager.tokne: unknown field" in message
    assert TOKEN not in message


def test_duplicate_names_and_a_non_mapping_are_refused() -> None:
    with pytest.raises(ReceiversError, match="duplicate name a"):
        parse("receivers:\n - {name: a, slack: {url: 'http://x'}}\n"
              " - {name: a, slack: {url: 'http://y'}}\n", source="r")  # fmt: skip
    with pytest.raises(ReceiversError, match="r: must be a mapping"):
        parse("- a\n", source="r")
    assert parse("", source="r").receivers == []


def test_the_file_is_read_again_when_it_changes_and_the_last_good_one_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "receivers.yaml"
    source = ReceiversSource(str(path))

    def names() -> tuple[list[str], str]:
        return [r.name for r in source.current().receivers], source.error or ""

    assert names() == ([], f"{path}: no such file; nobody is notified")
    path.write_text("receivers:\n - {name: a, slack: {url: 'http://x'}}\n")
    assert names() == (["a"], "")
    path.write_text("receivers: [oops\n")
    os.utime(path, (1, 1))
    assert names() == (["a"], f"{path}: not YAML at line 2")  # the last good one kept
    assert ReceiversSource(None).current().receivers == []


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    delay = 0.0
    seen: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, dict(self.headers), body))
        if self.delay:
            threading.Event().wait(self.delay)
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.seen, _Handler.status, _Handler.delay = [], 200, 0.0
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: http.server.ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def test_post_delivers_and_describes_each_failure_in_its_own_words(
    server: http.server.ThreadingHTTPServer,
) -> None:
    req = Request(_url(server, f"/hook/{TOKEN}"), b'{"a": 1}', {"Authorization": TOKEN})
    post(req, 2.0)
    [(path, headers, body)] = _Handler.seen
    assert (path, headers["Authorization"], body) == (f"/hook/{TOKEN}", TOKEN, b'{"a": 1}')
    _Handler.status = 500
    with pytest.raises(DeliveryError, match=r"^receiver answered HTTP 500$"):
        post(req, 2.0)
    _Handler.status, _Handler.delay = 200, 1.5
    with pytest.raises(DeliveryError, match=r"^no answer within 0.3s$"):
        post(req, 0.3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused = Request(f"http://127.0.0.1:{closed}/{TOKEN}", b"{}", {})
    with pytest.raises(DeliveryError, match=r"^connection refused$"):
        post(refused, 2.0)


def test_each_kind_of_receiver_is_sent_its_own_format() -> None:
    from rollguard.control.receivers import request_for  # noqa: PLC0415
    from rollguard.core.notices import Notice  # noqa: PLC0415

    notice = Notice(
        event="PendingApproval", namespace="ml", decision="d1", model_deployment="m",
        target="Deployment/m", phase="PendingApproval", title="Approval needed: ml/m",
        lines=("line one", "  error_rate: Breach"), score=0.8, money_per_hour=120.0,
        currency="EUR", action="Rollback", from_revision=2, to_revision=1, reason="why",
        commands={"approve": "rollguard approve d1 -n ml --reason '...'"},
    )  # fmt: skip
    config = parse(
        "receivers:\n"
        " - {name: w, webhook: {url: 'http://h/w', headers: {X-Token: t}}}\n"
        " - {name: s, slack: {url: 'http://h/s'}}\n"
        " - {name: a, alertmanager: {url: 'http://am:9093/'}}\n",
        source="r",
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    w, sl, am = (
        request_for(r, notice, key="k", now=now, until=now + timedelta(minutes=30))
        for r in config.receivers
    )
    assert w.headers["X-Token"] == "t" and w.headers["X-Rollguard-Key"] == "k"
    assert json.loads(w.body)["moneyAtRisk"] == {"perHour": 120.0, "currency": "EUR"}
    assert json.loads(sl.body)["blocks"][1]["text"]["text"].endswith("`error_rate: Breach`")
    assert am.url == "http://am:9093/api/v2/alerts"
    [alert] = json.loads(am.body)
    assert alert["endsAt"] == "2026-01-01T00:30:00Z"
    assert alert["labels"]["severity"] == "critical"
