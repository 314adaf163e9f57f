"""A fault-injecting HTTP proxy in front of Prometheus, for the drills.

The operator of the test suite reaches Prometheus through it. ``mode`` says what it does with
each request: ``pass`` (forward it), ``refuse`` (close the connection unanswered, as a stopped
Prometheus would), ``slow`` (answer only after ``delay`` seconds), ``error`` (HTTP 503),
``empty`` (a valid answer without series) or ``garbage`` (HTTP 200 with a body that is not
JSON). Loopback only; every request is counted per mode."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from devenv.processes import free_port

Mode = Literal["pass", "refuse", "slow", "error", "empty", "garbage"]
EMPTY = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'


class FaultProxy:
    def __init__(self, upstream: str, *, delay: float = 8.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode: Mode = "pass"
        self.delay = delay
        self.requests: Counter[str] = Counter()
        self.answers: Counter[int] = Counter()  # upstream status codes (502: unreachable)
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                mode = proxy.mode
                proxy.requests[mode] += 1
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                if mode == "refuse":
                    self.close_connection = True
                    self.connection.close()
                    return
                if mode == "error":
                    self._reply(503, b"service unavailable", "text/plain")
                    return
                if mode == "empty":
                    self._reply(200, EMPTY, "application/json")
                    return
                if mode == "garbage":
                    self._reply(200, b"<html>\x00\xff not json", "application/json")
                    return
                if mode == "slow":
                    time.sleep(proxy.delay)
                request = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=data,
                    method=self.command,
                    headers={
                        k: v for k, v in self.headers.items() if k.lower() in ("content-type",)
                    },
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        proxy.answers[answer.status] += 1
                        self._reply(
                            answer.status,
                            answer.read(),
                            answer.headers.get("Content-Type", "application/json"),
                        )
                except urllib.error.HTTPError as err:
                    proxy.answers[err.code] += 1
                    self._reply(err.code, err.read(), "application/json")
                except (OSError, urllib.error.URLError):
                    proxy.answers[502] += 1
                    self._reply(502, b"upstream unreachable", "text/plain")

            do_GET = do_POST = _handle  # noqa: N815

        return Handler
