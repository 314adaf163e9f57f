"""Scoring many windows at once (the simulator's path) gives exactly the numbers of scoring each
window alone (the operator's and replay's path), bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from factory import awkward_series, bits

from rollguard.api.policy import EffectivePolicy
from rollguard.core.engine import Measurements, evaluate, evaluate_rows
from rollguard.core.statistics.sample_rows import SampleRows, rows_stats
from rollguard.core.statistics.windows import window_stats
from rollguard.files.loading import load_policy
from rollguard.simulation import scenario_run as simrun
from rollguard.simulation.scenarios import Scenario, load_scenario

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"
FIELDS = ("count", "mean", "std", "lower", "upper", "conclusive")


@pytest.fixture(scope="module")
def policy() -> EffectivePolicy:
    return load_policy(path=EXAMPLES / "policy.yaml")


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e154, 1e307])
@pytest.mark.parametrize("spacing", ["even", "uneven"])
def test_many_windows_over_rows_equal_each_window_alone(scale: float, spacing: str) -> None:
    rng = np.random.default_rng(int(scale > 1) * 7 + len(spacing))
    n_t, n_m, n_s, width = 200, 9, 2, 17
    values = awkward_series(rng, (n_t, n_m, n_s), scale)
    mask = rng.random(values.shape) > 0.1
    mask[40:80] = True  # a stretch where only non-finite values are invalid
    starts = (
        np.arange(0, n_t - width, 3)
        if spacing == "even"
        else np.sort(rng.choice(n_t - width, 25, replace=False))
    )
    many = rows_stats(SampleRows.of(values, mask), starts, width, min_samples=4, confidence=0.95)
    for j, start in enumerate(starts):
        window = slice(start, start + width)
        alone = window_stats(
            np.moveaxis(values[window], 0, -1),
            np.moveaxis(mask[window], 0, -1),
            min_samples=4,
            confidence=0.95,
        )
        for name in FIELDS:
            assert bits(getattr(many, name)[j]) == bits(getattr(alone, name)), (name, j)


def test_all_valid_windows_take_the_same_bits_as_masked_ones() -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(5.0, 2.0, (60, 4, 3))
    starts = np.arange(0, 40, 2)
    clean = rows_stats(
        SampleRows.of(values, np.ones(values.shape, np.bool_)),
        starts,
        20,
        min_samples=3,
        confidence=0.9,
    )
    # One masked sample far outside the windows switches the rows to the masked path.
    mask = np.ones(values.shape, np.bool_)
    mask[-1, 0, 0] = False
    masked = rows_stats(SampleRows.of(values, mask), starts, 20, min_samples=3, confidence=0.9)
    for name in FIELDS:
        assert bits(getattr(clean, name)) == bits(getattr(masked, name)), name


def test_a_wide_batch_sums_row_by_row_with_the_bits_of_a_narrow_one() -> None:
    rng = np.random.default_rng(3)
    values = awkward_series(rng, (1100, 2, 12), 1.0)
    mask = rng.random(values.shape) > 0.2
    wide = window_stats(values, mask, min_samples=2, confidence=0.95)  # one add per sample
    for b in range(0, 1100, 37):
        narrow = window_stats(values[b : b + 1], mask[b : b + 1], min_samples=2, confidence=0.95)
        for name in FIELDS:
            assert bits(getattr(wide, name)[b]) == bits(getattr(narrow, name)[0]), (name, b)


def test_scores_of_many_evaluation_times_equal_each_evaluation_alone(
    policy: EffectivePolicy,
) -> None:
    rng = np.random.default_rng(5)
    n_t, width = 120, 20
    base = np.array([0.01, 0.3, 100.0])
    values = base * (1.0 + rng.normal(0.0, 0.8, (n_t, 2, 5, 3)))
    values[rng.random(values.shape) < 0.03] = np.nan
    mask = rng.random(values.shape) > 0.3
    starts = np.arange(0, n_t - width, 4)
    many = evaluate_rows(policy, SampleRows.of(values, mask), starts, width)
    for j, start in enumerate(starts):
        window = slice(start, start + width)
        alone = evaluate(
            policy,
            Measurements(
                values=np.moveaxis(values[window], 0, -1).reshape(10, 3, width),
                mask=np.moveaxis(mask[window], 0, -1).reshape(10, 3, width),
                available=np.ones((10, 3), np.bool_),
            ),
        )
        assert bits(many.score[j].reshape(10)) == bits(alone.score)
        assert bits(many.severity[j].reshape(10, 3)) == bits(alone.severity)
        assert bits(many.category_severity[j].reshape(10, -1)) == bits(alone.category_severity)


@pytest.mark.parametrize("name", ["error-burst", "flapping", "latency-regression", "missing-data"])
def test_a_run_does_not_depend_on_how_many_evaluation_times_are_scored_at_once(
    policy: EffectivePolicy, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario: Scenario = load_scenario(path=EXAMPLES / f"{name}.yaml", policy=policy)
    seeds = [4, 5, 6]
    blocked = simrun.run_scenario(policy, scenario, seeds, keep_series=True)
    # One evaluation time per block and per span of composed rows: every action's effect on
    # later samples is seen through recomposition alone, never through rescoring a block.
    monkeypatch.setattr(simrun, "_BLOCK_CELLS", 1)
    monkeypatch.setattr(simrun, "_SPAN_BLOCKS", 1)
    single = simrun.run_scenario(policy, scenario, seeds, keep_series=True)
    assert blocked.executed.any()
    for field in ("score", "score_counterfactual", "fired", "blocked", "executed", "active"):
        assert bits(getattr(blocked, field)) == bits(getattr(single, field)), field
    assert blocked.values is not None and single.values is not None
    assert bits(blocked.values) == bits(single.values)
