"""Signal and category names: identifiers (``error_rate``) and DNS-label style names
(``error-rate``, ``p99-latency``) work everywhere a name appears — the policy file, the tier
resolver, the operator's policy loading and query plans, recorded series, scenarios and the
CRD schema — and anything else is refused naming the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollguard.api.base import SIGNAL_NAME_PATTERN
from rollguard.api.crd import render_crds
from rollguard.api.policy import RollbackPolicySpec
from rollguard.cli import main
from rollguard.control.policy_context import load
from rollguard.core import tiers
from rollguard.files.loading import InputError, load_policy, parse_policy
from rollguard.simulation.scenarios import load_scenarios

ERRORS = (
    'sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment",code=~"5.."}'
    '[1m])) / sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment"}[1m]))'
)
LATENCY = (
    "histogram_quantile(0.99, sum by (le) (rate(model_request_duration_seconds_bucket"
    '{namespace="$namespace",deployment="$deployment"}[1m])))'
)


def hyphenated_policy() -> dict[str, Any]:
    return {
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RollbackPolicy",
        "metadata": {"name": "recommender", "namespace": "ml"},
        "spec": {
            "riskTier": "medium",
            "evaluation": {"interval": "30s", "window": "5m", "minSamples": 10},
            "signals": [
                {
                    "name": "error-rate",
                    "query": ERRORS,
                    "objective": {"max": 0.01},
                    "margin": {"absolute": 0.005},
                    "critical": 0.05,
                },
                {
                    "name": "p99-latency",
                    "query": LATENCY,
                    "objective": {"max": 0.3},
                    "margin": {"relative": 0.2},
                    "critical": 1.0,
                },
            ],
            "impact": {
                "categories": [
                    {
                        "name": "customer-experience",
                        "weight": 3,
                        "signals": {"error-rate": 1.0, "p99-latency": 1.0},
                    },
                    {"name": "revenue", "weight": 1, "signals": {"error-rate": 0.5}},
                ]
            },
            "triggers": [{"action": "Rollback", "minScore": 0.3, "sustainedFor": "1m"}],
            "clearBelow": 0.05,
        },
    }


def write_policy(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_policy_with_hyphenated_signal_and_category_names_loads_and_resolves(
    tmp_path: Path,
) -> None:
    policy = load_policy(path=write_policy(tmp_path, hyphenated_policy()))
    assert [s.name for s in policy.signals] == ["error-rate", "p99-latency"]
    category = policy.impact.categories[0]
    assert category.name == "customer-experience"
    assert category.signals == {"error-rate": 1.0, "p99-latency": 1.0}
    resolved = tiers.resolve(RollbackPolicySpec.model_validate(hyphenated_policy()["spec"]))
    assert resolved == policy
    assert tiers.spec_hash(resolved) == tiers.spec_hash(policy)


def test_a_resolver_refusal_names_the_hyphenated_signal_as_a_field_of_spec() -> None:
    doc = edited(("signals", 1, "critical"), 0.35)
    del doc["spec"]["signals"][1]["margin"]  # the tier's 20% puts the limit at 0.36
    with pytest.raises(InputError) as err:
        parse_policy(doc, source="p.yaml")
    assert str(err.value).startswith("p.yaml: spec.signals[p99-latency].critical: "), err.value


def test_the_operator_plans_queries_under_hyphenated_signal_names() -> None:
    doc = hyphenated_policy()
    doc["metadata"] |= {"generation": 1, "uid": "u"}
    context = load(doc)
    assert set(context.plans) == {"error-rate", "p99-latency"}
    assert [q.signal for q in (p.status(n) for n, p in context.plans.items())] == [
        "error-rate",
        "p99-latency",
    ]


def test_simulate_series_runs_on_hyphenated_signal_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["timestamp,signal,value,regression"]
    for k in range(120):
        bad = int(k >= 40)
        lines += [
            f"{15 * k},error-rate,{0.002 + 0.08 * bad},{bad}",
            f"{15 * k},p99-latency,0.15,{bad}",
        ]
    series = tmp_path / "series.csv"
    series.write_text("\n".join(lines) + "\n")
    policy = write_policy(tmp_path, hyphenated_policy())
    code = main(["simulate", "--policy", str(policy), "--series", str(series), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["actions"][0]["action"] == "Rollback"
    assert doc["actions"][0]["falseRollback"] is False
    assert doc["detectionDelaySeconds"] > 0


def test_simulate_scenarios_run_on_hyphenated_signal_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = {
        "name": "error-burst",
        "duration": "1h",
        "sampleInterval": "15s",
        "signals": {
            "error-rate": {"baseline": 0.003, "noise": {"sigma": 0.001}, "floor": 0},
            "p99-latency": {"baseline": 0.16, "noise": {"sigma": 0.01}, "floor": 0},
        },
        "events": [
            {
                "kind": "regression",
                "start": "20m",
                "shape": "step",
                "magnitude": {"error-rate": 0.08},
                "curable": True,
            }
        ],
    }
    path = tmp_path / "burst.yaml"
    path.write_text(yaml.safe_dump(scenario))
    policy = write_policy(tmp_path, hyphenated_policy())
    assert load_scenarios(paths=[path], policy=load_policy(path=policy))[0].signals is not None
    argv = ["simulate", "--policy", str(policy), "--scenarios", str(path)]
    code = main([*argv, "--seeds", "5", "--resamples", "50", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["scenarios"][0]["metrics"]["detected"] == 5


BAD_NAMES = [
    "error-rate-",
    "9lives",
    "-rate",
    "_rate",
    "error rate",
    "error.rate",
    "érror",
    "a" * 64,
]


def edited(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    doc = hyphenated_policy()
    node: Any = doc["spec"]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda n: edited(("signals", 0, "name"), n), "spec.signals[0].name: "),
        (
            lambda n: edited(("impact", "categories", 0, "name"), n),
            "spec.impact.categories[0].name: ",
        ),
        (
            lambda n: edited(("impact", "categories", 1, "signals"), {n: 1.0}),
            "spec.impact.categories[1].signals: ",
        ),
    ],
    ids=["signal", "category", "category-signal-key"],
)
def test_a_name_that_is_not_a_letter_then_letters_digits_underscores_or_hyphens_is_refused(
    name: str, make: Any, field: str
) -> None:
    with pytest.raises(InputError) as err:
        parse_policy(make(name), source="p.yaml")
    message = str(err.value)
    assert message.startswith(f"p.yaml: {field}"), message
    assert "at most 63 characters" in message or "do not end with '-'" in message, message


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def test_the_crd_schema_carries_the_name_pattern_for_names_and_category_keys() -> None:
    crd = yaml.safe_load(render_crds()["rollguard.dev_rollbackpolicies.yaml"])
    found = strings(crd)
    assert found.count(SIGNAL_NAME_PATTERN) == 2  # signal and category names
    assert any(f"k.matches('{SIGNAL_NAME_PATTERN}')" in s for s in found)  # category keys
    good = ["error_rate", "error-rate", "p99-latency", "customer-experience", "x", "a" * 63]
    assert all(re.fullmatch(SIGNAL_NAME_PATTERN, n) for n in good)
    assert not any(re.fullmatch(SIGNAL_NAME_PATTERN, n) for n in BAD_NAMES[:-1])
