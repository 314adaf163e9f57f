"""Student t quantiles and window statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from rollguard.core.statistics.student_t import t_cdf, t_quantile, t_two_sided
from rollguard.core.statistics.windows import window_stats

# Published quantiles of Student's t (P(T <= t) = p).
KNOWN = [
    (0.90, 1, 3.077684),
    (0.90, 5, 1.475884),
    (0.90, 10, 1.372184),
    (0.95, 1, 6.313752),
    (0.95, 2, 2.919986),
    (0.95, 10, 1.812461),
    (0.95, 30, 1.697261),
    (0.975, 1, 12.706205),
    (0.975, 2, 4.302653),
    (0.975, 3, 3.182446),
    (0.975, 4, 2.776445),
    (0.975, 5, 2.570582),
    (0.975, 10, 2.228139),
    (0.975, 20, 2.085963),
    (0.975, 30, 2.042272),
    (0.975, 60, 2.000298),
    (0.975, 100, 1.983972),
    (0.975, 120, 1.979930),
    (0.995, 1, 63.656741),
    (0.995, 2, 9.924843),
    (0.995, 3, 5.840909),
    (0.995, 10, 3.169273),
    (0.995, 30, 2.749996),
    (0.995, 100, 2.625891),
    (0.9995, 5, 6.868827),
    (0.6, 7, 0.263167),
]


@pytest.mark.parametrize(("p", "df", "expected"), KNOWN)
def test_t_quantile_matches_published_tables(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-5)


def test_t_quantile_tends_to_the_normal_quantile_for_many_degrees_of_freedom() -> None:
    assert t_quantile(0.975, 10_000) == pytest.approx(1.960201, abs=1e-5)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 29, 299])
@pytest.mark.parametrize("p", [0.51, 0.8, 0.95, 0.995, 0.9999])
def test_t_cdf_inverts_the_quantile(p: float, df: int) -> None:
    assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-13)


@pytest.mark.parametrize(("t", "df"), [(0.3, 1), (2.0, 3), (1.5, 6), (3.0, 25)])
def test_t_cdf_agrees_with_numerical_integration_of_the_density(t: float, df: int) -> None:
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    x = np.linspace(0.0, t, 20_001)
    pdf = c * (1 + x * x / df) ** (-(df + 1) / 2)
    area = float(np.sum((pdf[:-1] + pdf[1:]) / 2 * np.diff(x)))  # trapezoid
    assert t_cdf(t, df) == pytest.approx(0.5 + area, abs=1e-8)


def test_t_quantile_is_symmetric_with_zero_median() -> None:
    assert t_quantile(0.5, 4) == 0.0
    assert t_quantile(0.05, 4) == pytest.approx(-t_quantile(0.95, 4), rel=1e-14)
    assert t_two_sided(0.9, 4) == pytest.approx(t_quantile(0.95, 4), rel=1e-14)


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.9, 0), (0.9, -2)])
def test_t_quantile_refuses_impossible_arguments(p: float, df: int) -> None:
    with pytest.raises(ValueError):
        t_quantile(p, df)


def test_mean_std_and_interval_are_the_textbook_ones() -> None:
    s = window_stats(
        np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]]),
        np.ones((1, 1, 5), dtype=bool),
        min_samples=3,
        confidence=0.95,
    )
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert s.count[0, 0] == 5
    assert s.mean[0, 0] == 3.0
    assert s.std[0, 0] == pytest.approx(math.sqrt(2.5), rel=1e-15)
    assert_allclose([s.lower[0, 0], s.upper[0, 0]], [3 - half, 3 + half], rtol=1e-14)
    assert s.conclusive[0, 0]


def test_masked_and_non_finite_samples_are_ignored() -> None:
    values = np.array([[[1.0, 100.0, np.nan, 3.0, np.inf]]])
    mask = np.array([[[True, False, True, True, True]]])
    s = window_stats(values, mask, min_samples=1, confidence=0.9)
    assert s.count[0, 0] == 2
    assert s.mean[0, 0] == 2.0


def test_fewer_samples_than_min_samples_is_inconclusive_without_numbers() -> None:
    s = window_stats(
        np.ones((1, 2, 4)), np.ones((1, 2, 4), dtype=bool), min_samples=5, confidence=0.9
    )
    assert_array_equal(s.conclusive, [[False, False]])
    assert_array_equal(s.count, [[4, 4]])
    assert np.isnan(s.mean).all()
    assert np.isnan(s.lower).all()
    assert np.isnan(s.upper).all()


def test_a_single_sample_with_min_samples_one_is_its_own_interval() -> None:
    s = window_stats(
        np.array([[[0.25, 9.0]]]), np.array([[[True, False]]]), min_samples=1, confidence=0.99
    )
    assert s.conclusive[0, 0]
    assert (s.lower[0, 0], s.mean[0, 0], s.upper[0, 0]) == (0.25, 0.25, 0.25)
    assert np.isnan(s.std[0, 0])


def test_an_empty_window_is_inconclusive() -> None:
    s = window_stats(
        np.zeros((2, 3, 0)), np.zeros((2, 3, 0), dtype=bool), min_samples=1, confidence=0.9
    )
    assert_array_equal(s.count, np.zeros((2, 3)))
    assert not s.conclusive.any()


def test_padding_and_holes_do_not_change_a_single_bit() -> None:
    rng = np.random.default_rng(5)
    samples = rng.normal(0.3, 0.1, 37) * 10 ** rng.uniform(-3, 3, 37)
    alone = window_stats(
        samples[None, None, :], np.ones((1, 1, 37), dtype=bool), min_samples=2, confidence=0.95
    )
    padded = np.full((3, 1, 300), 7.0)
    mask = np.zeros((3, 1, 300), dtype=bool)
    where = np.sort(rng.choice(300, 37, replace=False))
    padded[1, 0, where] = samples
    mask[1, 0, where] = True
    padded[0, 0, :] = rng.normal(size=300)
    mask[0, 0, :] = True
    batch = window_stats(padded, mask, min_samples=2, confidence=0.95)
    for field in ("mean", "std", "lower", "upper"):
        assert getattr(batch, field)[1, 0].tobytes() == getattr(alone, field)[0, 0].tobytes()
