"""Signal severity: benefit-of-the-doubt bounds, limits, linear rise, clamping, missing data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from factory import ONE_SIGNAL, policy_of
from numpy.testing import assert_allclose, assert_array_equal

from rollguard.core.severity import SignalLimits, explain, severities, signal_limit

TWO_SIGNALS: dict[str, Any] = {
    **ONE_SIGNAL,
    "signals": [
        # limit 0.01 + 10% = 0.011, critical 0.05
        {
            "name": "error_rate",
            "query": "q",
            "objective": {"max": 0.01},
            "margin": {"relative": 0.1},
            "critical": 0.05,
        },
        # limit 0.9 - 0.02 = 0.88, critical 0.8
        {
            "name": "accuracy",
            "query": "q",
            "objective": {"min": 0.9},
            "margin": {"absolute": 0.02},
            "critical": 0.8,
            "onMissingData": "Breach",
        },
    ],
    "impact": {
        "categories": [
            {"name": "revenue", "weight": 1, "signals": {"error_rate": 1, "accuracy": 1}}
        ]
    },
}


def _sev(
    lower: list[float], upper: list[float], missing: list[bool] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    limits = SignalLimits.of(policy_of(TWO_SIGNALS))
    miss = np.array([missing or [False, False]])
    return severities(limits, np.array([lower]), np.array([upper]), miss)


def test_limits_add_the_margin_on_the_tolerated_side() -> None:
    p = policy_of(TWO_SIGNALS)
    assert signal_limit(p.signals[0]) == pytest.approx(0.011)
    assert signal_limit(p.signals[1]) == pytest.approx(0.88)


def test_max_objective_is_judged_on_the_lower_bound() -> None:
    # lower bound 0.03: (0.03 - 0.011) / (0.05 - 0.011); the upper bound is ignored.
    sev, _ = _sev([0.03, 0.95], [10.0, 0.95])
    assert sev[0, 0] == pytest.approx(0.019 / 0.039)


def test_min_objective_is_judged_on_the_upper_bound() -> None:
    # upper bound 0.85: (0.88 - 0.85) / (0.88 - 0.8); the lower bound is ignored.
    sev, _ = _sev([0.0, -5.0], [0.0, 0.85])
    assert sev[0, 1] == pytest.approx(0.03 / 0.08)


def test_severity_is_zero_at_or_inside_the_limit_and_one_at_critical() -> None:
    p = policy_of(TWO_SIGNALS)
    at_limit = [signal_limit(p.signals[0]), signal_limit(p.signals[1])]
    sev, _ = _sev(at_limit, at_limit)
    assert_array_equal(sev, [[0.0, 0.0]])
    sev, _ = _sev([0.0105, 0.0], [0.0, 0.89])  # inside the margin
    assert_array_equal(sev, [[0.0, 0.0]])
    sev, _ = _sev([0.05, 0.0], [0.0, 0.8])
    assert_allclose(sev, [[1.0, 1.0]])


def test_severity_is_clamped_to_one_beyond_critical() -> None:
    sev, _ = _sev([5.0, 0.0], [0.0, -3.0])
    assert_array_equal(sev, [[1.0, 1.0]])


def test_missing_data_is_inconclusive_unless_the_policy_says_breach() -> None:
    sev, inconclusive = _sev([np.nan, np.nan], [np.nan, np.nan], [True, True])
    # error_rate: Inconclusive, severity 0; accuracy: onMissingData Breach -> severity 1.
    assert_array_equal(sev, [[0.0, 1.0]])
    assert_array_equal(inconclusive, [[True, False]])


def test_explanation_of_a_capped_breach_states_the_arithmetic() -> None:
    p = policy_of(TWO_SIGNALS)
    text = explain(
        p.signals[0],
        value=0.094,
        lower=0.081,
        upper=0.1,
        count=60,
        min_samples=8,
        confidence=0.9,
        severity=1.0,
    )
    assert text == (
        "error_rate: lower bound 0.081 (mean 0.094, n=60, 90% CI) > limit 0.011 "
        "(objective max 0.01 + margin 10%); severity (0.081-0.011)/(0.05-0.011) = 1.00 (capped)"
    )


def test_explanation_of_a_min_objective_breach() -> None:
    p = policy_of(TWO_SIGNALS)
    text = explain(
        p.signals[1],
        value=0.86,
        lower=0.84,
        upper=0.85,
        count=12,
        min_samples=8,
        confidence=0.95,
        severity=0.375,
    )
    assert text == (
        "accuracy: upper bound 0.85 (mean 0.86, n=12, 95% CI) < limit 0.88 "
        "(objective min 0.9 - margin 0.02); severity (0.88-0.85)/(0.88-0.8) = 0.38"
    )


def test_explanation_inside_the_limit_and_when_inconclusive() -> None:
    p = policy_of(TWO_SIGNALS)
    ok = explain(
        p.signals[0],
        value=0.006,
        lower=0.005,
        upper=0.007,
        count=30,
        min_samples=8,
        confidence=0.9,
        severity=0.0,
    )
    assert ok.startswith("error_rate: lower bound 0.005 (mean 0.006, n=30, 90% CI) ≤ limit 0.011")
    assert ok.endswith("severity 0")
    nan = float("nan")
    few = explain(
        p.signals[0],
        value=nan,
        lower=nan,
        upper=nan,
        count=3,
        min_samples=8,
        confidence=0.9,
        severity=0.0,
    )
    assert few == "error_rate: Inconclusive, 3 samples < minSamples 8; severity 0"
    breach = explain(
        p.signals[1],
        value=nan,
        lower=nan,
        upper=nan,
        count=0,
        min_samples=8,
        confidence=0.9,
        severity=1.0,
    )
    assert breach == "accuracy: no samples in the window; severity 1 (onMissingData Breach)"
