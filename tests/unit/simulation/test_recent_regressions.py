"""evaluation.recentSamples: the newest samples of a window tested on their own, next to the
whole window. Same bits in every layout, the false-alarm rate of one test, and a step change
seen sooner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from factory import ONE_SIGNAL, T0, awkward_series, bits, policy_of, value_for_score

from rollguard.api.policy import EffectivePolicy
from rollguard.core.engine import (
    Measurements,
    evaluate,
    evaluate_rows,
    initial_state,
    paired_confidence,
    step,
)
from rollguard.core.evidence import explain_signal
from rollguard.core.statistics.sample_rows import SampleRows, newest_rows_stats
from rollguard.core.statistics.windows import newest_window_stats, window_stats
from rollguard.files.loading import load_policy
from rollguard.governance.playbook import playbook_of
from rollguard.simulation import scenario_run as simrun
from rollguard.simulation.scenarios import load_scenario

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"
FIELDS = ("count", "mean", "std", "lower", "upper", "conclusive")


def with_recent(policy: EffectivePolicy, recent: int | None) -> EffectivePolicy:
    evaluation = policy.evaluation.model_copy(update={"recent_samples": recent})
    return policy.model_copy(update={"evaluation": evaluation})


@pytest.mark.parametrize("newest", [1, 3, 8, 17, 40])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e307])
def test_newest_over_rows_equals_each_window_alone(newest: int, scale: float) -> None:
    rng = np.random.default_rng(newest * 13 + int(scale > 1))
    n_t, width = 160, 17
    values = awkward_series(rng, (n_t, 7, 2), scale)
    mask = rng.random(values.shape) > 0.15
    for starts in (
        np.arange(0, n_t - width, 3),
        np.sort(rng.choice(n_t - width, 20, replace=False)),
    ):
        many = newest_rows_stats(
            SampleRows.of(values, mask),
            starts,
            width,
            newest=newest,
            min_samples=2,
            confidence=0.95,
        )
        for j, start in enumerate(starts):
            window = slice(start, start + width)
            alone = newest_window_stats(
                np.moveaxis(values[window], 0, -1),
                np.moveaxis(mask[window], 0, -1),
                newest=newest,
                min_samples=2,
                confidence=0.95,
            )
            for name in FIELDS:
                assert bits(getattr(many, name)[j]) == bits(getattr(alone, name)), (name, j)


def test_the_newest_samples_are_the_newest_valid_ones_and_padding_changes_nothing() -> None:
    rng = np.random.default_rng(2)
    samples = rng.normal(0.3, 0.1, 25)
    compact = newest_window_stats(
        samples[None, None, :], np.ones((1, 1, 25), bool), newest=6, min_samples=2, confidence=0.9
    )
    # The same samples with holes between them and padding after them.
    spread = np.full((1, 1, 80), 9.0)
    mask = np.zeros((1, 1, 80), bool)
    where = np.sort(rng.choice(70, 25, replace=False))
    spread[0, 0, where] = samples
    mask[0, 0, where] = True
    holey = newest_window_stats(spread, mask, newest=6, min_samples=2, confidence=0.9)
    alone = window_stats(
        samples[None, None, -6:], np.ones((1, 1, 6), bool), min_samples=2, confidence=0.9
    )
    for name in FIELDS:
        assert bits(getattr(compact, name)) == bits(getattr(alone, name)), name
        assert bits(getattr(holey, name)) == bits(getattr(alone, name)), name
    assert int(compact.count[0, 0]) == 6


def test_a_wide_batch_and_clean_rows_take_the_narrow_bits() -> None:
    rng = np.random.default_rng(4)
    values = awkward_series(rng, (1100, 2, 12), 1.0)
    mask = rng.random(values.shape) > 0.2
    wide = newest_window_stats(values, mask, newest=5, min_samples=2, confidence=0.95)
    for b in range(0, 1100, 41):
        narrow = newest_window_stats(
            values[b : b + 1], mask[b : b + 1], newest=5, min_samples=2, confidence=0.95
        )
        for name in FIELDS:
            assert bits(getattr(wide, name)[b]) == bits(getattr(narrow, name)[0]), (name, b)
    clean_values = rng.normal(5.0, 2.0, (60, 4, 3))
    starts = np.arange(0, 40, 2)
    clean = newest_rows_stats(
        SampleRows.of(clean_values, np.ones(clean_values.shape, bool)),
        starts,
        20,
        newest=7,
        min_samples=3,
        confidence=0.9,
    )
    mask = np.ones(clean_values.shape, bool)
    mask[-1, 0, 0] = False  # outside every window: switches the rows to the masked path
    masked = newest_rows_stats(
        SampleRows.of(clean_values, mask), starts, 20, newest=7, min_samples=3, confidence=0.9
    )
    for name in FIELDS:
        assert bits(getattr(clean, name)) == bits(getattr(masked, name)), name


def test_with_no_more_samples_than_recent_the_newest_are_the_whole_window() -> None:
    rng = np.random.default_rng(8)
    values = awkward_series(rng, (5, 2, 10), 1.0)
    mask = rng.random(values.shape) > 0.3
    whole = window_stats(values, mask, min_samples=2, confidence=0.9)
    newest = newest_window_stats(values, mask, newest=10, min_samples=2, confidence=0.9)
    for name in FIELDS:
        assert bits(getattr(whole, name)) == bits(getattr(newest, name)), name


def test_newest_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        newest_window_stats(np.zeros((1, 1, 3)), np.ones((1, 1, 3), bool), newest=0,
                            min_samples=1, confidence=0.9)  # fmt: skip


def step_window(n: int, changed: int, before: float, after: float, noise: float) -> Measurements:
    """One member, one signal: ``n`` samples around ``before``, the newest ``changed`` of them
    around ``after``."""
    rng = np.random.default_rng(1)
    values = before + noise * rng.standard_normal(n)
    values[n - changed :] = after + noise * rng.standard_normal(changed)
    return Measurements(
        values=values[None, None, :],
        mask=np.ones((1, 1, n), bool),
        available=np.ones((1, 1), bool),
    )


def test_a_step_change_is_judged_on_the_newest_samples_before_it_moves_the_window() -> None:
    policy = policy_of(evaluation={"minSamples": 5, "confidence": 0.9, "recentSamples": 6})
    plain = with_recent(policy, None)
    window = step_window(60, 6, before=0.005, after=0.06, noise=0.002)
    whole = evaluate(plain, window)
    paired = evaluate(policy, window)
    assert float(whole.severity[0, 0]) < float(paired.severity[0, 0])
    assert bool(paired.recent[0, 0]) and not bool(whole.recent[0, 0])
    assert int(paired.stats.count[0, 0]) == 6
    result = step(policy, window, initial_state(policy, 1), now=T0)
    message = explain_signal(policy, result, 0, 0)
    assert "mean of the newest 6 samples" in message
    assert f"{paired_confidence(policy) * 100:.4g}% CI" in message
    assert paired_confidence(policy) == pytest.approx(0.95)


def test_a_quiet_window_is_judged_on_the_whole_window_at_the_paired_confidence() -> None:
    policy = policy_of(evaluation={"minSamples": 5, "confidence": 0.9, "recentSamples": 6})
    window = step_window(60, 6, before=0.05, after=0.005, noise=0.002)
    paired = evaluate(policy, window)
    assert not bool(paired.recent[0, 0])
    assert int(paired.stats.count[0, 0]) == 60
    whole = window_stats(window.values, window.mask, min_samples=5, confidence=0.95)
    assert bits(paired.stats.lower) == bits(whole.lower)


def test_missing_data_is_judged_on_the_whole_window_only() -> None:
    policy = policy_of(
        signals=[
            {
                "name": "error_rate",
                "query": "sum(rate(errors[1m]))",
                "objective": {"max": 0.01},
                "margin": {"absolute": 0.0},
                "critical": 0.11,
                "onMissingData": "Breach",
            }
        ],
        evaluation={"minSamples": 5, "recentSamples": 5},
    )
    few = Measurements(
        values=np.full((1, 1, 3), 0.005), mask=np.ones((1, 1, 3), bool), available=np.ones((1, 1), bool)
    )  # fmt: skip
    assert float(evaluate(policy, few).severity[0, 0]) == 1.0  # Breach, from the whole window
    assert not bool(evaluate(policy, few).recent[0, 0])


def test_the_pair_false_alarms_no_more_often_than_one_test() -> None:
    # Noise centred exactly on the limit (0.01): any severity above 0 is a false alarm.
    rng = np.random.default_rng(12)
    windows, n = 20_000, 30
    noise = 0.01 + 0.003 * rng.standard_normal((windows, 1, n))
    measurements = Measurements(
        values=noise, mask=np.ones(noise.shape, bool), available=np.ones((windows, 1), bool)
    )
    single = with_recent(policy_of(evaluation={"minSamples": 5, "confidence": 0.9}), None)
    paired = with_recent(single, 6)
    one = float((evaluate(single, measurements).severity > 0).mean())
    two = float((evaluate(paired, measurements).severity > 0).mean())
    # One-sided: a 90% interval's lower bound passes the true mean 5% of the time.
    assert one == pytest.approx(0.05, abs=0.006)
    assert two <= 0.05 + 0.006


def test_recent_samples_are_tested_on_their_own_count_and_refused_beyond_what_is_recorded() -> None:
    # Below minSamples is fine: the newest samples need only their own count.
    assert (
        policy_of(evaluation={"minSamples": 5, "recentSamples": 3}).evaluation.recent_samples == 3
    )
    assert policy_of().evaluation.recent_samples == 3  # the tier's default
    with pytest.raises(ValueError, match=r"recentSamples: 400 exceeds the 300 samples"):
        policy_of(evaluation={"recentSamples": 400})
    with pytest.raises(ValueError, match="recentSamples"):
        policy_of(evaluation={"recentSamples": 1})


def test_three_newest_samples_of_a_clear_step_breach_while_the_window_is_mostly_healthy() -> None:
    policy = policy_of(evaluation={"minSamples": 5, "confidence": 0.9})
    healthy, bad = value_for_score(0.0), value_for_score(0.8)
    window = np.array([[[healthy + 0.0005 * (k % 3) for k in range(17)] + [bad, bad * 1.01, bad]]])
    result = evaluate(
        policy, Measurements(window, np.ones_like(window, bool), np.ones((1, 1), bool))
    )
    assert bool(result.recent[0, 0])
    assert float(result.score[0]) > 0.5


def test_many_evaluation_times_with_recent_samples_equal_each_evaluation_alone() -> None:
    policy = with_recent(load_policy(path=EXAMPLES / "policy.yaml"), 10)
    rng = np.random.default_rng(6)
    n_t, width = 100, 20
    base = np.array([0.01, 0.3, 100.0])
    values = base * (1.0 + rng.normal(0.0, 0.8, (n_t, 2, 5, 3)))
    values[60:] *= np.array([6.0, 3.0, 0.3])  # a regression the newest samples see first
    mask = rng.random(values.shape) > 0.2
    starts = np.arange(0, n_t - width, 3)
    many = evaluate_rows(policy, SampleRows.of(values, mask), starts, width)
    assert many.recent.any()
    for j, start in enumerate(starts):
        window = slice(start, start + width)
        alone = evaluate(
            policy,
            Measurements(
                values=np.moveaxis(values[window], 0, -1).reshape(10, 3, width),
                mask=np.moveaxis(mask[window], 0, -1).reshape(10, 3, width),
                available=np.ones((10, 3), bool),
            ),
        )
        assert bits(many.score[j].reshape(10)) == bits(alone.score)
        assert bits(many.recent[j].reshape(10, 3)) == bits(alone.recent)
        assert bits(many.stats.lower[j].reshape(10, 3)) == bits(alone.stats.lower)


def test_a_simulation_with_recent_samples_does_not_depend_on_blocking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = with_recent(load_policy(path=EXAMPLES / "policy.yaml"), 10)
    scenario = load_scenario(path=EXAMPLES / "error-burst.yaml", policy=policy)
    blocked = simrun.run_scenario(policy, scenario, [4, 5], keep_series=True)
    monkeypatch.setattr(simrun, "_BLOCK_CELLS", 1)
    monkeypatch.setattr(simrun, "_SPAN_BLOCKS", 1)
    single = simrun.run_scenario(policy, scenario, [4, 5], keep_series=True)
    assert blocked.executed.any()
    for field in ("score", "score_counterfactual", "fired", "executed"):
        assert bits(getattr(blocked, field)) == bits(getattr(single, field)), field


def test_the_playbook_states_the_newest_samples_test() -> None:
    spec = {**ONE_SIGNAL, "evaluation": {"minSamples": 5, "recentSamples": 6}}
    doc = {"apiVersion": "rollguard.dev/v1alpha1", "kind": "RollbackPolicy", "spec": spec}
    text = playbook_of(doc, source="p.yaml")
    assert "The newest 6 samples are also tested on their own" in text
