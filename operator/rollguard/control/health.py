"""Is the operator doing its work? Readiness (``/readyz`` on the metrics port), the
``rollguard_operator_state`` metric, a refused decision said once, and a summary of what it
watches.

An operator that processes nothing must not look healthy: a watch stream paused for any
reason but another replica acting (a standby is ready to take over), or decisions the API
server refuses, make it not ready, and the log says why once, with the fix. A watch stream
that failed for good (Kopf does not start it again) makes it stop (``handlers``).

The same server answers ``/verdicts`` (``control.verdicts``): the live verdict per
ModelDeployment, read-only JSON for deployment tools such as Argo Rollouts."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Enum, make_wsgi_app

from rollguard.api.modeldeployment import ModelDeploymentStatus
from rollguard.control import verdicts
from rollguard.control.telemetry import REGISTRY
from rollguard.kube.client import ApiError, Cluster

log = logging.getLogger("rollguard")

STATES = ("ready", "standby", "paused", "refused", "failed")
STATE = Enum(
    "rollguard_operator_state",
    "What the operator is doing: ready (evaluating), standby (another replica acts), paused "
    "(its watch streams are stopped for another reason; the log says which), refused (the API "
    "server refuses its decisions) or failed (a watch stream failed; the operator is stopping "
    "so that it restarts with fresh watches)",
    states=list(STATES),
    registry=REGISTRY,
)
STATE.state("ready")

REFUSED_FIX = (
    "run the operator as its ServiceAccount: in-cluster with kubectl apply -k deploy/, or out "
    "of the cluster with a kubeconfig for that account (README: Run it outside the cluster)"
)


def _is_peer_toggle(name: str) -> bool:
    """Kopf names the toggle that pauses a replica for a peer ``<peering>@<namespace>``."""
    return "@" in name and " " not in name


@dataclass
class Health:
    """Thread-safe: watch-stream pauses arrive on the event loop, refusals in worker threads."""

    identity: str = ""  # the username the API server knows the operator by
    _paused: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _refused: str | None = None
    _failed: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stream_paused(self, stream: str, blockers: Iterable[str]) -> None:
        with self._lock:
            self._paused[stream] = tuple(blockers)
            self._publish()

    def stream_resumed(self, stream: str) -> None:
        with self._lock:
            self._paused.pop(stream, None)
            self._publish()

    def decision_refused(self, message: str) -> bool:
        """Record that the API server refused a decision; True the first time since decisions
        were last accepted, when this says so, with the fix."""
        with self._lock:
            first = self._refused is None
            self._refused = message
            self._publish()
        if first:
            log.error(
                "The API server refused to create a RollbackDecision as %s: %s. Decisions "
                "cannot be made until this is fixed; fix: %s. (Said once; refusals go on "
                'counting in rollguard_errors_total{kind="refused"}.)',
                self.identity or "this identity",
                message,
                REFUSED_FIX,
            )
        return first

    def decision_created(self) -> None:
        with self._lock:
            if self._refused is not None:
                self._refused = None
                log.info("Decisions are accepted again")
                self._publish()

    def watch_failed(self, what: str) -> bool:
        """Record that a watch stream failed for good; True the first time."""
        with self._lock:
            first = self._failed is None
            if first:
                self._failed = what
                self._publish()
        return first

    @property
    def failed(self) -> str | None:
        """Which watch stream failed, if one did."""
        with self._lock:
            return self._failed

    def state(self) -> tuple[str, str]:
        """The state and, when not ready, why."""
        with self._lock:
            return self._state()

    def _state(self) -> tuple[str, str]:
        if self._failed is not None:
            return "failed", f"a watch stream failed: {self._failed}"
        if self._refused is not None:
            return "refused", f"the API server refuses decisions: {self._refused}"
        blockers = sorted({b for bs in self._paused.values() for b in bs})
        if any(not _is_peer_toggle(b) for b in blockers):
            return "paused", "watch streams paused (blockers: " + ", ".join(blockers) + ")"
        if self._paused:
            return "standby", "another replica with a higher priority acts"
        return "ready", ""

    def _publish(self) -> None:
        STATE.state(self._state()[0])


HEALTH = Health()


def parse_stream_line(message: str) -> tuple[str, str, tuple[str, ...]] | None:
    """Kopf's "Pausing/Resuming the watch-stream for R W (blockers: a, b)." as
    (verb, stream, blockers); None for any other line."""
    for verb, prefix in (
        ("pause", "Pausing the watch-stream for "),
        ("resume", "Resuming the watch-stream for "),
    ):
        if message.startswith(prefix):
            rest = message[len(prefix) :].rstrip(".")
            stream, _, tail = rest.partition(" (")
            blockers: tuple[str, ...] = ()
            if tail.startswith("blockers: "):
                blockers = tuple(
                    b.strip() for b in tail[len("blockers: ") :].rstrip(")").split(",")
                )
            return verb, stream, blockers
    return None


_FAILED = re.compile(r"^(Watcher|Peering observer) for (\S+) has failed: (.*)", re.S)


def parse_watch_failure(message: str) -> str | None:
    """Kopf's "Watcher for R@NS has failed: ERROR" (logged when a watch stream ends for good:
    an unexpected error, or an API error after its retries) as "R@NS: ERROR"; None for any
    other line. Kopf does not start that stream again."""
    found = _FAILED.match(message)
    if found is None:
        return None
    return f"{found.group(2)}: {found.group(3).splitlines()[0] if found.group(3) else ''}"


# -- the summary of what is watched -----------------------------------------------------------


@dataclass(frozen=True)
class PolicyView:
    """One policy's loop as it last ran."""

    valid: bool
    bound: tuple[tuple[str, str], ...]  # ModelDeployments
    targets: tuple[tuple[str, str], ...]  # Deployments


