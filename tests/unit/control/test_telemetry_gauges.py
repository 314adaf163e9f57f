"""The phase and pending-approval gauges the alerting rules read: one series per phase, and
series that disappear with the objects they describe."""

from __future__ import annotations

from prometheus_client import generate_latest

from rollguard.control import telemetry as observe
from rollguard.control.writes import PHASES


def _series(name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in generate_latest(observe.REGISTRY).decode().splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            out[labels[len(name) :]] = float(value)
    return out


def test_phase_gauge_has_one_series_per_phase_and_one_is_set() -> None:
    observe.set_phase("ns-a", "fraud", "Escalated", PHASES, owner="ns-a/p")
    mine = {k: v for k, v in _series("rollguard_model_deployment_phase").items() if "ns-a" in k}
    assert len(mine) == len(PHASES) == 8
    assert [k for k, v in mine.items() if v == 1.0] == [
        '{model_deployment="fraud",namespace="ns-a",phase="Escalated"}'
    ]


def test_phase_series_go_away_with_the_model_deployment() -> None:
    observe.set_phase("ns-b", "one", "Healthy", PHASES, owner="ns-b/p")
    observe.set_phase("ns-b", "two", "Degraded", PHASES, owner="ns-b/p")
    observe.set_phase("ns-b", "three", "Healthy", PHASES, owner="ns-b/other")
    observe.keep_phases("ns-b/p", {("ns-b", "two")})
    left = {k for k in _series("rollguard_model_deployment_phase") if "ns-b" in k}
    assert not any('"one"' in k for k in left)
    assert any('"two"' in k for k in left)
    # Another policy's ModelDeployments are its own business.
    assert any('"three"' in k for k in left)


def test_pending_gauge_set_and_cleared() -> None:
    observe.set_pending("ns-c", "d1", "fraud", 1_700_000_000.0)
    observe.set_pending("ns-c", "d2", "fraud", 1_700_000_100.0)
    series = _series("rollguard_decision_pending_approval_since_seconds")
    assert series['{decision="d1",model_deployment="fraud",namespace="ns-c"}'] == 1.7e9
    observe.set_pending("ns-c", "d1", "fraud", None)
    observe.forget_decision("ns-c", "d2")
    observe.set_pending("ns-c", "d3", "fraud", None)  # never reported: nothing to do
    assert not [
        k for k in _series("rollguard_decision_pending_approval_since_seconds") if "ns-c" in k
    ]
