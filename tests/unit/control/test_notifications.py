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

from rollguard.control.notifications import Notifier, unsettled
from rollguard.control.posting import DeliveryError
from rollguard.control.receivers import ReceiversSource, Request
from rollguard.control.steps import Memory
from rollguard.core import notices
from rollguard.kube.client import ApiError, Cluster

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
    deliver: bool = False,
) -> tuple[OperatorRun, list[Notifier]]:
    """The approval scenario (alice approves at ANSWERED unless ``by`` is None) with the
    notify list ``notify`` (None: no notifier at all); ``deliver``: every pending message is
    attempted at each evaluation time, as the workers would."""
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
        if deliver and made:
            _deliver_all(made[0], fake)

    run = run_operator(
        spec,
        s.series((s.BAD, 17)),
        eval_times=s.times(s.DECIDED, 240),
        act=act,
        notifier=factory if notify is not None else None,
    )
    return run, made


def _deliver_all(notifier: Notifier, fake: FakeCluster) -> None:
    for obj in fake.list_objects("RollbackDecision", namespace=NAMESPACE):
        for n in obj["status"].get("notifications", []):
            if n["state"] == "Pending":
                notifier.deliver(NAMESPACE, obj["metadata"]["name"], n["receiver"], n["transition"])


def _entries(run: OperatorRun) -> list[dict[str, Any]]:
    [obj] = run.cluster.list_objects("RollbackDecision", namespace=NAMESPACE)
    return list(obj["status"].get("notifications", []))


def test_each_transition_raises_its_messages_as_pending_in_its_own_write(tmp_path: Path) -> None:
    run, _ = _run(tmp_path, [{"transitions": EVERYTHING, "receiver": "hook"}], Sink())
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
    refusing = Sink(fail=1000)
    told, _ = _run(
        tmp_path, [{"transitions": EVERYTHING, "receiver": "hook"}], refusing, deliver=True
    )
    assert refusing.fail < 1000  # the receiver was tried, and refused, all along
    assert [e["reason"] for e in told.events] == [e["reason"] for e in quiet.events]
    assert told.deployment_patches == quiet.deployment_patches
    assert [d.phase for d in told.decisions] == [d.phase for d in quiet.decisions]


def test_a_pending_decision_reaches_every_kind_of_receiver_with_the_approve_command(
    tmp_path: Path,
) -> None:
    sink = Sink()
    notify = [
        {"transitions": ["PendingApproval"], "receiver": r} for r in ("hook", "chat", "alerts")
    ]
    run, _ = _run(tmp_path, notify, sink, by=None, deliver=True)
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
    run, [notifier] = _run(
        tmp_path, [{"transitions": ["PendingApproval"], "receiver": "chat"}], sink
    )
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
    run, [notifier] = _run(
        tmp_path, [{"transitions": ["PendingApproval"], "receiver": "nobody"}], Sink()
    )
    _deliver_all(notifier, run.cluster)
    [entry] = _entries(run)
    assert (entry["state"], entry["attempts"]) == ("Failed", 1)
    assert entry["reason"] == "no receiver named nobody in the receivers file"


def test_a_restarted_operator_delivers_what_was_left_pending_once(tmp_path: Path) -> None:
    sink = Sink()
    run, _ = _run(
        tmp_path, [{"transitions": ["PendingApproval", "Approved"], "receiver": "hook"}], sink
    )
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


def test_a_missing_or_broken_receivers_file_keeps_messages_pending_and_decisions_moving(
    tmp_path: Path,
) -> None:
    for text in ("receivers: [", "receivers:\n  - name: hook\n    webhook: {url: 'ftp://x'}\n"):
        run, [notifier] = _run(
            tmp_path,
            [{"transitions": ["PendingApproval"], "receiver": "hook"}],
            Sink(),
            receivers=text,
        )
        _deliver_all(notifier, run.cluster)
        [entry] = _entries(run)
        assert (entry["state"], entry["attempts"]) == ("Pending", 1)  # the Secret may be fixed
        assert entry["reason"] == "receivers file missing or invalid (see the operator's log)"
        assert run.decisions[0].phase == "Validating"