WATCHED: dict[tuple[str, str], PolicyView] = {}
"""Each policy's loop as it last ran (handlers.policies keeps it), for the summary."""


def summary(policies: Mapping[tuple[str, str], PolicyView], *, limit: int = 5) -> str:
    """One line: policies (ready and invalid), bound ModelDeployments and their targets."""
    invalid = sorted(k for k, v in policies.items() if not v.valid)
    bound = sorted({b for v in policies.values() for b in v.bound})
    targets = sorted({t for v in policies.values() for t in v.targets})

    def names(keys: list[tuple[str, str]]) -> str:
        shown = ", ".join(f"{ns}/{n}" for ns, n in keys[:limit])
        return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")

    text = f"Watching {len(policies)} RollbackPolicy(s) ({len(policies) - len(invalid)} ready"
    text += f", {len(invalid)} invalid: {names(invalid)})" if invalid else ")"
    text += f", {len(bound)} ModelDeployment(s) bound to them"
    text += f", targets: Deployment {names(targets)}" if targets else ""
    if not policies:
        text += "; create a RollbackPolicy and a ModelDeployment to guard a Deployment"
    return text


# -- /readyz, /metrics and /verdicts ----------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds; they are not worth a log line each."""


READ_METHODS = ("GET", "HEAD")
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


def _reply(
    start_response: Callable[..., Any],
    code: int,
    payload: Mapping[str, Any],
    *,
    head: bool,
    extra: tuple[tuple[str, str], ...] = (),
) -> list[bytes]:
    body = (json.dumps(payload, separators=(",", ":")) + "\n").encode()
    headers = [*_JSON, ("Content-Length", str(len(body))), *extra]
    start_response(f"{code} {_REASONS[code]}", headers)
    return [] if head else [body]


StatusReader = Callable[[str, str], ModelDeploymentStatus | None]
"""Reads a ModelDeployment's status from the API server (None: no such ModelDeployment)."""


def status_reader(cluster: Cluster) -> StatusReader:
    """What a standby answers verdicts from: the status the acting replica wrote."""

    def read(namespace: str, name: str) -> ModelDeploymentStatus | None:
        try:
            obj = cluster.get("ModelDeployment", namespace=namespace, name=name)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return ModelDeploymentStatus.model_validate(obj.get("status") or {})

    return read


def _verdicts_app(
    health: Health,
    store: verdicts.Verdicts,
    watched: Mapping[tuple[str, str], PolicyView],
    clock: Callable[[], float],
    reader: StatusReader | None,
) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        replica = verdicts.Replica(
            *health.state(),
            bound={policy: view.bound for policy, view in dict(watched).items()},
            records=store.snapshot(),
            now=clock(),
        )
        path = str(environ.get("PATH_INFO", ""))
        parts = [p for p in path.split("/") if p][1:]
        if replica.state == "standby" and reader is not None and len(parts) == 2:
            # Another replica evaluates; what it wrote is the verdict (one read per request).
            namespace, name = parts
            try:
                status = reader(namespace, name)
            except (ApiError, ValueError) as err:  # the API server, or a status it cannot parse
                error = f"this replica is on standby and could not read the verdict: {err}"
                code, payload = 503, {"error": error[:500], "state": replica.state}
            else:
                code, payload = verdicts.answer_from_status(
                    namespace, name, status, now=replica.now
                )
        else:
            code, payload = verdicts.answer(replica, path)
        head = environ.get("REQUEST_METHOD") == "HEAD"
        return _reply(start_response, code, payload, head=head)

    return app


def _app(
    health: Health,
    *,
    store: verdicts.Verdicts = verdicts.VERDICTS,
    watched: Mapping[tuple[str, str], PolicyView] = WATCHED,
    clock: Callable[[], float] = time.time,
    reader: StatusReader | None = None,
) -> Callable[..., Any]:
    metrics = make_wsgi_app(REGISTRY)
    verdict_app = _verdicts_app(health, store, watched, clock, reader)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO") or ""
        if environ.get("REQUEST_METHOD", "GET") not in READ_METHODS:
            # Everything here is read-only: nothing is ever written through this port.
            payload = {"error": "read-only: only GET and HEAD are answered"}
            allow = (("Allow", ", ".join(READ_METHODS)),)
            return _reply(start_response, 405, payload, head=False, extra=allow)
        if path == "/readyz":
            state, why = health.state()
            ok = state in ("ready", "standby")
            body = (f"{state}\n" if ok else f"{state}: {why}\n").encode()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
            return [body]
        if path == "/verdicts" or path.startswith("/verdicts/"):
            return verdict_app(environ, start_response)
        return metrics(environ, start_response)

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(port: int, health: Health = HEALTH, reader: StatusReader | None = None) -> None:
    """/metrics, /readyz and /verdicts on ``port`` (0: none of them), in a daemon thread;
    ``reader``: where a standby reads the verdicts the acting replica wrote."""
    if not port:
        return
    app = _app(health, reader=reader)
    server = make_server("", port, app, server_class=_ThreadingServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="rollguard-metrics", daemon=True).start()
