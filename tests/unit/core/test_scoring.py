"""Category severities, the impact score and money at risk, with hand-computed numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from factory import T0, constant, policy_of
from numpy.testing import assert_allclose, assert_array_equal

from rollguard.api.modeldeployment import Business
from rollguard.core.engine import initial_state, step
from rollguard.core.scoring import (
    ImpactModel,
    category_severity,
    impact_score,
    money_at_risk,
    money_per_hour,
)


def _signal(name: str) -> dict[str, Any]:
    # limit 0, critical 1: a constant value v in [0, 1] has severity v.
    return {
        "name": name,
        "query": "q",
        "objective": {"max": 0.0},
        "margin": {"absolute": 0.0},
        "critical": 1.0,
    }


THREE: dict[str, Any] = {
    "riskTier": "high",
    "signals": [_signal("a"), _signal("b"), _signal("c")],
    "impact": {
        "categories": [
            {"name": "revenue", "weight": 2, "signals": {"a": 1.0, "b": 0.5}},
            {"name": "customerExperience", "weight": 1, "signals": {"b": 2.0, "c": 1.0}},
            {"name": "regulatory", "weight": 0, "signals": {"c": 1.0}},
        ]
    },
}


def test_category_severity_is_the_clamped_sensitivity_weighted_sum() -> None:
    model = ImpactModel.of(policy_of(THREE))
    cats = category_severity(model, np.array([[0.2, 0.4, 0.1], [0.9, 0.9, 0.0]]))
    # revenue: 1x0.2 + 0.5x0.4 = 0.4; customerExperience: 2x0.4 + 0.1 = 0.9; regulatory 0.1.
    # second row: revenue 0.9 + 0.45 = 1.35 -> 1; customerExperience 1.8 -> 1.
    assert_allclose(cats, [[0.4, 0.9, 0.1], [1.0, 1.0, 0.0]])


def test_score_is_the_weighted_mean_and_zero_weights_contribute_nothing() -> None:
    model = ImpactModel.of(policy_of(THREE))
    score = impact_score(
        model, np.array([[0.4, 0.9, 1.0], [0.0, 0.0, 1.0]]), np.array([False, False])
    )
    assert_allclose(score, [(2 * 0.4 + 1 * 0.9) / 3, 0.0])


def test_score_is_nan_where_unknown() -> None:
    model = ImpactModel.of(policy_of(THREE))
    score = impact_score(model, np.ones((2, 3)), np.array([True, False]))
    assert np.isnan(score[0])
    assert score[1] == 1.0


def test_step_scores_nan_only_when_every_signal_is_inconclusive() -> None:
    p = policy_of(THREE)
    m = constant([[np.nan, np.nan, np.nan], [0.5, np.nan, np.nan]])
    r = step(p, m, initial_state(p, 2), now=T0)
    assert np.isnan(r.score[0])
    assert r.fired[0] == -1
    # Some signals measured: the Inconclusive ones count as severity 0.
    assert r.score[1] == pytest.approx(2 * 0.5 / 3)
    assert_array_equal(r.inconclusive[1], [False, True, True])


def test_money_at_risk_is_revenue_severity_times_revenue_per_hour() -> None:
    model = ImpactModel.of(policy_of(THREE))
    money = money_at_risk(model, [0.4, 0.9, 0.0], Business(revenue_per_hour=5000.0))
    assert money is not None
    assert money.per_hour == pytest.approx(2000.0)
    assert money.currency == "USD"
    assert money.revenue_per_hour == 5000.0
    eur = money_at_risk(model, [0.4, 0.9, 0.0], Business(revenue_per_hour=10.0, currency="EUR"))
    assert eur is not None
    assert eur.currency == "EUR"
    assert_allclose(money_per_hour(model, np.array([[0.4, 0.9, 0.0]]), 5000.0), [2000.0])


def test_no_money_at_risk_without_revenue_figures_or_a_revenue_category() -> None:
    model = ImpactModel.of(policy_of(THREE))
    assert money_at_risk(model, [1.0, 1.0, 1.0], None) is None
    assert money_at_risk(model, [1.0, 1.0, 1.0], Business(customers=10)) is None
    doc = {
        **THREE,
        "impact": {"categories": [{"name": "market", "weight": 1, "signals": {"a": 1}}]},
    }
    other = ImpactModel.of(policy_of(doc))
    assert money_at_risk(other, [1.0], Business(revenue_per_hour=1.0)) is None
    assert money_per_hour(other, np.ones((1, 1)), 1.0) is None
