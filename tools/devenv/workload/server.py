"""Workload simulator: fake Prometheus metrics for an ML model-serving fleet.

Used by the integration/e2e tests and by the demo (``make demo``) in place of real model
servers. It watches every apps/v1 Deployment whose first container has a ``SIM_PROFILE`` env
var and serves, per Deployment, the series rollguard's analysis queries read:
``model_requests_total``, ``model_request_duration_seconds`` and ``model_revenue_total``,
and the same counts in the shapes of Istio, pod-level histograms, Envoy, Traefik and Seldon
(``--families``). Because it follows the *live* pod template, rolling a Deployment back
(which swaps the env var) changes the metrics within a tick or two, which is what the tests
assert on.

Run::

    python -m devenv.workload.server --kubeconfig PATH [--context NAME] \\
        --host 127.0.0.1 --port PORT --seed N [--tick 0.25] [--families istio,pod,...|none]

This module is the simulator's I/O: the Kubernetes watch, the tick thread, the HTTP server
(``/metrics``, ``/healthz``, ``/state``), signal handling and the command line. The pure parts
it drives, which the unit tests call directly:

- ``devenv.workload.profile``: profiles, env parsing, the latency model, one deployment's counters;
- ``devenv.workload.families``: the mesh, proxy and model-server families (``--families``);
- ``devenv.workload.fleet``: ``Simulator``, the thread-safe fleet and its exposition, and
  ``extract_deployment``, which reads what it needs from a Deployment object.
"""

from __future__ import annotations

import argparse
import http.server
import importlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from devenv.workload.families import EXTRA_FAMILIES, parse_families
from devenv.workload.fleet import Simulator, extract_deployment, get_path
from devenv.workload.profile import PROFILE_ENV

# The whole simulator logs as one component, whichever module a line comes from.
logger = logging.getLogger("devenv.workload.server")

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"

BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 5.0
WATCH_TIMEOUT_S = 60
LIST_REQUEST_TIMEOUT_S = 15.0
# A read timeout a bit above the server-side watch timeout catches half-dead connections.
WATCH_REQUEST_TIMEOUT = (5.0, WATCH_TIMEOUT_S + 15.0)


def _k8s(module: str) -> Any:
    # Imported lazily so the unit tests never need the client, and typed as Any because the
    # client is untyped (avoids per-call ignores under --strict).
    return importlib.import_module(module)


class GoneError(Exception):
    """The watch resource version expired (410); a full re-list is needed."""


def _run_watch(apps: Any, sim: Simulator, stop: threading.Event) -> None:
    """List-then-watch Deployments forever, keeping ``sim`` in sync, until ``stop``."""
    watch = _k8s("kubernetes.watch")
    api_exception: type[Exception] = _k8s("kubernetes.client.exceptions").ApiException

    backoff = BACKOFF_INITIAL_S
    resource_version: str | None = None
    gone_streak = 0
    while not stop.is_set():
        try:
            if resource_version is None:
                listing = apps.list_deployment_for_all_namespaces(
                    _request_timeout=LIST_REQUEST_TIMEOUT_S
                )
                raw = apps.api_client.sanitize_for_serialization(listing)
                infos = [extract_deployment(item) for item in raw.get("items") or []]
                sim.sync(i for i in infos if i is not None)
                resource_version = str(raw["metadata"]["resourceVersion"])
                logger.debug("listed deployments at resourceVersion %s", resource_version)
            w = watch.Watch()
            for event in w.stream(
                apps.list_deployment_for_all_namespaces,
                resource_version=resource_version,
                timeout_seconds=WATCH_TIMEOUT_S,
                allow_watch_bookmarks=True,
                _request_timeout=WATCH_REQUEST_TIMEOUT,
            ):
                if stop.is_set():
                    w.stop()
                    break
                resource_version = handle_event(sim, event, resource_version)
                gone_streak = 0
                backoff = BACKOFF_INITIAL_S
            # A watch that ran to its timeout proves the API is healthy again.
            gone_streak = 0
            backoff = BACKOFF_INITIAL_S
            continue
        except GoneError:
            gone = True
        except api_exception as exc:
            gone = getattr(exc, "status", None) == 410
            if not gone:
                logger.warning(
                    "Kubernetes API error %s (%s); retrying in %.2fs",
                    getattr(exc, "status", None),
                    getattr(exc, "reason", exc),
                    backoff,
                )
        except Exception as exc:  # noqa: BLE001 -- any transport failure must not kill the watch
            gone = False
            logger.warning(
                "Kubernetes API unreachable (%s: %.200s); serving last-known state, "
                "retrying in %.2fs",
                type(exc).__name__,
                exc,
                backoff,
            )
        # Re-list after every failure, not only 410: events may have been missed, and a list
        # of a test cluster is cheap. State is only replaced once a list succeeds.
        resource_version = None
        if gone:
            logger.info("watch expired (410 Gone); re-listing deployments")
            gone_streak += 1
            if gone_streak == 1:
                continue  # the normal case: re-list straight away
        stop.wait(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_S)


