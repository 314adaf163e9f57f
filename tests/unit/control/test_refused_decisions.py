"""A decision the API server refuses (RBAC, or the admission policy when the operator runs as
the wrong identity): the cycle goes on for the other ModelDeployments, says why in the status,
and tries again at every evaluation, so the regression is acted on once the refusal is fixed."""

from __future__ import annotations

from fake_cluster import FakeCluster
from operator_harness import run_operator
from reason_scenarios import AUTO_ROLLBACK, BAD, DECIDED, STEP, T0, series, times

REFUSAL = "RollbackDecisions are created by the rollguard operator only, not by admin"
FIXED = DECIDED + 4 * STEP  # when someone runs the operator as its ServiceAccount


def _refuse_until_fixed(now: float, fake: FakeCluster) -> None:
    fake.refuse_creates("RollbackDecision", None if now >= T0 + FIXED else REFUSAL)


def test_a_refused_decision_is_made_at_the_first_evaluation_after_the_fix() -> None:
    spec = {
        **AUTO_ROLLBACK,
        "triggers": [{"action": "Rollback", "minScore": 0.5, "sustainedFor": "30s"}],
    }
    run = run_operator(
        spec, series((BAD, 20)), eval_times=times(0, FIXED + STEP), act=_refuse_until_fixed
    )
    assert [d.time - T0 for d in run.decisions] == [FIXED]


def test_while_refused_the_status_says_why_and_nothing_is_created() -> None:
    run = run_operator(
        AUTO_ROLLBACK, series((BAD, 12)), eval_times=times(0, DECIDED + STEP),
        act=lambda now, fake: fake.refuse_creates("RollbackDecision", REFUSAL),
    )  # fmt: skip
    assert run.decisions == [] and run.deployment_patches == []
    status = run.model_deployment["status"]
    assert status["phase"] == "Degraded"
    assert status["message"].endswith(f"the API server refused its RollbackDecision: {REFUSAL}")
