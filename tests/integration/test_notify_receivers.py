"""Notifications from the real operator to real receivers on loopback: a pending decision
reaches a JSON webhook, a Slack-format webhook and a real Alertmanager with the approve
command in it, while a receiver that keeps failing delays nothing; the approval and the
rollback that follow are told too, each delivery is recorded on the decision, and the
receivers' token appears in no log line, Event or status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_fixtures import (
    OperatorProcess,
    Scenario,
    final_decision,
    grant,
    needs_approval,
    wait_for,
)

from devenv.launcher import EnvInfo
from devenv.receivers import Alertmanager, Sink, alertmanager_binary
from devenv.testing import Kubectl
from rollguard.cli import main as rollguard_main

pytestmark = pytest.mark.integration
TOKEN = "s3cr3t-T0KEN-4711"


@pytest.fixture
def receivers(operator: OperatorProcess, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Webhook and Slack sinks, a receiver that always answers 503, and Alertmanager; the
    session operator's receivers file names them while the test runs."""
    if alertmanager_binary() is None:
        pytest.fail("Alertmanager is not installed: run tools/install-deps.sh")
    hook, chat, broken = Sink().start(), Sink().start(), Sink(status=503).start()
    alerts = Alertmanager(tmp_path / "alertmanager").start()
    assert operator.receivers is not None
    config = {
        "dashboardURL": "http://127.0.0.1:8765",
        "receivers": [
            {"name": "hook", "webhook": {"url": f"{hook.url}/rollguard",
                                         "headers": {"Authorization": f"Bearer {TOKEN}"}}},
            {"name": "chat", "slack": {"url": f"{chat.url}/services/{TOKEN}"}},
            {"name": "broken", "webhook": {"url": f"{broken.url}/{TOKEN}"}},
            {"name": "alerts", "alertmanager": {"url": alerts.url}},
        ],
    }  # fmt: skip
    operator.receivers.write_text(yaml.safe_dump(config))
    try:
        yield {"hook": hook, "chat": chat, "broken": broken, "alerts": alerts}
    finally:
        operator.receivers.unlink(missing_ok=True)
        for sink in (hook, chat, broken):
            sink.stop()
        alerts.stop()


def _notifications(scenario: Scenario, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    status = scenario.get("rollbackdecisions", name).get("status") or {}
    return {(n["receiver"], n["transition"]): n for n in status.get("notifications") or []}


def test_a_pending_decision_reaches_every_receiver_and_a_failing_one_delays_nothing(
    operator: OperatorProcess,
    scenario: Scenario,
    kubectl: Kubectl,
    env: EnvInfo,
    receivers: dict[str, Any],
) -> None:
    grant(kubectl, scenario.ns, "rollguard-approver", user="alice")
    pending = ["PendingApproval"]
    policy = needs_approval()
    policy["notify"] = [
        {"transitions": pending, "receiver": "chat"},
        {"transitions": [*pending, "Approved", "Rejected", "Expired"], "receiver": "alerts"},
        {"transitions": pending, "receiver": "broken"},
        {"transitions": [*pending, "Approved", "Executed", "Succeeded"], "receiver": "hook"},
    ]
    scenario.setup(policy=policy)
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    [decision] = wait_for("a decision", scenario.decisions, timeout=60, operator=operator)
    name = decision["metadata"]["name"]
    approve = f"rollguard approve {name} -n {scenario.ns} --reason '...'"

    hook, chat, alerts = receivers["hook"], receivers["chat"], receivers["alerts"]
    wait_for("the webhook's message", lambda: hook.posted, timeout=30, operator=operator)
    wait_for("the Slack message", lambda: chat.posted, timeout=30, operator=operator)
    [alert] = wait_for(
        "the alert in Alertmanager",
        lambda: [a for a in alerts.alerts() if a["labels"].get("decision") == name],
        timeout=30,
        operator=operator,
    )
    [posted] = hook.posted
    assert posted.body["event"] == "PendingApproval"
    assert posted.body["commands"]["approve"] == approve
    assert posted.body["link"] == f"http://127.0.0.1:8765/decisions/{scenario.ns}/{name}"
    assert posted.headers["Authorization"] == f"Bearer {TOKEN}"
    assert posted.headers["X-Rollguard-Key"].endswith("/PendingApproval/hook")
    assert posted.body["signals"][0]["name"] == "error_rate"
    assert approve in chat.posted[0].body["text"]
    assert alert["annotations"]["approve"] == approve
    assert alert["labels"]["alertname"] == "RollguardDecision"
    assert alert["status"]["state"] == "active"

    told = wait_for(
        "deliveries recorded",
        lambda: (
            (n := _notifications(scenario, name))
            and all(
                n[(r, "PendingApproval")]["state"] == "Delivered"
                for r in ("hook", "chat", "alerts")
            )
            and n
        ),
        timeout=30,
        operator=operator,
    )
    broken = wait_for(
        "the broken receiver retried",
        lambda: (b := _notifications(scenario, name)[("broken", "PendingApproval")])["attempts"]
        >= 2 and b,
        timeout=30,
        operator=operator,
    )  # fmt: skip
    assert broken["state"] == "Pending"
    assert broken["reason"] == "receiver answered HTTP 503"
    delays = {
        r: _seconds(told[(r, "PendingApproval")]["deliveredAt"])
        - _seconds(told[(r, "PendingApproval")]["raisedAt"])
        for r in ("hook", "chat", "alerts")
    }
    print(f"Seconds from the transition to delivery: {delays}")

    # The approval and the rollback go on while the broken receiver is still being retried.
    argv = ["approve", name, "-n", scenario.ns, "--reason", "confirmed",
            f"--kubeconfig={env.kubeconfig}", "--context=alice"]  # fmt: skip
    assert rollguard_main(argv) == 0
    final = final_decision(scenario, name, operator)
    assert final["status"]["phase"] == "Succeeded", final["status"]
    wait_for(
        "the hook told of the rest",
        lambda: (
            sorted(p.body["event"] for p in hook.posted)
            == ["Approved", "Executed", "PendingApproval", "Succeeded"]
        ),
        timeout=30,
        operator=operator,
    )

    # Alertmanager: the approval alert resolved once the decision no longer waits.
    def answered() -> list[dict[str, Any]]:
        mine = [a for a in alerts.alerts() if a["labels"].get("decision") == name]
        waiting = [a for a in mine if a["labels"]["event"] == "PendingApproval"]
        return [] if waiting else [a for a in mine if a["labels"]["event"] == "Approved"]

    wait_for("the approval alert resolved", answered, timeout=30, operator=operator)

    # No token anywhere the operator writes.
    events = kubectl("get", "events", "-n", scenario.ns, "-o", "json").stdout
    stored = json.dumps(scenario.get("rollbackdecisions", name))
    for where, text in (("log", operator.log.read_text()), ("Events", events),
                        ("decision", stored), ("audit", operator.audit.read_text())):  # fmt: skip
        assert TOKEN not in text, where


def _seconds(stamp: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
