"""The dashboard's server over real loopback HTTP with a stand-in cluster: pages, approvals as
the caller, cross-site POSTs refused, refusals of the API server as a 403 page naming the
missing permission, and every error a page without a traceback."""

from __future__ import annotations

import copy
import http.client
import json
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from recorded_decision import recorded

from rollguard import commands
from rollguard.core.audit import GENESIS, link_hash
from rollguard.kube.client import ApiError
from rollguard.web.server import DashboardServer, serve

RBAC_PATCH = (
    'rollbackdecisions.rollguard.dev "fraud-1" is forbidden: User "victor" cannot patch '
    'resource "rollbackdecisions" in API group "rollguard.dev" in the namespace "ml"'
)
RBAC_LIST_ALL = (
    'modeldeployments.rollguard.dev is forbidden: User "victor" cannot list resource '
    '"modeldeployments" in API group "rollguard.dev" at the cluster scope'
)


def _forbidden(message: str) -> ApiError:
    return ApiError(status=403, reason="Forbidden", body=json.dumps({"message": message}))


class FakeCluster:
    """RollbackDecision ml/fraud-1 (pending) and ModelDeployment ml/fraud; ``refuse`` maps an
    operation name (get, list-all, list, patch) to the API server's refusal message."""

    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        self.refuse = refuse or {}
        spec = recorded()
        sealed = link_hash(previous_hash=GENESIS, sequence=1, name="fraud-1", spec=spec)
        self.decision = {
            "metadata": {"namespace": "ml", "name": "fraud-1", "resourceVersion": "5"},
            "spec": spec.wire(),
            "status": {
                "phase": "PendingApproval",
                "audit": {"sequence": 1, "hash": sealed, "previousHash": GENESIS},
            },
        }
        self.mdep = {
            "metadata": {"namespace": "ml", "name": "fraud"},
            "spec": {"deploymentRef": {"name": "fraud"}},
            "status": {"phase": "AwaitingApproval", "lastDecision": "fraud-1"},
        }
        self.patches: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []  # more decisions in the namespace

    def _check(self, op: str) -> None:
        if op in self.refuse:
            raise _forbidden(self.refuse[op])

    def whoami(self) -> tuple[str, list[str]]:
        return "alice", []

    def get(self, kind: str, *, namespace: str, name: str) -> dict[str, Any]:
        self._check("get")
        obj = self.decision if kind == "RollbackDecision" else self.mdep
        if namespace != "ml" or name != obj["metadata"]["name"]:
            raise ApiError(status=404, reason="Not Found", body='{"message": "not found"}')
        return copy.deepcopy(obj)

    def list_objects(self, kind: str, *, namespace: str | None = None) -> list[dict[str, Any]]:
        self._check("list-all" if namespace is None else "list")
        objs = [self.decision, *self.others] if kind == "RollbackDecision" else [self.mdep]
        return [copy.deepcopy(o) for o in objs if namespace in (None, "ml")]

    def patch(self, kind: str, *, namespace: str, name: str, body: dict[str, Any]) -> None:
        self._check("patch")
        self.patches.append(body)


class Client:
    """A browser stand-in: keeps the dashboard's cookie, sends the Host it was given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""

    def request(
        self, method: str, path: str, *, body: str = "", headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookie:
            sent.setdefault("Cookie", self.cookie)
        if method == "POST":
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body.encode(), headers=sent)
        answer = conn.getresponse()
        cookie = answer.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        assert "script-src" not in (answer.getheader("Content-Security-Policy") or "")
        assert "default-src 'none'" in (answer.getheader("Content-Security-Policy") or "")
        text = answer.read().decode()
        conn.close()
        return answer.status, text


def _start(cluster: FakeCluster, namespaces: list[str]) -> Iterator[tuple[Client, FakeCluster]]:
    server: DashboardServer = serve(
        address="127.0.0.1",
        port=0,
        cluster=cluster,
        namespaces=namespaces,
        user="alice",  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Client(server.server_address[1]), cluster
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dashboard() -> Iterator[tuple[Client, FakeCluster]]:
    yield from _start(FakeCluster(), ["ml"])


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found[1]


def _approve(client: Client, token: str, **headers: str) -> tuple[int, str]:
    form = urlencode({"csrf_token": token, "verdict": "Approve", "reason": "error spike"})
    return client.request("POST", "/decisions/ml/fraud-1", body=form, headers=headers)


def test_the_list_and_the_decision_page_are_served(dashboard: tuple[Client, FakeCluster]) -> None:
    client, _ = dashboard
    status, page = client.request("GET", "/")
    assert status == 200 and '<a href="/decisions/ml/fraud-1">fraud-1</a>' in page
    status, page = client.request("GET", "/decisions/ml/fraud-1")
    assert status == 200 and "<svg" in page and "verifies" in page
    assert client.cookie.startswith("rollguard_csrf_")


def test_an_unreadable_decision_is_a_problem_of_its_own_chain_not_a_broken_page(
    dashboard: tuple[Client, FakeCluster],
) -> None:
    """One decision a newer operator wrote (a field this one does not know) in the namespace:
    the other decisions' pages still show, and its own chain names it."""
    client, cluster = dashboard
    newer = copy.deepcopy(cluster.decision)
    newer["metadata"]["name"] = "fraud-2"
    newer["spec"]["fromTheFuture"] = True
    other = copy.deepcopy(newer)
    other["metadata"]["name"] = "other-1"
    other["spec"]["modelDeploymentRef"] = {"name": "other"}
    cluster.others = [other]
    status, page = client.request("GET", "/decisions/ml/fraud-1")
    assert status == 200 and "verifies" in page  # another model's chain does not matter here
    cluster.others = [newer]
    status, page = client.request("GET", "/decisions/ml/fraud-1")
    assert status == 200
    assert "fraud-2: its evidence cannot be read (fromTheFuture: unknown field)" in page


