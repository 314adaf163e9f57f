"""The dashboard's HTTP server: the standard library's ThreadingHTTPServer, answering

- ``GET /``: the ModelDeployments the user may read;
- ``GET /decisions/NAMESPACE/NAME``: one RollbackDecision (the page notifications link to);
- ``POST /decisions/NAMESPACE/NAME``: approve or reject it, with a reason.

Every read and write goes through ``rollguard.commands`` with the user's own credentials, so
the API server's RBAC and admission policies decide what they may see and do. A POST must pass
the checks of ``rollguard.web.csrf``. Errors become a page naming the problem (a refusal: the
missing permission, HTTP 403), never a traceback. Started by ``rollguard dashboard``.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import ValidationError

from rollguard import commands
from rollguard.api.decision import ApprovalVerdict
from rollguard.core.audit import ChainReport
from rollguard.kube.client import Cluster
from rollguard.web.csrf import TOKEN_FIELD, Guard
from rollguard.web.decision_page import decision_page
from rollguard.web.pages import CSP, approved_page, error_page, forbidden_page, list_page

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
# A Kubernetes object name or namespace (DNS subdomain).
_NAME = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_DECISION = re.compile(rf"/decisions/({_NAME})/({_NAME})")
VERDICTS: dict[str, ApprovalVerdict] = {"Approve": "Approve", "Reject": "Reject"}


@dataclass(frozen=True)
class Dashboard:
    """What every request needs: the cluster as the user, the namespaces to fall back to when
    the user may not list all, the user's name and the CSRF guard."""

    cluster: Cluster
    namespaces: Sequence[str]
    user: str
    guard: Guard


@dataclass(frozen=True)
class Answer:
    """A response: status, HTML body, and whether it sets the CSRF cookie."""

    status: int
    body: str
    cookie: bool = False