def handle_event(sim: Simulator, event: Mapping[str, Any], resource_version: str) -> str:
    """Apply one watch event; returns the resource version to resume from."""
    kind = event.get("type")
    raw = event.get("raw_object")
    if not isinstance(raw, dict):
        raw = {}
    if kind == "ERROR":
        # The client normally turns these into ApiException; kept for robustness.
        if raw.get("code") == 410:
            raise GoneError
        logger.warning("watch error event: %s", raw.get("message", raw))
        return resource_version
    new_rv = get_path(raw, "metadata", "resourceVersion")
    if kind == "BOOKMARK":
        return str(new_rv) if new_rv else resource_version
    info = extract_deployment(raw)
    if info is not None:
        if kind == "DELETED":
            sim.remove(info.namespace, info.name)
        elif kind in ("ADDED", "MODIFIED"):
            sim.apply(info)
    return str(new_rv) if new_rv else resource_version


def _run_ticks(sim: Simulator, stop: threading.Event) -> None:
    """Advance simulated time in fixed steps, catching up briefly if a tick ran late."""
    step = sim.tick_seconds
    deadline = time.monotonic() + step
    while not stop.wait(max(0.0, deadline - time.monotonic())):
        sim.tick()
        deadline += step
        now = time.monotonic()
        # After a long stall (suspend, debugger) drop the backlog instead of replaying a
        # burst of ticks that would show up as a traffic spike.
        if now - deadline > 5.0:
            deadline = now + step


def _make_handler(sim: Simulator) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "rollguard-simulator/0.1"
        protocol_version = "HTTP/1.1"

        def _send(self, code: int, body: bytes, content_type: str, head: bool) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _dispatch(self, head: bool) -> None:
            path = urlsplit(self.path).path
            try:
                if path == "/metrics":
                    self._send(200, sim.render().encode(), CONTENT_TYPE_METRICS, head)
                elif path == "/healthz":
                    self._send(200, b"ok", "text/plain; charset=utf-8", head)
                elif path == "/state":
                    body = json.dumps(sim.state(), indent=1, sort_keys=True).encode()
                    self._send(200, body, "application/json", head)
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8", head)
            except (BrokenPipeError, ConnectionResetError):
                pass  # scraper went away; nothing to do

        def do_GET(self) -> None:
            self._dispatch(head=False)

        def do_HEAD(self) -> None:
            self._dispatch(head=True)

        def log_message(self, format: str, *args: Any) -> None:
            # Scrapes every few seconds would drown the add/change/remove lines.
            logger.debug("%s - %s", self.address_string(), format % args)

    return Handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devenv.workload.server",
        description="Serve simulated model-serving metrics for Deployments that set "
        f"{PROFILE_ENV} on their first container.",
    )
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument("--context", default=None, help="kubeconfig context to use")
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, default=9464, help="listen port (0 = any)")
    parser.add_argument("--seed", type=int, default=0, help="seed for all random draws")
    parser.add_argument(
        "--tick", type=float, default=0.25, help="simulated time step in seconds (default 0.25)"
    )
    parser.add_argument(
        "--families",
        type=_families_arg,
        default=frozenset(EXTRA_FAMILIES),
        help="other exporters' shapes to serve besides model_*: comma-separated from "
        f"{','.join(EXTRA_FAMILIES)}, or all, or none (default all)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def _families_arg(text: str) -> frozenset[str]:
    try:
        return parse_families(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # urllib3 logs every connection retry; our own line per attempt is enough.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    if not args.tick > 0:
        logger.error("--tick must be > 0")
        return 2

    _k8s("kubernetes.config").load_kube_config(config_file=args.kubeconfig, context=args.context)
    apps = _k8s("kubernetes.client").AppsV1Api()

    sim = Simulator(seed=args.seed, tick_seconds=args.tick, families=args.families)
    stop = threading.Event()
    server = http.server.ThreadingHTTPServer((args.host, args.port), _make_handler(sim))
    server.daemon_threads = True

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # Daemon threads: the watch may sit in a blocking read for up to a minute and must not
    # hold up exit; it owns no state that needs flushing.
    threads = [
        threading.Thread(target=_run_watch, args=(apps, sim, stop), name="watch", daemon=True),
        threading.Thread(target=_run_ticks, args=(sim, stop), name="tick", daemon=True),
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        ),
    ]
    for t in threads:
        t.start()
    host, port = server.server_address[:2]
    logger.info(
        "serving on http://%s:%s (seed=%d, tick=%.3fs, families=%s)",
        host,
        port,
        args.seed,
        args.tick,
        ",".join(sorted(args.families)) or "none",
    )

    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    for t in threads[1:]:
        t.join(timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
