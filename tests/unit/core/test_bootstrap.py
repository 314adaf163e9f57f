"""Percentile-bootstrap intervals: right width on known distributions, honest coverage."""

from __future__ import annotations

import numpy as np
import pytest

from rollguard.core.statistics import bootstrap


def test_resample_counts_draw_n_with_replacement() -> None:
    counts = bootstrap.resample_counts(np.random.default_rng(1), 50, 400)
    assert counts.shape == (400, 50)
    assert (counts.sum(axis=1) == 50).all()
    # Each seed is drawn once per resample on average.
    assert counts.mean() == pytest.approx(1.0)
    again = bootstrap.resample_counts(np.random.default_rng(1), 50, 400)
    np.testing.assert_array_equal(counts, again)


def test_mean_interval_matches_the_normal_theory_width() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(10.0, 2.0, size=2000)
    counts = bootstrap.resample_counts(np.random.default_rng(8), x.size, 2000)
    value, low, high = bootstrap.mean(x, counts, 0.95)
    assert value == pytest.approx(x.mean())
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert low < value < high


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    hits = 0
    trials = 300
    for _ in range(trials):
        x = rng.exponential(1.0, size=200)
        counts = bootstrap.resample_counts(rng, x.size, 500)
        _, low, high = bootstrap.mean(x, counts, 0.95)
        hits += low <= 1.0 <= high
    assert 0.90 <= hits / trials <= 0.98


def test_quantile_interval_covers_the_true_median() -> None:
    rng = np.random.default_rng(3)
    true_median = np.log(2.0)  # exponential(1)
    hits = 0
    trials = 200
    for _ in range(trials):
        x = rng.exponential(1.0, size=300)
        counts = bootstrap.resample_counts(rng, x.size, 500)
        [(value, low, high)] = bootstrap.quantiles(x, np.arange(x.size), counts, [0.5], 0.95)
        assert value == np.quantile(x, 0.5, method="inverted_cdf")
        hits += low <= true_median <= high
    assert 0.88 <= hits / trials <= 0.99


def test_items_are_resampled_with_their_seed() -> None:
    # Seed 0 owns two items, seed 1 one; a resample drawing seed 0 twice sees four items.
    values = np.array([1.0, 2.0, 10.0])
    owner = np.array([0, 0, 1])
    counts = np.array([[2, 0], [0, 2], [1, 1]])
    stats = bootstrap._weighted_quantiles(
        np.sort(values), counts[:, owner].astype(float), np.array([0.5, 1.0])
    )
    np.testing.assert_array_equal(stats, [[1.0, 2.0], [10.0, 10.0], [2.0, 10.0]])
    value, _, _ = bootstrap.weighted_mean(values, owner, counts, 0.5)
    assert value == pytest.approx(13 / 3)


def test_ratio_and_empty_inputs_are_undefined_not_errors() -> None:
    counts = bootstrap.resample_counts(np.random.default_rng(0), 3, 100)
    value, low, high = bootstrap.ratio(np.zeros(3), np.zeros(3), counts, 0.95)
    assert np.isnan(value) and np.isnan(low) and np.isnan(high)
    value, low, high = bootstrap.ratio(np.array([1.0, 0, 0]), np.ones(3), counts, 0.95)
    assert value == pytest.approx(1 / 3)
    assert 0.0 <= low <= value <= high <= 1.0
    assert all(
        np.isnan(
            bootstrap.quantiles(np.zeros(0), np.zeros(0, dtype=np.int64), counts, [0.5], 0.95)[0]
        )
    )