class _RefusedError(Exception):
    """A request the dashboard refuses before doing anything (bad Host, Origin or token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _failure(dash: Dashboard, err: Exception) -> Answer:
    """The page for an error raised while answering."""
    if isinstance(err, commands.ForbiddenError):
        page = forbidden_page(
            message=str(err),
            verb=err.verb,
            resource=err.resource,
            namespace=err.namespace,
            user=dash.user,
        )
        return Answer(HTTPStatus.FORBIDDEN, page)
    if isinstance(err, _RefusedError):
        return Answer(err.status, error_page(err.status, str(err), user=dash.user))
    if isinstance(err, commands.NotFoundError):
        return Answer(HTTPStatus.NOT_FOUND, error_page(404, str(err), user=dash.user))
    if isinstance(err, commands.CommandError):
        return Answer(HTTPStatus.CONFLICT, error_page(409, str(err), user=dash.user))
    if isinstance(err, ValidationError):
        message = f"the object cannot be read: {err.errors()[0].get('msg', err)}"
        return Answer(HTTPStatus.BAD_GATEWAY, error_page(502, message, user=dash.user))
    log.error("Failed to answer a request: %s", err, exc_info=err)
    message = f"{type(err).__name__}: {err}".splitlines()[0]
    return Answer(HTTPStatus.INTERNAL_SERVER_ERROR, error_page(500, message, user=dash.user))


def _list(dash: Dashboard) -> Answer:
    listing = commands.list_model_deployments(cluster=dash.cluster, fallback=dash.namespaces)
    return Answer(
        HTTPStatus.OK, list_page(listing.items, namespaces=listing.namespaces, user=dash.user)
    )


def _decision(dash: Dashboard, namespace: str, name: str) -> Answer:
    obj = commands.get_decision(cluster=dash.cluster, namespace=namespace, name=name)
    mdep = ((obj.get("spec") or {}).get("modelDeploymentRef") or {}).get("name", "")
    chain: ChainReport | None = None
    chain_error = ""
    try:
        chain = commands.verify_chain(
            cluster=dash.cluster, namespace=namespace, model_deployment=mdep
        )
    except commands.CommandError as err:
        chain_error = str(err)
    page = decision_page(
        obj, chain=chain, chain_error=chain_error, csrf_token=dash.guard.token, user=dash.user
    )
    return Answer(HTTPStatus.OK, page, cookie=True)


def answer_get(dash: Dashboard, path: str) -> Answer:
    """The answer to a GET of ``path`` (already URL-decoded, without the query)."""
    if path == "/":
        return _list(dash)
    found = _DECISION.fullmatch(path)
    if found:
        return _decision(dash, found[1], found[2])
    return Answer(HTTPStatus.NOT_FOUND, error_page(404, f"no page at {path}", user=dash.user))


def answer_post(dash: Dashboard, path: str, headers: Any, form: dict[str, list[str]]) -> Answer:
    """The answer to a POST: checked for origin and token first, then an approval."""
    tokens = form.get(TOKEN_FIELD) or []
    refusal = dash.guard.origin_refusal(headers) or dash.guard.token_refusal(
        form_token=tokens[0] if tokens else None, cookie_header=headers.get("Cookie")
    )
    if refusal:
        log.warning("Refused a cross-site POST to %s: %s", path, refusal)
        raise _RefusedError(HTTPStatus.FORBIDDEN, f"refused as a cross-site request: {refusal}")
    found = _DECISION.fullmatch(path)
    if not found:
        raise _RefusedError(HTTPStatus.NOT_FOUND, f"no form at {path}")
    verdict = VERDICTS.get((form.get("verdict") or [""])[0])
    reason = (form.get("reason") or [""])[0].strip()
    if verdict is None:
        raise _RefusedError(HTTPStatus.BAD_REQUEST, "verdict: must be Approve or Reject")
    if not reason:
        raise _RefusedError(
            HTTPStatus.BAD_REQUEST, "reason: say why (it is recorded in the decision)"
        )
    namespace, name = found[1], found[2]
    user = commands.set_approval(
        cluster=dash.cluster, namespace=namespace, name=name, verdict=verdict, reason=reason
    )
    log.info(
        "%s RollbackDecision %s/%s as %s",
        "Approved" if verdict == "Approve" else "Rejected",
        namespace,
        name,
        user,
    )
    return Answer(
        HTTPStatus.OK, approved_page(namespace=namespace, name=name, verdict=verdict, user=user)
    )


class Handler(BaseHTTPRequestHandler):
    """One request; the server's ``dashboard`` holds what it needs."""

    server: DashboardServer
    server_version = "rollguard-dashboard"
    sys_version = ""
    timeout = 30  # seconds a client may stall (headers, a promised body) before it is dropped

    def _send(self, answer: Answer) -> None:
        data = answer.body.encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        if answer.cookie:
            self.send_header("Set-Cookie", self.server.dashboard.guard.cookie())
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer(self, post: bool) -> None:
        dash = self.server.dashboard
        try:
            host_refusal = dash.guard.host_refusal(self.headers.get("Host"))
            if host_refusal:
                raise _RefusedError(HTTPStatus.MISDIRECTED_REQUEST, host_refusal)
            path = unquote(urlsplit(self.path).path)
            if post:
                answer = answer_post(dash, path, self.headers, self._form())
            elif path == "/favicon.ico":
                answer = Answer(HTTPStatus.NOT_FOUND, "")
            else:
                answer = answer_get(dash, path)
        except Exception as err:  # noqa: BLE001 - every error becomes a page, never a traceback
            answer = _failure(dash, err)
        self._send(answer)

    def _form(self) -> dict[str, list[str]]:
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind != "application/x-www-form-urlencoded":
            raise _RefusedError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"a form is expected, not {kind or 'nothing'}"
            )
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM_BYTES:
            raise _RefusedError(
                HTTPStatus.BAD_REQUEST, f"Content-Length: must be 0 to {MAX_FORM_BYTES}"
            )
        try:
            return parse_qs(self.rfile.read(length).decode("utf-8", "replace"), max_num_fields=16)
        except ValueError:
            raise _RefusedError(HTTPStatus.BAD_REQUEST, "the form has too many fields") from None

    def do_GET(self) -> None:
        self._answer(post=False)

    def do_HEAD(self) -> None:
        self._answer(post=False)

    def do_POST(self) -> None:
        self._answer(post=True)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("Answered %s: %s", self.address_string(), format % args)


class DashboardServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that carries the dashboard."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], dashboard_of: Any) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.dashboard: Dashboard = dashboard_of(self.server_address[1])


def serve(
    *, address: str, port: int, cluster: Cluster, namespaces: Sequence[str], user: str
) -> DashboardServer:
    """A server bound to ``address``:``port`` (0: any free port), not yet serving; call its
    ``serve_forever``. Its CSRF guard knows the port it got."""
    return DashboardServer(
        (address, port),
        lambda bound: Dashboard(
            cluster=cluster, namespaces=list(namespaces), user=user, guard=Guard(port=bound)
        ),
    )
