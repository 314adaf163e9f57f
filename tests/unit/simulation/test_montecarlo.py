"""The simulator over the scenario library with the example policy, and its JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from devenv.testing import reviewed_text
from rollguard.api.policy import EffectivePolicy
from rollguard.files.loading import load_policy
from rollguard.simulation.montecarlo import simulate, simulate_scenario, trace
from rollguard.simulation.report import simulation_markdown, to_json
from rollguard.simulation.scenario_run import run_scenario
from rollguard.simulation.scenarios import Scenario, load_scenario
from rollguard.simulation.seed_decisions import ESCALATIONS

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"
GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "simulate-small.json"


@pytest.fixture(scope="module")
def policy() -> EffectivePolicy:
    return load_policy(path=EXAMPLES / "policy.yaml")


def scenario(name: str, policy: EffectivePolicy) -> Scenario:
    return load_scenario(path=EXAMPLES / f"{name}.yaml", policy=policy)


def test_healthy_noisy_never_rolls_back_over_200_seeds(policy: EffectivePolicy) -> None:
    data = simulate_scenario(policy, scenario("healthy-noisy", policy), seeds=200)
    assert data.false_rollbacks.sum() == 0
    assert data.actions.sum() == 0


def test_error_burst_is_detected_and_cured_in_every_seed(policy: EffectivePolicy) -> None:
    result = simulate(policy, [scenario("error-burst", policy)], seeds=100, resamples=200)
    m = result.scenarios[0].metrics
    assert m.episodes == 100 and m.detected == 100
    assert m.missed_regression_rate.value == 0.0
    assert m.false_rollback_rate.value == 0.0
    assert m.detection_seconds.p90.value is not None
    assert m.detection_seconds.p90.value <= 300
    assert m.impact_avoided_fraction.value is not None
    assert m.impact_avoided_fraction.value > 0.8


def test_gitops_reapplying_a_flapping_revision_is_stopped_by_the_budget(
    policy: EffectivePolicy,
) -> None:
    data = simulate_scenario(policy, scenario("flapping", policy), seeds=50)
    # Budget: 2 executed actions per 6 h. The fire after the second re-apply escalates: its
    # decision waits for a human (who approves after the scenario's 10 minutes), and nothing
    # fires after it.
    assert (data.actions <= 3).all()
    assert (data.escalations >= 1).all()
    assert data.false_rollbacks.sum() == 0
    run = run_scenario(policy, scenario("flapping", policy), list(range(10)))
    budget = ESCALATIONS.index("budget")
    for b in range(10):
        (escalated,) = np.flatnonzero(run.escalation[:, b] == budget)
        assert run.blocked[escalated, b] and not run.executions[escalated, b]
        assert (run.fired[escalated + 1 :, b] < 0).all()
        automatic = run.executions[:, b] & run.executed[:, b]  # executed when decided
        assert automatic.sum() <= 2
        approved = np.flatnonzero(run.executions[escalated:, b])
        assert approved.size <= 1 and (approved * 30 == 600).all()


def test_missing_data_alone_never_triggers(policy: EffectivePolicy) -> None:
    base = scenario("missing-data", policy)
    gaps_only = base.model_copy(update={"events": [e for e in base.events if e.kind == "gap"]})
    data = simulate_scenario(policy, gaps_only, seeds=50)
    assert data.actions.sum() == 0 and data.escalations.sum() == 0


def test_a_seed_rerun_alone_is_identical_to_its_run_in_a_batch(policy: EffectivePolicy) -> None:
    sc = scenario("latency-regression", policy)
    batch = run_scenario(policy, sc, list(range(10, 16)))
    alone = trace(policy, sc, seed=13)
    np.testing.assert_array_equal(batch.score[:, 3], alone.score[:, 0])
    np.testing.assert_array_equal(batch.fired[:, 3], alone.fired[:, 0])
    np.testing.assert_array_equal(batch.active[3], alone.active[0])
    assert alone.values is not None and alone.values.shape[0] == 1


def test_dry_run_never_acts_so_nothing_is_avoided(policy: EffectivePolicy) -> None:
    dry = policy.model_copy(update={"mode": "DryRun"})
    run = run_scenario(dry, scenario("error-burst", policy), [0, 1, 2])
    assert not run.executed.any()
    np.testing.assert_array_equal(run.score, run.score_counterfactual)
    assert (run.fired >= 0).any()


def test_a_rollback_cures_only_curable_regressions(policy: EffectivePolicy) -> None:
    sc = scenario("error-burst", policy)
    incurable = sc.model_copy(
        update={"events": [sc.events[0].model_copy(update={"curable": False})]}
    )
    cured = run_scenario(policy, sc, [0])
    stuck = run_scenario(policy, incurable, [0])
    assert cured.executed.any() and stuck.executed.any()
    assert not cured.active[0, 0, -1] and stuck.active[0, 0, -1]


def small_result(policy: EffectivePolicy) -> str:
    scenarios = [scenario(n, policy) for n in ("error-burst", "recovery")]
    return to_json(simulate(policy, scenarios, seeds=20, seed=3, resamples=200))


def test_simulate_report_matches_the_golden_file(policy: EffectivePolicy) -> None:
    text = small_result(policy)
    golden = reviewed_text(GOLDEN, text, update_switch="ROLLGUARD_UPDATE_GOLDEN")
    assert text == golden, "regenerate with ROLLGUARD_UPDATE_GOLDEN=1 if intended"
    doc = json.loads(text)
    assert list(doc) == [
        "schemaVersion",
        "policy",
        "seed",
        "seeds",
        "resamples",
        "confidence",
        "scenarios",
        "overall",
    ]


def test_markdown_report_has_a_table_per_scenario_and_overall(policy: EffectivePolicy) -> None:
    result = simulate(policy, [scenario("error-burst", policy)], seeds=5, resamples=50)
    md = simulation_markdown(result)
    assert "## error-burst" in md and "## overall" in md
    assert "| false rollbacks per run | 0 [0, 0] |" in md


def test_actions_outside_auto_approval_wait_for_a_human(policy: EffectivePolicy) -> None:
    sc = scenario("error-burst", policy)
    auto = policy.authorization.auto_approve.model_copy(update={"max_score": 0.1})
    strict = policy.model_copy(
        update={"authorization": policy.authorization.model_copy(update={"auto_approve": auto})}
    )
    fast = run_scenario(policy, sc, [0])
    slow = run_scenario(strict, sc, [0])
    t = fast.timeline.sample_times
    # Cured after the rollout delay when automatic, after a 10 min approval when not.
    cured_fast = t[np.argmax(~fast.active[0, 0] & (t > 1800))]
    cured_slow = t[np.argmax(~slow.active[0, 0] & (t > 1800))]
    assert cured_slow - cured_fast == pytest.approx(600, abs=15)
    nobody = sc.model_copy(update={"approval_delay": None})
    never = run_scenario(strict, nobody, [0])  # onTimeout Reject: nothing executes
    assert not never.executed.any() and never.active[0, 0, -1]
