"""The dashboard's pages rendered from decisions and ModelDeployments as the API server returns
them: charts, options, approval forms only while pending, the audit chain, notifications when
present, and refusals that name the missing permission."""

from __future__ import annotations

from typing import Any

import pytest
from recorded_decision import recorded

from rollguard.core.audit import ChainReport
from rollguard.core.severity import signal_limit
from rollguard.web.decision_page import decision_page, limit_of
from rollguard.web.pages import error_page, forbidden_page, list_page

INTACT = ChainReport("ml/fraud", 1, [])


def _decision(phase: str | None = "PendingApproval", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ml", "name": "fraud-1"},
        "spec": recorded().wire(),
        "status": {"phase": phase, **status} if phase else {},
    }


def _page(obj: dict[str, Any], chain: ChainReport | None = INTACT) -> str:
    return decision_page(obj, chain=chain, chain_error="forbidden", csrf_token="tok", user="alice")


def test_the_decision_page_charts_every_signal_and_the_score() -> None:
    page = _page(_decision())
    spec = recorded()
    assert (
        page.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == len(spec.signals) + 1
    )
    for s in spec.signals:
        assert f"limit {limit_of(spec, s):.4g}" in page
    assert "Rollback ≥ 0.7 for 0 s" in page
    assert "Money at risk: 2,500.00 USD per hour" in page


def test_the_limit_is_the_decision_machines() -> None:
    spec = recorded()
    effective = {s.name: s for s in spec.policy.effective.signals}
    for s in spec.signals:
        assert limit_of(spec, s) == signal_limit(effective[s.name])


def test_options_show_expected_loss_in_impact_hours_and_money_and_the_recommendation() -> None:
    page = _page(_decision())
    assert "Rollback <strong>(recommended)</strong>" in page
    assert "258.33 USD" in page
    assert 'id="recommendation"><strong>Recommended: Rollback revision 4 → 3.' in page


def test_a_pending_decision_has_approve_and_reject_forms_with_the_token() -> None:
    page = _page(_decision())
    assert page.count('<form class="approval" method="post" action="/decisions/ml/fraud-1">') == 2
    assert page.count('name="csrf_token" value="tok"') == 2
    assert page.count("required") >= 2


@pytest.mark.parametrize("phase", ["Approved", "Succeeded", None])
def test_a_decision_not_pending_has_no_forms(phase: str | None) -> None:
    assert "<form" not in _page(_decision(phase))


def test_an_approval_shows_who_gave_it() -> None:
    obj = _decision("Approved")
    obj["spec"]["approval"] = {"decision": "Approve", "by": "alice", "reason": "<b>ok</b>"}
    page = _page(obj)
    assert "Approve by <strong>alice</strong>: &lt;b&gt;ok&lt;/b&gt;" in page


def test_the_audit_chain_verdict_is_shown_intact_broken_or_unchecked() -> None:
    assert "verifies: 1 decision(s), intact" in _page(_decision())
    broken = ChainReport("ml/fraud", 2, ["fraud-1: evidence does not match its audit hash"])
    assert "is BROKEN" in _page(_decision(), broken)
    assert "could not be checked: forbidden" in _page(_decision(), None)


def test_notifications_are_rendered_generically_and_may_be_absent() -> None:
    assert 'id="notifications"' not in _page(_decision())
    entries = [
        {"receiver": "oncall", "transition": "PendingApproval", "state": "Failed", "attempts": 2,
         "reason": "HTTP 500", "futureField": "x"},
        {"receiver": "slack", "transition": "PendingApproval", "state": "Delivered"},
    ]  # fmt: skip
    page = _page(_decision(notifications=entries))
    assert 'id="notifications"' in page
    for word in ("oncall", "Failed", "HTTP 500", "futureField", "slack", "Delivered"):
        assert word in page
    assert 'id="notifications"' not in _page(_decision(notifications="garbled"))


def test_execution_and_validation_are_shown() -> None:
    page = _page(
        _decision(
            "Validating",
            execution={"patched": True, "message": "patched to revision 3"},
            validation={"criteria": {"rolloutTimeout": "5m", "window": "2m", "clearBelow": 0.1}},
        )
    )
    assert "patched yes" in page and "patched to revision 3" in page
    assert "in progress: score below 0.1 for 2m within 5m" in page


def _mdep(ns: str, name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name},
        "spec": {"deploymentRef": {"name": name}},
        "status": status,
    }


def test_the_list_links_each_last_decision_and_says_when_it_is_narrowed() -> None:
    items = [
        _mdep("ml", "fraud", phase="AwaitingApproval", target="Deployment/fraud",
              lastEvaluation={"scoreText": "0.85"}, lastDecision="fraud-1"),
        _mdep("ml", "quiet"),
    ]  # fmt: skip
    page = list_page(items, namespaces=None, user="alice")
    assert '<a href="/decisions/ml/fraud-1">fraud-1</a>' in page
    assert "AwaitingApproval" in page and "0.85" in page and "Deployment/quiet" in page
    assert 'id="scope"' not in page
    narrowed = list_page(items, namespaces=["ml"], user="alice")
    assert "You may not list ModelDeployments in all namespaces" in narrowed
    assert "No ModelDeployments." in list_page([], namespaces=None, user="alice")


def test_a_refusal_names_the_missing_permission() -> None:
    page = forbidden_page(
        message="forbidden", verb="patch", resource="rollbackdecisions.rollguard.dev",
        namespace="ml", user="victor",
    )  # fmt: skip
    assert (
        "Missing permission: <strong>patch</strong> <strong>rollbackdecisions.rollguard.dev" in page
    )
    assert "in namespace ml" in page and "victor" in page
    other = forbidden_page(
        message="denied by policy", verb=None, resource=None, namespace=None, user="v"
    )
    assert "The API server refused the request." in other and "denied by policy" in other


def test_error_pages_say_what_went_wrong_in_one_line() -> None:
    page = error_page(404, 'RollbackDecision ml/x not found <"quoted">', user="alice")
    assert "Not found" in page and "&lt;&quot;quoted&quot;&gt;" in page
    assert "Traceback" not in page
