"""Every reason the operator can give (an Event's reason, an audit line's event, a status
condition's reason; one constant each in ``rollguard.control.reasons``) is given by the real
control code in at least one scenario of ``reason_scenarios`` or ``handler_scenarios``: a
reason added without a scenario fails here, by name.

The constants are collected from the module, not listed here; a reason the product never
gives at all is in NEVER_EMITTED, and a test keeps that set true."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import handler_scenarios as h
import pytest
import reason_scenarios as s

from rollguard.control import reasons

ALL: dict[str, str] = {
    name: value
    for name, value in sorted(vars(reasons).items())
    if name.isupper() and isinstance(value, str)
}

# Reasons defined in reasons.py that no product code uses: nothing to test until it does.
NEVER_EMITTED: set[str] = set()  # none today: a dead constant is deleted, not listed here

Scenario = Callable[[], s.Observed]


def _reviewed() -> s.Observed:
    run, _ = h.reviewed_decision()
    return run


SCENARIOS: dict[str, Scenario] = {
    # Policies: the status the policy daemon writes; their ModelDeployments as it marks them.
    "POLICY_READY": h.policy_statuses,
    "POLICY_INVALID": h.policy_statuses,
    "QUERY_PER_DEPLOYMENT": h.policy_statuses,
    "METRICS_UNAVAILABLE": h.policy_statuses,
    "POLICY_NOT_FOUND": h.policy_statuses,
    # ModelDeployments the cycle cannot evaluate, and the phases of one it does.
    "SPEC_INVALID": h.unusable_model_deployments,
    "POLICY_NOT_SHARED": h.unusable_model_deployments,
    "DEPLOYMENT_NOT_FOUND": h.unusable_model_deployments,
    "TARGET_NOT_FOUND": h.unusable_model_deployments,
    "TARGET_UNSUPPORTED": h.unusable_model_deployments,
    "TARGET_FORBIDDEN": h.unusable_model_deployments,
    "EVALUATED": s.hold_episodes,
    "BECAME_DEGRADED": s.hold_episodes,
    "RECOVERED": s.hold_episodes,
    "BECAME_INCONCLUSIVE": s.hold_episodes,
    "ESCALATED": s.rollback_that_stays_bad,
    "ESCALATION_CLEARED": s.rollback_that_stays_bad,
    # Decisions: made and recorded.
    "HOLD_RECOMMENDED": s.hold_episodes,
    "HOLD_RECORDED": s.hold_episodes,
    "DECISION_PRUNED": s.hold_episodes,
    "PAUSE_RECOMMENDED": s.pause_during_rollout,
    "ROLLOUT_PAUSED": s.pause_during_rollout,
    "DRY_RUN_RECORDED": s.dry_run,
    "DECISION_NOT_LINKED": h.forged_decision,
    "DECISION_REVIEWED": _reviewed,
    # Decisions: approval.
    "APPROVAL_REQUIRED": partial(s.approval, "alice"),
    "APPROVAL_GRANTED": partial(s.approval, "alice"),
    "APPROVER_NOT_ALLOWED": partial(s.approval, "mallory"),
    "APPROVAL_REJECTED": partial(s.approval, "alice", "Reject"),
    "APPROVAL_EXPIRED": partial(s.approval, None),
    "APPROVAL_TIMEOUT_EXECUTE": partial(s.approval, None, on_timeout="Execute"),
    "AUTO_APPROVED": s.rollback_that_recovers,
    # Decisions: execution.
    "ROLLBACK_RECOMMENDED": s.rollback_that_recovers,
    "EXECUTION_STARTED": s.rollback_that_recovers,
    "ROLLBACK_EXECUTED": s.rollback_that_recovers,
    "ALREADY_AT_TARGET": partial(s.interfered, "undo"),
    "SUPERSEDED": partial(s.interfered, "hotfix"),
    "TARGET_MISSING": partial(s.interfered, "prune"),
    # Decisions: validation.
    "ROLLOUT_COMPLETED": s.rollback_that_recovers,
    "ROLLOUT_TIMED_OUT": s.stalled_rollback,
    "VALIDATION_SUCCEEDED": s.rollback_that_recovers,
    "VALIDATION_FAILED": s.rollback_that_stays_bad,
}

PRODUCT = Path(__file__).resolve().parents[3] / "operator" / "rollguard"
DEFINITIONS = PRODUCT / "control" / "reasons.py"


def _uses(name: str, value: str) -> list[str]:
    """The product files, other than reasons.py, naming the constant or spelling its value."""
    pattern = re.compile(rf"\b{name}\b|[\"']{re.escape(value)}[\"']")
    return [
        str(path.relative_to(PRODUCT))
        for path in sorted(PRODUCT.rglob("*.py"))
        if path != DEFINITIONS and pattern.search(path.read_text(encoding="utf-8"))
    ]


@pytest.mark.parametrize(("name", "reason"), list(ALL.items()), ids=list(ALL))
def test_the_operator_gives_every_reason_in_some_scenario(name: str, reason: str) -> None:
    """The reason appears in the Events, audit lines or status conditions of a real run."""
    if name in NEVER_EMITTED:
        assert _uses(name, reason) == [], f"{name} is used now: give it a scenario"
        return
    scenario = SCENARIOS.get(name)
    if scenario is None:
        pytest.fail(
            f"reason {name} ({reason!r}) has no test: map it in SCENARIOS to a scenario (of "
            "reason_scenarios.py or handler_scenarios.py) in which the operator gives it, or, "
            "if no product code uses it, put it in NEVER_EMITTED",
            pytrace=False,
        )
    given = s.emitted(scenario())
    assert reason in given, f"{name} ({reason!r}) not given; the scenario gave {sorted(given)}"


def test_never_emitted_reasons_are_defined_and_unused_by_the_product() -> None:
    """NEVER_EMITTED cannot go stale: each entry is a constant of reasons.py, has no scenario,
    and no other product file names it or spells its value."""
    assert NEVER_EMITTED.issubset(ALL)
    assert NEVER_EMITTED.isdisjoint(SCENARIOS)
    assert {name: _uses(name, ALL[name]) for name in sorted(NEVER_EMITTED)} == {
        name: [] for name in sorted(NEVER_EMITTED)
    }


def test_the_scenarios_give_no_event_or_condition_reason_outside_reasons_py() -> None:
    """The reasons of the Events and conditions the scenarios produced are all constants of
    reasons.py (the audit log has one extra line, DecisionFinal, which is no reason)."""
    known = set(ALL.values())
    stray: set[str] = set()
    for scenario in {*SCENARIOS.values()}:
        observed = scenario()
        stray |= {e["reason"] for e in observed.cluster.events} - known
        stray |= {reason for _, _, reason in s.conditions(observed)} - known
        stray |= {str(r["event"]) for r in observed.audit_log.records} - known - {"DecisionFinal"}
    assert stray == set()


def test_reason_values_are_distinct_upper_camel_case() -> None:
    """One constant per transition, each distinct and UpperCamelCase (reasons.py's promise)."""
    assert len(set(ALL.values())) == len(ALL)
    assert [v for v in ALL.values() if not re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", v)] == []
