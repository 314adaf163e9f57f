"""The operator harness drives the real cycle and decision lifecycle: no decision on healthy
data (after proving it evaluated), one executed rollback on a step regression, a decision
outside the auto-approval boundary that expires unanswered or is approved by alice, and a
Pause during a rollout in progress."""

from __future__ import annotations

from typing import Any

from operator_harness import OperatorRun, recorded_eval_times, run_operator

from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.control import reasons
from rollguard.core.revisions import REVISION_ANNOTATION
from rollguard.core.tiers import resolve
from rollguard.files.series import Series, parse_series

T0 = 1_699_999_200  # a multiple of every interval: evaluation instants are
STEP = 15  # seconds between samples, and the high tier's evaluation interval
WINDOW = 120  # the high tier's evaluation window

# error_rate: limit 0.01 (objective, absolute margin 0), critical 0.11: a constant value v
# scores (v - 0.01) / 0.1 with one category, so 0.0 scores 0 and 0.11 scores 1.
POLICY: dict[str, Any] = {
    "riskTier": "high",  # interval 15s, window 2m, minSamples 8, validation window 3m
    "signals": [
        {
            "name": "error_rate",
            "query": 'sig_error_rate{namespace="$namespace", deployment="$deployment"}',
            "objective": {"max": 0.01},
            "margin": {"absolute": 0.0},
            "critical": 0.11,
        }
    ],
    "impact": {"categories": [{"name": "revenue", "weight": 1, "signals": {"error_rate": 1}}]},
    "triggers": [{"action": "Rollback", "minScore": 0.5, "sustainedFor": "0s"}],
    "authorization": {
        "autoApprove": {"maxScore": 1.0, "actions": ["Rollback"], "maxRevisionsBack": 1}
    },
}
NEEDS_APPROVAL: dict[str, Any] = {
    **POLICY,
    "authorization": {
        "autoApprove": {"maxScore": 1.0, "actions": ["Pause"], "maxRevisionsBack": 1},
        "approvalTimeout": "2m",
        "onTimeout": "Reject",
    },
}


def _series(values: list[float]) -> Series:
    """error_rate every STEP seconds from T0, through the CSV parser `simulate --series` uses."""
    rows = [f"{T0 + k * STEP},error_rate,{v!r}" for k, v in enumerate(values)]
    text = "timestamp,signal,value\n" + "\n".join(rows) + "\n"
    return parse_series(text, source="series.csv", json_format=False, signals=["error_rate"])


def _step_regression() -> Series:
    """Healthy (0.0) for 10 minutes, then at score 1 (0.11) for 10 more."""
    return _series([0.0] * 40 + [0.11] * 41)


def _effective(policy: dict[str, Any]) -> EffectivePolicy:
    return resolve(RollbackPolicySpec.model_validate(policy))


def _events(run: OperatorRun, name: str) -> list[tuple[float, str]]:
    return [(e["time"], e["reason"]) for e in run.events if e["name"] == name]


def test_healthy_data_makes_no_decision_after_evaluating_every_grid_point() -> None:
    series = _series([0.0] * 81)  # 20 minutes: 80 grid points after the first sample
    run = run_operator(POLICY, series)
    assert len(run.eval_times) == 80
    assert run.evaluations == 80
    assert run.metrics_errors == []
    assert run.decisions == [] and run.escalations == [] and run.deployment_patches == []
    status = run.model_deployment["status"]
    assert (status["phase"], status["lastEvaluation"]["score"]) == ("Healthy", 0.0)
    # Every evaluation queried its window, ending at its own time.
    assert [q.end for q in run.queries] == run.eval_times
    assert {(q.end - q.start, q.step) for q in run.queries} == {(WINDOW, STEP)}


