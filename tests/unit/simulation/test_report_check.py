"""``simulate --check``: when a policy counts as worse than a baseline; JSON rounding."""

from __future__ import annotations

import json
from typing import Any

from rollguard.simulation.metrics import (
    Detection,
    Estimate,
    Metrics,
    PolicyInfo,
    ScenarioResult,
    SimulationResult,
)
from rollguard.simulation.report import check, round_floats, to_json


def est(value: float | None, low: float | None = None, high: float | None = None) -> Estimate:
    return Estimate(
        value=value, low=value if low is None else low, high=value if high is None else high
    )


ZERO = Estimate(value=0.0, low=0.0, high=0.0)
P50 = Estimate(value=120.0, low=120.0, high=120.0)


def metrics(*, fr: Estimate = ZERO, missed: Estimate = ZERO, p50: Estimate = P50) -> Metrics:
    return Metrics(
        seeds=100,
        episodes=100,
        detected=100,
        detection_seconds=Detection(p50=p50, p90=est(200.0), mean=est(130.0)),
        false_rollback_rate=fr,
        missed_regression_rate=missed,
        impact_avoided=est(10.0),
        impact_avoided_fraction=est(0.9),
        actions_per_run=est(1.0),
        escalations_per_run=est(0.0),
    )


def result(**scenarios: Metrics) -> SimulationResult:
    return SimulationResult(
        policy=PolicyInfo(risk_tier="medium", mode="Enforce", spec_hash="sha256:x"),
        seed=0,
        seeds=100,
        resamples=1000,
        confidence=0.95,
        scenarios=[
            ScenarioResult(name=n, description="", representative_seed=0, metrics=m)
            for n, m in scenarios.items()
        ],
        overall=metrics(),
    )


BASE = result(burst=metrics(fr=est(0.02, 0.0, 0.05), missed=est(0.1, 0.05, 0.16)))


def test_same_result_is_not_worse() -> None:
    assert check(BASE, BASE) == []


def test_rates_inside_the_baseline_interval_are_not_worse() -> None:
    new = result(burst=metrics(fr=est(0.05), missed=est(0.16), p50=est(144.0)))
    assert check(new, BASE) == []


def test_false_rollback_rate_above_the_upper_bound_is_worse() -> None:
    new = result(burst=metrics(fr=est(0.06), missed=est(0.1)))
    assert check(new, BASE) == [
        "burst: false-rollback rate rose to 0.06 (baseline 0.02, CI upper bound 0.05)"
    ]


def test_missed_rate_above_the_upper_bound_is_worse() -> None:
    [line] = check(result(burst=metrics(missed=est(0.2))), BASE)
    assert line.startswith("burst: missed-regression rate rose to 0.2")


def test_median_detection_more_than_20_percent_slower_is_worse() -> None:
    [line] = check(result(burst=metrics(p50=est(150.0))), BASE)
    assert line == "burst: median detection time rose to 150s (baseline 120s, more than +20%)"
    [line] = check(result(burst=metrics(p50=est(None))), BASE)
    assert "nothing detected any more" in line


def test_a_scenario_missing_from_the_new_run_is_reported() -> None:
    assert check(result(other=metrics()), BASE) == ["burst: scenario missing from the new run"]


def test_json_floats_are_rounded_to_six_significant_digits_in_stable_order() -> None:
    assert round_floats({"a": 1 / 3, "b": [123456789.0, float("nan")], "c": 7}) == {
        "a": 0.333333,
        "b": [123457000.0, None],
        "c": 7,
    }
    text = to_json(BASE)
    assert text == to_json(BASE)
    doc: dict[str, Any] = json.loads(text)
    assert list(doc["scenarios"][0]["metrics"]) == [f.alias for f in Metrics.model_fields.values()]
