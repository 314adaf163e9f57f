"""Notification receivers on loopback for the tests and the demo: an HTTP sink that records
what is posted to it (a webhook or a Slack-compatible incoming webhook), and a real
Alertmanager from Debian's package, its clustering off, listening on 127.0.0.1 only.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devenv.processes import free_port

ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.time() on arrival


@dataclass
class Sink:
    """An HTTP server on 127.0.0.1 taking POSTs: each is recorded and answered ``status``."""

    status: int = 200
    posted: list[Posted] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Sink:
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                sink.posted.append(Posted(self.path, dict(self.headers), body, time.time()))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def alertmanager_binary() -> str | None:
    return next((b for b in map(shutil.which, ALERTMANAGER_BINARIES) if b), None)


@dataclass
class Alertmanager:
    """A real Alertmanager in ``work``: no clustering, one receiver that sends nowhere (the
    test reads what it holds through its API)."""

    work: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Alertmanager:
        binary = alertmanager_binary()
        if binary is None:
            raise RuntimeError("Alertmanager is not installed (Debian: prometheus-alertmanager)")
        self.work.mkdir(parents=True, exist_ok=True)
        config = self.work / "alertmanager.yml"
        config.write_text(
            "route: {receiver: nowhere, group_wait: 1h}\nreceivers: [{name: nowhere}]\n"
        )
        self.port = free_port()
        log = (self.work / "alertmanager.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={self.work / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"Alertmanager exited; see {self.work / 'alertmanager.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"Alertmanager not ready within {timeout:g}s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as answer:
            found: list[dict[str, Any]] = json.loads(answer.read())
        return found

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