def test_a_step_regression_makes_one_automatic_rollback_that_fails_validation() -> None:
    series = _step_regression()
    run = run_operator(POLICY, series)
    assert run.metrics_errors == []
    assert run.evaluations == len(recorded_eval_times(_effective(POLICY), series))
    [decision] = run.decisions
    assert (decision.action, decision.trigger, decision.requires_approval) == ("Rollback", 0, False)
    assert decision.executed
    assert T0 + 600 < decision.time < T0 + 600 + WINDOW  # once the window turned bad enough
    # Recorded data does not react to the rollback: the score is still 1 when validation
    # starts watching (window + scrape interval after the rollout completed), so validation
    # fails and the ModelDeployment escalates to humans, which stops further decisions.
    assert decision.phase == "Failed"
    stored = run.stored_decisions[0]["status"]
    assert (stored["validation"]["verdict"], stored["execution"]["patched"]) == ("Failed", True)
    assert _events(run, decision.name) == [
        (decision.time, reasons.ROLLBACK_RECOMMENDED),
        (decision.time, reasons.AUTO_APPROVED),
        (decision.time, reasons.EXECUTION_STARTED),
        (decision.time, reasons.ROLLBACK_EXECUTED),
        (decision.time, reasons.ROLLOUT_COMPLETED),
        (decision.time + WINDOW + STEP, reasons.VALIDATION_FAILED),
    ]
    [(escalated, why)] = run.escalations
    assert escalated == decision.time + WINDOW + STEP
    assert decision.name in why
    assert run.model_deployment["status"]["phase"] == "Escalated"
    # The patch was applied once: revision 1's template, which the Deployment controller
    # renumbers 3 (like `kubectl rollout undo`).
    [patch] = run.deployment_patches
    assert patch.time == decision.time
    assert [op["path"] for op in patch.operations] == ["/spec/template"]
    assert run.deployment["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert run.deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v1")


def test_a_rollback_outside_the_boundary_waits_for_approval_then_expires() -> None:
    run = run_operator(NEEDS_APPROVAL, _step_regression(), approve_after=None)
    [decision] = run.decisions
    assert (decision.action, decision.requires_approval) == ("Rollback", True)
    assert (decision.phase, decision.executed) == ("Expired", False)
    assert _events(run, decision.name) == [
        (decision.time, reasons.ROLLBACK_RECOMMENDED),
        (decision.time, reasons.APPROVAL_REQUIRED),
        (decision.time + 120, reasons.APPROVAL_EXPIRED),  # approvalTimeout 2m, onTimeout Reject
    ]
    assert run.deployment_patches == [] and run.escalations == []
    assert run.deployment["metadata"]["annotations"][REVISION_ANNOTATION] == "2"


def test_an_approval_after_a_minute_executes_the_rollback_then() -> None:
    run = run_operator(NEEDS_APPROVAL, _step_regression(), approve_after=60)
    [decision] = run.decisions
    assert (decision.requires_approval, decision.executed) == (True, True)
    assert _events(run, decision.name)[:4] == [
        (decision.time, reasons.ROLLBACK_RECOMMENDED),
        (decision.time, reasons.APPROVAL_REQUIRED),
        (decision.time + 60, reasons.APPROVAL_GRANTED),
        (decision.time + 60, reasons.EXECUTION_STARTED),
    ]
    assert run.stored_decisions[0]["spec"]["approval"]["by"] == "alice"
    assert [p.time for p in run.deployment_patches] == [decision.time + 60]


def test_a_pause_executes_while_a_rollout_is_in_progress() -> None:
    policy = {
        **POLICY,
        "triggers": [{"action": "Pause", "minScore": 0.5, "sustainedFor": "0s"}],
        "authorization": {"autoApprove": {"maxScore": 1.0, "actions": ["Pause"]}},
    }
    run = run_operator(policy, _step_regression(), rollout_in_progress=True)
    [decision] = run.decisions
    assert (decision.action, decision.executed, decision.phase) == ("Pause", True, "Succeeded")
    [patch] = run.deployment_patches
    assert patch.operations == [{"op": "add", "path": "/spec/paused", "value": True}]
    assert run.deployment["spec"]["paused"] is True
    # Without a rollout in progress the same trigger holds instead.
    held = run_operator(policy, _step_regression())
    assert [(d.action, d.executed, d.phase) for d in held.decisions] == [
        ("Hold", False, "Succeeded")
    ]
    assert held.deployment_patches == []
