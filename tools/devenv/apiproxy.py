"""A proxy in front of kube-apiserver for one client (the operator under test): it forwards
every request, watches included (streamed as they come), records each one, and can throttle:
answer HTTP 429 with Retry-After, as API Priority and Fairness does under load, to the first
requests of every (method, path) while armed, and can trip: run a callback (the drills SIGKILL
the operator) the moment a chosen write has been persisted, before its answer reaches the
client, so the client dies knowing nothing of its own write.

It terminates TLS with a serving certificate from the environment's own CA (so the client's
kubeconfig changes only its server address), and passes the client's bearer token on over a
second TLS connection, verified against that CA: the API server still authenticates and
authorises the client itself. Loopback only; for the drills and benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from devenv.certs import KeyPair, issue
from devenv.processes import free_port

# Headers that belong to one hop, not to the request or response being forwarded.
_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Host",
        "Accept-Encoding", "Content-Encoding", "Upgrade", "Proxy-Connection", "TE", "Trailer",
    )
)  # fmt: skip


@dataclass(frozen=True)
class Request:
    """One request the proxy saw: when, what, and what the client got."""

    at: float  # time.monotonic()
    method: str
    path: str
    watch: bool
    status: int
    phase: str = ""  # for a status write: the phase it sets, if any


Matcher = Callable[[str, str, object], bool]  # (method, path, JSON body or None) -> matches


@dataclass
class Tripwire:
    """Fires ``action`` once, after the first request that ``matches`` and that the API
    server answered with success; the client gets no answer to it."""

    label: str
    matches: Matcher
    action: Callable[[], None]
    fired: bool = False


@dataclass
class Throttle:
    """While armed: the first ``per_path`` requests of each (method, path) answered 429."""

    retry_after: int
    per_path: int
    writes_only: bool
    refused: Counter[tuple[str, str]]

    def refuses(self, method: str, path: str, watch: bool) -> bool:
        if watch or (self.writes_only and method in ("GET", "HEAD")):
            return False
        if self.refused[(method, path)] >= self.per_path:
            return False
        self.refused[(method, path)] += 1
        return True


class ApiProxy:
    def __init__(self, upstream: str, pki: Path) -> None:
        """``pki``: the environment's certificate directory (its CA signs the proxy's)."""
        self.upstream = upstream.rstrip("/")
        ca = KeyPair(pki / "ca.crt", pki / "ca.key")
        self._ssl = ssl.create_default_context(cafile=str(ca.cert))
        serving = issue(
            ca=ca, directory=pki, name="apiproxy", common_name="apiproxy", server_ips=("127.0.0.1",)
        )
        self._serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._serving.load_cert_chain(str(serving.cert), str(serving.key))
        self.port = free_port()
        self.requests: list[Request] = []
        self.throttle: Throttle | None = None
        self.tripwire: Tripwire | None = None
        self.garbling: Matcher | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> ApiProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the API proxy did not start")
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def kubeconfig(self, source: Path, target: Path) -> Path:
        """``source`` (a token kubeconfig) pointed at the proxy instead of the API server."""
        config = yaml.safe_load(source.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = self.url
        target.write_text(yaml.safe_dump(config))
        return target

    def arm(self, *, retry_after: int = 2, per_path: int = 2, writes_only: bool = False) -> None:
        with self._lock:
            self.throttle = Throttle(retry_after, per_path, writes_only, Counter())

    def disarm(self) -> Counter[tuple[str, str]]:
        """Stop throttling; what was refused, per (method, path)."""
        with self._lock:
            refused = self.throttle.refused if self.throttle else Counter()
            self.throttle = None
        return refused

    def trip(self, label: str, matches: Matcher, action: Callable[[], None]) -> Tripwire:
        """Arm a tripwire (replacing any other): ``action`` runs once, right after the first
        successful request that ``matches``."""
        wire = Tripwire(label, matches, action)
        with self._lock:
            self.tripwire = wire
        return wire

    def garble(self, matches: Matcher) -> None:
        """The next request that ``matches`` is answered 200 with a body that is not JSON
        (gzip's first bytes, as a compressed body without its header), once."""
        with self._lock:
            self.garbling = matches

    def since(self, start: float) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.at >= start]

    # -- the server ------------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._serving).start()

    def _note(self, request: web.Request, watch: bool, status: int, body: object = None) -> None:
        phase = ""
        if isinstance(body, dict) and isinstance(body.get("status"), dict):
            phase = str(body["status"].get("phase") or "")
        with self._lock:
            self.requests.append(
                Request(time.monotonic(), request.method, request.path, watch, status, phase)
            )

    def _tripped(self, method: str, path: str, body: object, status: int) -> Tripwire | None:
        with self._lock:
            wire = self.tripwire
            if wire is None or wire.fired or not 200 <= status < 300:
                return None
            if not wire.matches(method, path, body):
                return None
            wire.fired = True
            return wire

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        with self._lock:
            throttle = self.throttle
            refused = throttle is not None and throttle.refuses(request.method, request.path, watch)
        if refused:
            assert throttle is not None
            self._note(request, watch, 429)
            body = {
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
                "reason": "TooManyRequests",
                "message": "Too many requests, please try again later.",
                "details": {"retryAfterSeconds": throttle.retry_after},
            }  # fmt: skip
            return web.json_response(
                body, status=429, headers={"Retry-After": str(throttle.retry_after)}
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        data = await request.read()
        with self._lock:
            garbled = self.garbling is not None and self.garbling(
                request.method, request.path, None if watch else _json(data)
            )
            if garbled:
                self.garbling = None
        if garbled:
            self._note(request, watch, 200)
            return web.Response(
                status=200, body=b"\x1f\x8b\x08\x00 not json", content_type="application/json"
            )
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=data or None,
                ssl=self._ssl,
                allow_redirects=False,
                # aiohttp would label a body without a type application/octet-stream, which
                # the API server refuses; without one it reads JSON, as for a direct client.
                # Nor may it ask for gzip: the session does not decompress, and a compressed
                # body would reach the client without its Content-Encoding (a hop header here).
                skip_auto_headers=("Content-Type", "Accept-Encoding"),
            )
        except (aiohttp.ClientError, OSError) as err:
            self._note(request, watch, 502)
            return web.Response(status=502, text=json.dumps({"message": str(err)}))
        sent = _json(data)
        self._note(request, watch, upstream.status, sent)
        wire = self._tripped(request.method, request.path, sent, upstream.status)
        if wire is not None:
            upstream.release()
            wire.action()
            return web.Response(status=503, text=json.dumps({"message": f"tripped: {wire.label}"}))
        response = web.StreamResponse(
            status=upstream.status,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP},
        )
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientError):
            pass  # the client or the API server went away mid-stream (a watch ending)
        finally:
            upstream.release()
        return response


def _json(data: bytes) -> object:
    """A request body as JSON, or None (no body, or not JSON)."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None
