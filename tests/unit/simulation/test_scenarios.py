"""Scenario files: validation with one-line errors, and deterministic series generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rollguard.files.loading import InputError, load_policy
from rollguard.simulation.generate import (
    compose,
    effect_factor,
    generate_noise,
    sample_times,
    shifts,
)
from rollguard.simulation.scenarios import Scenario, load_scenario, load_scenarios, parse_scenario

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"
LIBRARY = [
    "healthy-noisy",
    "error-burst",
    "latency-regression",
    "slow-drift",
    "business-metric-drop",
    "low-traffic",
    "missing-data",
    "flapping",
    "recovery",
]


def base_doc(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "t",
        "duration": "1h",
        "sampleInterval": "15s",
        "signals": {
            "error_rate": {
                "baseline": 0.01,
                "noise": {"model": "gaussian", "sigma": 0.002},
                "autocorrelation": 0.5,
                "floor": 0,
            },
            "latency_p99": {"baseline": 0.2, "noise": {"model": "lognormal", "sigma": 0.1}},
        },
        "events": [],
    }
    doc.update(extra)
    return doc


def test_every_library_scenario_loads_against_the_example_policy() -> None:
    policy = load_policy(path=EXAMPLES / "policy.yaml")
    scenarios = load_scenarios(paths=[EXAMPLES], policy=policy)
    assert sorted(s.name for s in scenarios) == sorted(LIBRARY)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"duration": "1 hour"}, "t.yaml: duration: String should match pattern"),
        ({"colour": "red"}, "t.yaml: colour: unknown field"),
        ({"traffic": 0}, "t.yaml: traffic: Input should be greater than 0"),
        (
            {"events": [{"kind": "regression", "start": "10m", "magnitude": {"nope": 1}}]},
            "t.yaml: events[0]: unknown signal nope",
        ),
        (
            {"events": [{"kind": "recovery", "start": "10m", "magnitude": {"error_rate": 1}}]},
            "t.yaml: events[0]: a recovery needs end",
        ),
        (
            {
                "events": [
                    {
                        "kind": "regression",
                        "start": "10m",
                        "shape": "ramp",
                        "magnitude": {"error_rate": 1},
                    }
                ]
            },
            "t.yaml: events[0]: shape ramp needs rampFor",
        ),
        (
            {"events": [{"kind": "regression", "start": "2h", "magnitude": {"error_rate": 1}}]},
            "t.yaml: events[0]: starts at or after the end",
        ),
        (
            {
                "events": [
                    {
                        "kind": "flapping",
                        "start": "1m",
                        "period": "5m",
                        "onFor": "6m",
                        "magnitude": {"error_rate": 1},
                    }
                ]
            },
            "t.yaml: events[0]: onFor (6m) must be between 0s and period",
        ),
        (
            {"events": [{"kind": "gap", "start": "1m", "samples": "many"}]},
            "t.yaml: events[0].samples: Input should be a valid integer",
        ),
        ({"events": [{"kind": "outage", "start": "1m"}]}, "t.yaml: events[0]:"),
    ],
)
def test_invalid_scenario_gives_one_line_error_naming_the_field(
    change: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InputError) as err:
        parse_scenario(base_doc(**change), source="t.yaml")
    assert str(err.value).startswith(expected), str(err.value)
    assert "\n" not in str(err.value)


def test_scenario_signals_must_match_the_policy(tmp_path: Path) -> None:
    policy = load_policy(path=EXAMPLES / "policy.yaml")
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(base_doc()))
    with pytest.raises(
        InputError,
        match=r"^t.yaml: signals: no generator for policy signal "
        r"revenue_per_minute$",
    ):
        load_scenario(path=path, policy=policy)
    doc = base_doc()
    doc["signals"]["revenue_per_minute"] = {"baseline": 1, "noise": {"sigma": 1}}
    doc["signals"]["cpu"] = {"baseline": 1, "noise": {"sigma": 1}}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=r"^t.yaml: signals.cpu: not a signal of the policy"):
        load_scenario(path=path, policy=policy)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsignals: [\n")
    with pytest.raises(InputError, match=r"^bad.yaml line \d+: invalid YAML"):
        load_scenario(path=path)


def scenario(**extra: Any) -> Scenario:
    return Scenario.model_validate(base_doc(**extra))


def test_generated_noise_is_deterministic_per_seed_and_independent_of_the_batch() -> None:
    sc = scenario()
    signals = ["error_rate", "latency_p99"]
    a = generate_noise(sc, signals, [3, 4, 5])
    b = generate_noise(sc, signals, [5])
    c = generate_noise(sc, signals, [3, 4, 5])
    np.testing.assert_array_equal(a.noise, c.noise)
    np.testing.assert_array_equal(a.noise[2], b.noise[0])
    assert not np.allclose(a.noise[0], a.noise[1])


def test_noise_has_the_requested_autocorrelation_sigma_and_traffic_scaling() -> None:
    sc = scenario(duration="24h")
    noise = generate_noise(sc, ["error_rate", "latency_p99"], list(range(8))).noise
    x = noise[:, 0]
    assert x.std() == pytest.approx(0.002, rel=0.05)
    lag1 = np.mean([np.corrcoef(row[:-1], row[1:])[0, 1] for row in x])
    assert lag1 == pytest.approx(0.5, abs=0.03)
    # Log-normal noise is multiplicative and mean-preserving.
    assert noise[:, 1].mean() == pytest.approx(1.0, abs=0.01)
    quiet = generate_noise(scenario(duration="24h", traffic=0.04), ["error_rate"], [0]).noise
    assert quiet[0, 0].std() == pytest.approx(0.002 * 5, rel=0.05)


def test_effect_shapes_gaps_and_flapping() -> None:
    sc = scenario(
        events=[
            {
                "kind": "regression",
                "start": "10m",
                "shape": "ramp",
                "rampFor": "10m",
                "magnitude": {"error_rate": 0.1},
            },
            {
                "kind": "flapping",
                "start": "30m",
                "end": "40m",
                "period": "4m",
                "onFor": "1m",
                "magnitude": {"latency_p99": 1.0},
            },
            {"kind": "gap", "start": "5m", "samples": 4, "signals": ["latency_p99"]},
        ]
    )
    t = sample_times(sc)
    ramp, flap = sc.effects
    f = effect_factor(sc, ramp, t, np.inf)
    assert f[t == 600].item() == 0.0
    assert f[t == 900].item() == pytest.approx(0.5)
    assert f[t == 1800].item() == 1.0
    frozen = effect_factor(sc, ramp, t, 900.0)
    assert frozen[t == 1800].item() == pytest.approx(0.5)
    g = effect_factor(sc, flap, t, np.inf)
    assert g[t == 1800].item() == 1.0 and g[t == 1860].item() == 0.0
    assert g[t == 2040].item() == 1.0 and g[t == 2400].item() == 0.0
    gen = generate_noise(sc, ["error_rate", "latency_p99"], [1])
    missing = ~gen.present[0]
    assert missing[1, 20:24].all() and missing.sum() == 4
    live = np.ones((1, 2, t.size), dtype=np.bool_)
    values = compose(
        sc,
        ["error_rate", "latency_p99"],
        gen.noise,
        shifts(sc, ["error_rate", "latency_p99"], t, live, np.full((1, 2), np.inf)),
    )
    assert values.min() >= 0.0  # floor
    assert values[0, 0, t >= 1200].mean() == pytest.approx(0.11, abs=0.002)