def test_approving_writes_the_approval_as_the_caller(dashboard: tuple[Client, FakeCluster]) -> None:
    client, cluster = dashboard
    _, page = client.request("GET", "/decisions/ml/fraud-1")
    origin = f"http://127.0.0.1:{client.port}"
    status, page = _approve(client, _token(page), Origin=origin)
    assert status == 200 and "Approved as alice" in page
    (patch,) = cluster.patches
    assert patch["spec"]["approval"] == {
        "decision": "Approve",
        "by": "alice",
        "reason": "error spike",
    }


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("other origin", "Origin http://127.0.0.1:1 is not"),
        ("other referer", "Referer http://evil.example is not"),
        ("no token", "the form has no csrf_token"),
        ("no cookie", "no rollguard_csrf_"),
        ("wrong token", "does not match"),
    ],
)
def test_cross_site_posts_are_refused_and_write_nothing(
    dashboard: tuple[Client, FakeCluster], case: str, expected: str
) -> None:
    client, cluster = dashboard
    _, page = client.request("GET", "/decisions/ml/fraud-1")
    token = _token(page)
    if case == "other origin":
        status, page = _approve(client, token, Origin="http://127.0.0.1:1")
    elif case == "other referer":
        status, page = _approve(client, token, Referer="http://evil.example/page")
    elif case == "no token":
        status, page = _approve(client, "")
    elif case == "no cookie":
        client.cookie = ""
        status, page = _approve(client, token, Cookie="")
    else:
        status, page = _approve(client, "x" * len(token))
    assert status == 403 and expected in page
    assert cluster.patches == []


def test_a_foreign_host_is_refused(dashboard: tuple[Client, FakeCluster]) -> None:
    client, _ = dashboard
    status, page = client.request("GET", "/", headers={"Host": f"rebound.example:{client.port}"})
    assert status == 421 and "is not this dashboard" in page


def test_an_approval_needs_a_reason(dashboard: tuple[Client, FakeCluster]) -> None:
    client, cluster = dashboard
    _, page = client.request("GET", "/decisions/ml/fraud-1")
    form = urlencode({"csrf_token": _token(page), "verdict": "Approve", "reason": "  "})
    status, page = client.request("POST", "/decisions/ml/fraud-1", body=form)
    assert status == 400 and "reason: say why" in page and cluster.patches == []


def test_a_refused_patch_is_a_403_page_naming_the_missing_permission() -> None:
    for client, _ in _start(FakeCluster({"patch": RBAC_PATCH}), ["ml"]):
        _, page = client.request("GET", "/decisions/ml/fraud-1")
        status, page = _approve(client, _token(page))
        assert status == 403
        assert (
            "Missing permission: <strong>patch</strong> <strong>rollbackdecisions.rollguard.dev"
            in page
        )
        assert "in namespace ml" in page and "Traceback" not in page


def test_without_the_right_to_list_all_the_list_falls_back_to_the_given_namespaces() -> None:
    for client, _ in _start(FakeCluster({"list-all": RBAC_LIST_ALL}), ["ml"]):
        status, page = client.request("GET", "/")
        assert status == 200 and "You may not list ModelDeployments in all namespaces" in page
    for client, _ in _start(FakeCluster({"list-all": RBAC_LIST_ALL}), []):
        status, page = client.request("GET", "/")
        assert (
            status == 403 and "<strong>list</strong> <strong>modeldeployments.rollguard.dev" in page
        )
        assert "cluster-wide" in page


def test_errors_are_pages_without_a_traceback(
    dashboard: tuple[Client, FakeCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = dashboard
    status, page = client.request("GET", "/decisions/ml/missing")
    assert status == 404 and "not found" in page
    status, page = client.request("GET", "/nowhere")
    assert status == 404
    status, page = client.request("GET", "/decisions/ml/fraud-1/../../etc")
    assert status == 404

    def boom(**_: Any) -> Any:
        raise RuntimeError("something unexpected\nsecond line")

    monkeypatch.setattr(commands, "get_decision", boom)
    status, page = client.request("GET", "/decisions/ml/fraud-1")
    assert status == 500 and "RuntimeError: something unexpected" in page
    assert "Traceback" not in page and "second line" not in page
