"""Notifications through the operator's real control code (the cycle and the lifecycle over the
in-memory API server): the messages a decision's transitions raise are recorded as Pending in
the same write, delivered off the decision's path, retried, given up, recorded, never holding a
secret, and never changing what the decision does."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import reason_scenarios as s
from fake_cluster import NAMESPACE, POLICY, FakeCluster
from operator_harness import OperatorRun, run_operator

from rollguard.control.notifications import DeliveryError, Notifier, unsettled
from rollguard.control.receivers import ReceiversSource, Request
from rollguard.control.steps import Memory
from rollguard.core import notices
from rollguard.kube.client import Cluster

SECRET = "T000-B000-s3cr3t"
RECEIVERS = f"""
dashboardURL: http://127.0.0.1:8765
receivers:
  - name: hook
    webhook: {{url: "http://127.0.0.1:9/hook", headers: {{Authorization: "Bearer {SECRET}"}}}}
  - name: chat
    slack: {{url: "http://127.0.0.1:9/services/{SECRET}"}}
  - name: alerts
    alertmanager: {{url: "http://127.0.0.1:9"}}
"""
EVERYTHING = list(notices.NOTIFY_ON)


class Sink:
    """Receivers that take (or refuse) what the notifier posts."""

    def __init__(self, fail: int = 0) -> None:
        self.requests: list[Request] = []
        self.fail = fail  # attempts refused before one is taken

    def __call__(self, request: Request, timeout: float) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise DeliveryError("receiver answered HTTP 503")
        self.requests.append(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.body) for r in self.requests]


def _policy(notify: list[dict[str, Any]], spec: Mapping[str, Any]) -> Callable[..., None]:
    def add(now: float, fake: FakeCluster) -> None:
        if ("RollbackPolicy", NAMESPACE, POLICY) not in fake.objects:
            body = {"metadata": {"namespace": NAMESPACE, "name": POLICY}}
            fake.add_object("RollbackPolicy", {**body, "spec": {**spec, "notify": notify}})

    return add


def _run(
    tmp_path: Path,
    notify: list[dict[str, Any]] | None,
    sink: Sink,
    *,
    by: str | None = "alice",
    receivers: str = RECEIVERS,
) -> tuple[OperatorRun, list[Notifier]]:
    path = tmp_path / "receivers.yaml"
    path.write_text(receivers)
    made: list[Notifier] = []

    def factory(cluster: Cluster, memory: Memory) -> Notifier:
        fake: FakeCluster = cluster  # type: ignore[assignment]  # the harness passes its fake
        n = Notifier(
            cluster=cluster,
            receivers=ReceiversSource(str(path)),
            serialised=memory.serialised,
            send=sink,
            clock=lambda: fake.now,
        )
        made.append(n)
        return n

    spec = s.needs_approval()
    acts = [_policy(notify or [], spec)] if notify is not None else []
    if by is not None:
        acts.append(s.at(s.ANSWERED, s.answer(by, "Approve")))

    def act(now: float, fake: FakeCluster) -> None:
        for a in acts:
            a(now, fake)

    run = run_operator(
        spec,
        s.series((s.BAD, 17)),
        eval_times=s.times(s.DECIDED, 240),
        act=act,
        notifier=factory if notify is not None else None,
    )
    return run, made


def _deliver_all(notifier: Notifier, run: OperatorRun) -> None:
    for obj in run.cluster.list_objects("RollbackDecision", namespace=NAMESPACE):
        for n in obj["status"].get("notifications", []):
            if n["state"] == "Pending":
                notifier.deliver(NAMESPACE, obj["metadata"]["name"], n["receiver"], n["transition"])


def _entries(run: OperatorRun) -> list[dict[str, Any]]:
    [obj] = run.cluster.list_objects("RollbackDecision", namespace=NAMESPACE)
    return list(obj["status"].get("notifications", []))


def test_each_transition_raises_its_messages_as_pending_in_its_own_write(tmp_path: Path) -> None:
    run, _ = _run(tmp_path, [{"on": EVERYTHING, "receiver": "hook"}], Sink())
    raised = [(n["transition"], n["state"], n["attempts"]) for n in _entries(run)]
    # Approved by alice, executed (rollback applied), then validation goes on: one message
    # per transition, the most specific name each time.
    assert raised == [
        ("PendingApproval", "Pending", 0),
        ("Approved", "Pending", 0),
        ("Executed", "Pending", 0),
    ]


def test_messages_change_nothing_the_decision_does(tmp_path: Path) -> None:
    quiet, _ = _run(tmp_path, None, Sink())
    told, _ = _run(tmp_path, [{"on": EVERYTHING, "receiver": "hook"}], Sink(fail=1000))
    assert [e["reason"] for e in told.events] == [e["reason"] for e in quiet.events]
    assert told.deployment_patches == quiet.deployment_patches
    assert [d.phase for d in told.decisions] == [d.phase for d in quiet.decisions]


def test_a_pending_decision_reaches_every_kind_of_receiver_with_the_approve_command(
    tmp_path: Path,
) -> None:
    sink = Sink()
    notify = [{"on": ["PendingApproval"], "receiver": r} for r in ("hook", "chat", "alerts")]
    run, [notifier] = _run(tmp_path, notify, sink, by=None)
    _deliver_all(notifier, run)
    name = run.stored_decisions[0]["metadata"]["name"]
    approve = f"rollguard approve {name} -n {NAMESPACE} --reason '...'"
    hook, chat, alerts = sink.bodies()
    assert hook["event"] == "PendingApproval"
    assert hook["commands"]["approve"] == approve
    assert hook["decision"] == {"namespace": NAMESPACE, "name": name, "phase": "PendingApproval"}
    assert hook["link"] == f"http://127.0.0.1:8765/decisions/{NAMESPACE}/{name}"
    assert approve in chat["text"]
    assert chat["blocks"][0]["text"]["text"].startswith("Approval needed:")
    [alert] = alerts
    assert alert["labels"]["alertname"] == "RollguardDecision"
    assert alert["labels"]["decision"] == name
    assert alert["annotations"]["approve"] == approve
    assert sink.requests[2].url == "http://127.0.0.1:9/api/v2/alerts"
    assert alert["endsAt"] > alert["startsAt"]  # until the approval deadline
    assert [n["state"] for n in _entries(run)] == ["Delivered"] * 3
    assert all(r.headers["X-Rollguard-Key"].endswith(f"/PendingApproval/{n}") for r, n in
               zip(sink.requests, ("hook", "chat", "alerts"), strict=True))  # fmt: skip


def test_a_refused_message_is_retried_with_backoff_then_given_up_without_its_secret(
    tmp_path: Path,
) -> None:
    sink = Sink(fail=10_000)
    run, [notifier] = _run(tmp_path, [{"on": ["PendingApproval"], "receiver": "chat"}], sink)
    name = run.stored_decisions[0]["metadata"]["name"]
    waits = []
    for _ in range(notices.MAX_ATTEMPTS):
        again = notifier.deliver(NAMESPACE, name, "chat", "PendingApproval")
        waits.append(None if again is None else again - run.cluster.now)
    assert waits[:4] == [2.0, 4.0, 8.0, 16.0]
    assert waits[-1] is None
    [entry] = _entries(run)
    assert entry["state"] == "Failed"
    assert entry["attempts"] == notices.MAX_ATTEMPTS
    assert entry["reason"] == "receiver answered HTTP 503"
    stored = json.dumps(run.cluster.objects.get(("RollbackDecision", NAMESPACE, name)))
    assert SECRET not in stored
    assert SECRET not in json.dumps(run.cluster.events)


def test_a_message_to_a_receiver_the_file_does_not_define_fails_at_once(tmp_path: Path) -> None:
    run, [notifier] = _run(tmp_path, [{"on": ["PendingApproval"], "receiver": "nobody"}], Sink())
    _deliver_all(notifier, run)
    [entry] = _entries(run)
    assert (entry["state"], entry["attempts"]) == ("Failed", 1)
    assert entry["reason"] == "no receiver named nobody in the receivers file"


def test_a_restarted_operator_delivers_what_was_left_pending_once(tmp_path: Path) -> None:
    sink = Sink()
    run, _ = _run(tmp_path, [{"on": ["PendingApproval", "Approved"], "receiver": "hook"}], sink)
    (path,) = tmp_path.glob("receivers.yaml")
    memory = Memory()
    again = Notifier(
        cluster=run.cluster,  # type: ignore[arg-type]  # the fake API server
        receivers=ReceiversSource(str(path)),
        serialised=memory.serialised,
        send=sink,
        clock=lambda: run.cluster.now,
    )
    [obj] = run.cluster.list_objects("RollbackDecision", namespace=NAMESPACE)
    assert unsettled(obj["status"])
    again.resume(obj)
    again.resume(obj)  # the daemon's next poll: nothing queued twice
    again.start(workers=1)
    try:
        assert again.drain(timeout=10)
    finally:
        again.stop()
    assert [b["event"] for b in sink.bodies()] == ["PendingApproval", "Approved"]
    [obj] = run.cluster.list_objects("RollbackDecision", namespace=NAMESPACE)
    assert not unsettled(obj["status"])


@pytest.mark.parametrize(
    ("receivers", "why"),
    [
        ("receivers: [", "not YAML at line"),
        (
            "receivers:\n  - name: hook\n    webhook: {url: 'ftp://x'}\n",
            "receivers[0].webhook.url: must be an http(s) URL",
        ),
    ],
)
def test_a_broken_receivers_file_keeps_the_decision_moving(
    tmp_path: Path, receivers: str, why: str
) -> None:
    run, [notifier] = _run(
        tmp_path, [{"on": ["PendingApproval"], "receiver": "hook"}], Sink(), receivers=receivers
    )
    _deliver_all(notifier, run)
    [entry] = _entries(run)
    assert entry["state"] == "Failed"
    assert why in (notifier.receivers.error or "")
    assert run.decisions[0].phase == "Validating"
