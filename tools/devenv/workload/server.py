"""Workload simulator: fake Prometheus metrics for an ML model-serving fleet.

Used by the integration/e2e tests and by the demo (``make demo``) in place of real model
servers. It watches every apps/v1 Deployment and StatefulSet and every Argo Rollout
(argoproj.io/v1alpha1, when its CRD is installed) whose first container has a ``SIM_PROFILE``
env var and serves, per workload, the series rollguard's analysis queries read:
``model_requests_total``, ``model_request_duration_seconds`` and ``model_revenue_total``
(labelled ``deployment`` whatever the kind), and the same counts in the shapes of Istio,
pod-level histograms, Envoy, Traefik and Seldon (``--families``). Because it follows the
*live* pod template, rolling a workload back (which swaps the env var) changes the metrics
within a tick or two, which is what the tests assert on. A Rollout mid-update serves its
stable and canary templates' profiles blended by the canary's share
(``devenv.workload.kinds``): for that, the stable ReplicaSet is read when a Rollout changes.

Run::

    python -m devenv.workload.server --kubeconfig PATH [--context NAME] \\
        --host 127.0.0.1 --port PORT --seed N [--tick 0.25] [--families istio,pod,...|none]

This module and ``devenv.workload.watch`` are the simulator's I/O: there the Kubernetes
watches (one thread per kind; the Rollouts' looked for again every 15 s while the cluster
has no such CRD), here the tick thread, the HTTP server (``/metrics``, ``/healthz``,
``/state``), signal handling and the command line. The pure parts they drive, which the unit
tests call directly:

- ``devenv.workload.profile``: profiles, env parsing, the latency model, blends of profiles;
- ``devenv.workload.counters``: one workload's counters and the model server's families;
- ``devenv.workload.families``: the mesh, proxy and model-server families (``--families``);
- ``devenv.workload.kinds``: ``WorkloadInfo``, read from a Deployment, StatefulSet or Rollout
  (and a Rollout's stable ReplicaSet);
- ``devenv.workload.fleet``: ``Simulator``, the thread-safe fleet and its exposition.
"""

from __future__ import annotations

import argparse
import http.server
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from devenv.workload.families import EXTRA_FAMILIES, parse_families
from devenv.workload.fleet import Simulator
from devenv.workload.profile import PROFILE_ENV
from devenv.workload.watch import Watcher, build_sources, k8s_module

# The whole simulator logs as one component, whichever module a line comes from.
logger = logging.getLogger("devenv.workload.server")

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


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
        description="Serve simulated model-serving metrics for Deployments, StatefulSets and "
        f"Argo Rollouts that set {PROFILE_ENV} on their first container.",
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

    k8s_module("kubernetes.config").load_kube_config(
        config_file=args.kubeconfig, context=args.context
    )
    sources = build_sources()

    sim = Simulator(seed=args.seed, tick_seconds=args.tick, families=args.families)
    stop = threading.Event()
    server = http.server.ThreadingHTTPServer((args.host, args.port), _make_handler(sim))
    server.daemon_threads = True

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("Received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # Daemon threads: a watch may sit in a blocking read for up to a minute and must not
    # hold up exit; it owns no state that needs flushing.
    threads = [
        *(
            threading.Thread(
                target=Watcher(source, sim, stop).run,
                name=f"watch-{source.kind.lower()}",
                daemon=True,
            )
            for source in sources
        ),
        threading.Thread(target=_run_ticks, args=(sim, stop), name="tick", daemon=True),
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        ),
    ]
    for t in threads:
        t.start()
    host, port = server.server_address[:2]
    logger.info(
        "Serving on http://%s:%s (seed=%d, tick=%.3fs, families=%s)",
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
    # The watches may be in a blocking read (above); the others stop within a poll.
    for t in threads[len(sources) :]:
        t.join(timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
