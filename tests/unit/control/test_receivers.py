"""The receivers file (``rollguard.control.receivers``): errors that name the field and never
the value (it may be a token), reading it again when it changes, what each kind of receiver
is sent, and ``post`` against real loopback HTTP servers."""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollguard.control.posting import DeliveryError, post
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


def test_a_header_value_on_more_than_one_line_is_refused_without_its_value() -> None:
    text = f"receivers:\n - name: a\n   webhook:\n     url: http://x\n     headers:\n" \
           f"       Authorization: |\n         Bearer {TOKEN}\n"  # fmt: skip
    with pytest.raises(ReceiversError) as err:
        parse(text, source="r")
    assert "receivers[0].webhook.headers: header Authorization: the value must be one line" in str(
        err.value
    )
    assert TOKEN not in str(err.value)


def test_a_request_the_http_client_refuses_fails_in_words_without_the_secret() -> None:
    bad = Request("http://127.0.0.1:9/", b"{}", {"Authorization": f"Bearer {TOKEN}\n"})
    with pytest.raises(DeliveryError) as err:
        post(bad, 1.0)
    assert str(err.value) == (
        "the receiver's URL or headers cannot be sent (check the receivers file)"
    )


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
        if self.status == 302:
            self.send_header("Location", "http://127.0.0.2:9/elsewhere")
        self.send_header("Content-Length", "0")
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
    _Handler.delay, _Handler.status = 0.0, 302
    with pytest.raises(DeliveryError, match=r"^receiver answered HTTP 302$"):
        post(req, 2.0)  # a redirect is not followed: the token stays where it was sent
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
    answered = dataclasses.replace(notice, event="Approved", lines=("a <b> & c",))
    resolve, approved = json.loads(request_for(config.receivers[2], answered, key="k", now=now,
                                               until=None).body)  # fmt: skip
    assert resolve == {
        "labels": {**alert["labels"]},
        "endsAt": "2026-01-01T00:00:00Z",
    }  # the approval alert ends when the decision no longer waits
    assert approved["labels"]["event"] == "Approved"
    slack = json.loads(request_for(config.receivers[1], answered, key="k", now=now,
                                   until=None).body)  # fmt: skip
    assert slack["blocks"][1]["text"]["text"] == "a &lt;b&gt; &amp; c"
