"""``rollguard dashboard``: serve the local web view of decisions, as the caller.

Binds to 127.0.0.1 unless told otherwise (another address is allowed, with a warning: anyone
who reaches it acts with the caller's credentials). Registered in ``rollguard.cli``.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from rollguard import commands
from rollguard.cli.base import EXIT_OK, Command, UsageError, cluster_from, kube_args
from rollguard.kube.client import context_namespace
from rollguard.web.server import serve


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free one)")
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other is reachable by others)",
    )
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        help="namespace to show when you may not list all; repeatable (default: the "
        "kubeconfig context's namespace)",
    )
    kube_args(p)


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _dashboard(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: must be 0 to 65535, got {args.port}")
    cluster = cluster_from(args)
    user = commands.whoami(cluster=cluster)
    own = context_namespace(kubeconfig=args.kubeconfig, context=args.context)
    namespaces = args.namespace or ([own] if own else [])
    if not _is_loopback(args.address):
        print(
            f"warning: listening on {args.address}: anyone who reaches it acts as {user}",
            file=sys.stderr,
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = serve(
            address=args.address, port=args.port, cluster=cluster, namespaces=namespaces, user=user
        )
    except OSError as err:
        raise UsageError(
            f"--address/--port: cannot listen on {args.address}:{args.port}: {err.strerror}"
        ) from err
    port = server.server_address[1]
    host = f"[{args.address}]" if ":" in args.address else args.address
    print(f"Serving the rollguard dashboard on http://{host}:{port}/ as {user}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


DASHBOARD = Command(
    "serve a local web view of decisions, with approve and reject, as yourself",
    _dashboard_args,
    _dashboard,
)