def test_a_message_another_writer_settled_meanwhile_is_left_as_it_is(tmp_path: Path) -> None:
    sink = Sink()
    run, [notifier] = _run(
        tmp_path, [{"transitions": ["PendingApproval"], "receiver": "hook"}], sink
    )
    [obj] = run.cluster.list_objects("RollbackDecision", namespace=NAMESPACE)
    name = obj["metadata"]["name"]
    settled = [{**n, "state": "Delivered", "attempts": 1} for n in obj["status"]["notifications"]]

    def other_replica_first(request: Request, timeout: float) -> None:
        sink(request, timeout)
        run.cluster.patch_status(
            "RollbackDecision", namespace=NAMESPACE, name=name, status={"notifications": settled}
        )

    notifier.delivery.send = other_replica_first
    assert notifier.deliver(NAMESPACE, name, "hook", "PendingApproval") is None
    [entry] = _entries(run)
    assert (entry["state"], entry["attempts"]) == ("Delivered", 1)  # not written twice


def test_a_message_taken_but_not_recorded_is_recorded_without_posting_again(
    tmp_path: Path,
) -> None:
    sink = Sink()
    run, [notifier] = _run(
        tmp_path, [{"transitions": ["PendingApproval"], "receiver": "hook"}], sink
    )
    name = run.stored_decisions[0]["metadata"]["name"]
    real = run.cluster.patch_status

    def down(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ApiError(status=503, reason="Service Unavailable")

    run.cluster.patch_status = down  # type: ignore[method-assign]
    with pytest.raises(ApiError):
        notifier.deliver(NAMESPACE, name, "hook", "PendingApproval")
    run.cluster.patch_status = real  # type: ignore[method-assign]
    assert notifier.deliver(NAMESPACE, name, "hook", "PendingApproval") is None
    assert len(sink.requests) == 1
    assert _entries(run)[0]["state"] == "Delivered"


def test_messages_the_lifecycle_stops_handing_over_lapse(tmp_path: Path) -> None:
    """A replica that stopped acting (its decision daemons paused) leaves its messages to
    the one that acts."""
    run, _ = _run(tmp_path, [{"transitions": ["PendingApproval"], "receiver": "hook"}], Sink())
    clock = [run.cluster.now]
    sink = Sink()
    n = Notifier(
        cluster=run.cluster,  # type: ignore[arg-type]  # the fake API server
        receivers=ReceiversSource(None),
        serialised=Memory().serialised,
        send=sink,
        clock=lambda: clock[0],
        lapse=30,
    )
    [obj] = run.cluster.list_objects("RollbackDecision", namespace=NAMESPACE)
    n.resume(obj)
    clock[0] += 31
    n.start(workers=1)
    try:
        assert n.drain(timeout=5)
    finally:
        n.stop()
    assert sink.requests == []
    assert _entries(run)[0]["state"] == "Pending"


def test_an_execution_that_found_its_target_live_is_told_as_executed(tmp_path: Path) -> None:
    """After a crash between the rollback patch and its record, the retry finds the target
    serving (AlreadyAtTarget): the workload was changed all the same."""
    from rollguard.control import reasons  # noqa: PLC0415
    from rollguard.control.steps import Transition  # noqa: PLC0415
    from rollguard.core import notices as n  # noqa: PLC0415

    already = Transition(
        "Validating", reasons.ALREADY_AT_TARGET, "already", status={"execution": {"patched": True}}
    )
    patched = bool((already.status.get("execution") or {}).get("patched"))
    assert n.raised(
        already.phase, changed_workload=patched, validation_failed=False, escalates=False
    ) == ("Executed",)
