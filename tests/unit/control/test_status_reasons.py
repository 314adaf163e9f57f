"""What the operator reports outside a decision's execution, against the in-memory API server
(``reason_scenarios``, ``handler_scenarios``): the Ready/Invalid conditions of policies and of
ModelDeployments it cannot evaluate, a ModelDeployment's phase changes through degraded
episodes, the pruning of old decisions, a decision it did not make, the export of a review."""

from __future__ import annotations

from typing import Any

import handler_scenarios as h
import reason_scenarios as s
from fake_cluster import NAME, NAMESPACE, POLICY

from rollguard.control import reasons


def _ready(observed: s.Observed, kind: str, name: str, namespace: str = NAMESPACE) -> Any:
    """(Ready status, Invalid status, reason) of the object, and the Ready message."""
    obj = observed.cluster.get(kind, namespace=namespace, name=name)
    by_type = {c["type"]: c for c in obj["status"]["conditions"]}
    ready, invalid = by_type["Ready"], by_type["Invalid"]
    assert invalid["reason"] == ready["reason"]
    return (ready["status"], invalid["status"], ready["reason"]), ready["message"]


def test_model_deployments_the_cycle_cannot_evaluate_say_why_in_their_conditions() -> None:
    """Invalid is True only when the ModelDeployment's own spec is at fault; none of them
    reached Prometheus."""
    w = h.unusable_model_deployments()
    elsewhere, message = _ready(w, "ModelDeployment", "elsewhere", namespace="other")
    assert elsewhere == ("False", "True", reasons.POLICY_NOT_SHARED)
    assert "not in the policy's allowedNamespaces" in message
    broken, message = _ready(w, "ModelDeployment", "broken")
    assert broken == ("False", "True", reasons.SPEC_INVALID)
    assert "deploymentRef" in message
    orphan, message = _ready(w, "ModelDeployment", "orphan")
    assert orphan == ("False", "False", reasons.DEPLOYMENT_NOT_FOUND)
    assert message == "Deployment ml/missing does not exist"
    assert w.cluster.events == []


def test_a_policy_is_ready_runs_per_deployment_lacks_metrics_or_is_invalid() -> None:
    w = h.policy_statuses()
    assert _ready(w, "RollbackPolicy", "ready") == (
        ("True", "False", reasons.POLICY_READY),
        "1 ModelDeployment(s) bound",
    )
    state, message = _ready(w, "RollbackPolicy", "per-deployment")
    assert state == ("True", "False", reasons.QUERY_PER_DEPLOYMENT)
    assert message.startswith("signals error_rate run one query per deployment")
    state, message = _ready(w, "RollbackPolicy", POLICY)
    assert state == ("False", "False", reasons.METRICS_UNAVAILABLE)
    assert "connection refused" in message
    state, message = _ready(w, "RollbackPolicy", "invalid")
    assert state == ("False", "True", reasons.POLICY_INVALID)
    assert message.startswith("signals[0].query (error_rate):")
    # The ModelDeployment evaluated without metrics is Inconclusive, not failed.
    assert _ready(w, "ModelDeployment", NAME)[0] == ("True", "False", reasons.EVALUATED)
    assert s.events_of(w) == [(0, reasons.BECAME_INCONCLUSIVE)]


def test_model_deployments_of_a_missing_or_invalid_policy_are_not_ready_yet_valid() -> None:
    w = h.policy_statuses()
    judged, message = _ready(w, "ModelDeployment", "judged")
    assert judged == ("False", "False", reasons.POLICY_INVALID)
    assert message.startswith("RollbackPolicy ml/invalid is invalid: signals[0].query")
    assert _ready(w, "ModelDeployment", "lost") == (
        ("False", "False", reasons.POLICY_NOT_FOUND),
        "RollbackPolicy ml/gone does not exist",
    )


def test_phases_through_two_degraded_episodes_and_the_pruning_of_old_decisions() -> None:
    """Two degraded episodes under a Pause trigger without a rollout (each decided a Hold),
    each followed by a recovery, then no data at all. With keepDecisions 1 the first decision
    is deleted once the second is final and exported, and the chain head says so."""
    run = s.hold_episodes()
    phases = [r for _, r in s.events_of(run)]
    assert phases == [
        reasons.BECAME_DEGRADED,
        reasons.RECOVERED,
        reasons.BECAME_DEGRADED,
        reasons.RECOVERED,
        reasons.BECAME_INCONCLUSIVE,
    ]
    assert [(d.action, d.phase) for d in run.decisions] == [("Hold", "Succeeded")] * 2
    for decision in run.decisions:
        assert [r for _, r in s.events_of(run, decision.name)] == [
            reasons.HOLD_RECOMMENDED,
            reasons.HOLD_RECORDED,
        ]
    first, second = run.decisions
    stored = run.cluster.list_objects("RollbackDecision", namespace=NAMESPACE)
    assert [d["metadata"]["name"] for d in stored] == [second.name]
    [pruned] = [r for r in run.audit if r["event"] == reasons.DECISION_PRUNED]
    assert (pruned["name"], pruned["sequence"]) == (first.name, 1)
    assert run.model_deployment["status"]["audit"]["prunedThrough"] == 1
    assert run.model_deployment["status"]["phase"] == "Inconclusive"
    assert run.deployment_patches == []


def test_a_decision_the_operator_did_not_make_is_failed_once_and_never_acted_on() -> None:
    """Created without the audit link annotations (no admission policy): advanced twice, it
    fails on the first call, with a Warning, and is never sealed into the chain."""
    w = h.forged_decision()
    assert [(e["reason"], e["type"]) for e in w.cluster.events] == [
        (reasons.DECISION_NOT_LINKED, "Warning")
    ]
    status = w.cluster.get("RollbackDecision", namespace=NAMESPACE, name="forged")["status"]
    assert status["phase"] == "Failed" and "audit" not in status
    assert "no audit link annotations" in status["message"]
    assert w.cluster.deployment_patches == []


def test_a_review_is_exported_once_with_its_place_in_the_chain() -> None:
    """The review handler may see the same review twice; the second call records nothing."""
    run, recorded = h.reviewed_decision()
    assert recorded == [True, False]
    [event] = [e for e in run.cluster.events if e["reason"] == reasons.DECISION_REVIEWED]
    assert event["message"].startswith("Reviewed by bob: Achieved, regression Real.")
    [line] = [r for r in run.audit_log.records if r["event"] == reasons.DECISION_REVIEWED]
    decision = run.cluster.get("RollbackDecision", namespace=NAMESPACE, name=event["name"])
    audit = decision["status"]["audit"]
    assert (line["sequence"], line["hash"], line["review"]["by"]) == (1, audit["hash"], "bob")
    assert audit["reviewExported"] is True
