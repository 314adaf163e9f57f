"""Key signals (``signals[].key``, Keptn's "key SLI"): a key signal at severity 1 sets the impact
score to exactly 1 whatever the weights; an Inconclusive one forces nothing. The decision, its
reason, ``rollguard explain`` and the playbook say so; replay and every scoring layout keep the
bits; a policy without key signals keeps its score and its spec hash.

KEYED: two signals with limit 0 and critical 1 (a constant value v has severity min(v, 1));
``p99_latency`` is key and drives only a category of weight 0.001, ``error_rate`` one of
weight 1. High tier: Rollback >= 0.7 at once, autoApprove maxScore 0.8.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from factory import T0, bits, constant, policy_of
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from rollguard.api.base import TargetRef
from rollguard.api.decision import RevisionContext, RevisionInfo, RollbackDecisionSpec, Samples
from rollguard.api.modeldeployment import GuardState
from rollguard.api.policy import EffectivePolicy
from rollguard.commands import explain_text
from rollguard.core.audit import evidence_json
from rollguard.core.decide import DecisionDraft, build_spec, decide, policy_snapshot
from rollguard.core.engine import (
    Measurements,
    evaluate,
    evaluate_rows,
    initial_state,
    state_to_arrays,
    step,
)
from rollguard.core.replay import replay
from rollguard.core.samples import measurements_from_samples
from rollguard.core.scoring import ImpactModel, key_forced
from rollguard.core.statistics.sample_rows import SampleRows
from rollguard.core.tiers import canonical_json, spec_hash
from rollguard.governance.playbook import PlaybookSource, render_playbook

PROPS = settings(max_examples=150, deadline=None, derandomize=True, database=None)
GOLDEN = Path(__file__).parent.parent / "golden" / "decision.yaml"


def _signal(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "query": "q",
        "objective": {"max": 0.0},
        "margin": {"absolute": 0.0},
        "critical": 1.0,
        **extra,
    }


def keyed(key: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "riskTier": "high",
        "signals": [_signal("p99_latency", key=key, **extra), _signal("error_rate")],
        "impact": {
            "categories": [
                {"name": "customerExperience", "weight": 0.001, "signals": {"p99_latency": 1}},
                {"name": "revenue", "weight": 1, "signals": {"error_rate": 1}},
            ]
        },
    }


KEYED = keyed()
PLAIN = keyed(key=False)


def score(doc: dict[str, Any], m: Measurements) -> np.ndarray:
    p = policy_of(doc)
    return step(p, m, initial_state(p, m.values.shape[0]), now=T0).score


def test_a_key_signal_at_severity_one_scores_exactly_one_whatever_its_weight() -> None:
    # At critical, and far beyond it (severity capped at 1).
    m = constant([[1.0, 0.0], [7.0, 0.0], [1.0, 0.3]])
    assert_array_equal(score(KEYED, m), [1.0, 1.0, 1.0])
    # The weights alone say almost nothing.
    assert (score(PLAIN, m)[:2] < 0.001).all()


def test_a_key_signal_below_severity_one_leaves_the_weighted_score() -> None:
    m = constant([[0.99, 0.0], [0.5, 0.2], [0.0, 0.0]])
    forced_free = score(KEYED, m)
    assert bits(forced_free) == bits(score(PLAIN, m))
    assert forced_free[0] == pytest.approx(0.001 * 0.99 / 1.001)


def test_an_inconclusive_key_signal_forces_nothing() -> None:
    no_samples = constant([[np.nan, 0.5]])
    assert bits(score(KEYED, no_samples)) == bits(score(PLAIN, no_samples))
    assert score(KEYED, no_samples)[0] == pytest.approx(0.5 / 1.001)
    # A failed query, even over samples that would be at severity 1.
    failed = constant([[1.0, 0.5]])
    failed = Measurements(failed.values, failed.mask, np.array([[False, True]]))
    assert bits(score(KEYED, failed)) == bits(score(PLAIN, failed))


def test_a_key_signal_missing_under_breach_counts_as_severity_one_and_forces() -> None:
    m = constant([[np.nan, 0.0]])
    assert score(keyed(onMissingData="Breach"), m)[0] == 1.0
    assert score(keyed(onMissingData="Inconclusive"), m)[0] == 0.0


@st.composite
def key_cases(draw: st.DrawFn) -> tuple[dict[str, Any], np.ndarray]:
    n_signals = draw(st.integers(1, 4))
    names = [f"s{i}" for i in range(n_signals)]
    signals = [
        _signal(
            n,
            key=draw(st.booleans()),
            onMissingData=draw(st.sampled_from(["Inconclusive", "Breach"])),
        )
        for n in names
    ]
    categories = [
        {
            "name": f"c{c}",
            "weight": draw(st.floats(0.1, 5.0) if c == 0 else st.floats(0.0, 5.0)),
            "signals": {n: draw(st.floats(0.0, 3.0)) for n in names},
        }
        for c in range(draw(st.integers(1, 3)))
    ]
    value = st.one_of(
        st.just(1.0), st.just(np.nan), st.floats(0.0, 2.0, allow_nan=False), st.just(0.0)
    )
    values = np.array(
        [[draw(value) for _ in names] for _ in range(6)], dtype=np.float64
    )  # 6 members
    return {"riskTier": "high", "signals": signals, "impact": {"categories": categories}}, values


def _weighted_mean(
    policy: EffectivePolicy, categories: np.ndarray, unknown: np.ndarray
) -> list[float]:
    """The plain weighted mean, written out in Python floats in the documented order."""
    weights = [c.weight for c in policy.impact.categories]
    total = 0.0
    for w in weights:
        total += w
    out: list[float] = []
    for row, nan in zip(categories.tolist(), unknown.tolist(), strict=True):
        acc = 0.0
        for w, severity in zip(weights, row, strict=True):
            acc += w * severity
        out.append(float("nan") if nan else min(max(acc / total, 0.0), 1.0))
    return out


@PROPS
@given(key_cases())
def test_without_key_signals_the_score_is_the_plain_weighted_mean(
    case: tuple[dict[str, Any], np.ndarray],
) -> None:
    doc, values = case
    plain_doc = copy.deepcopy(doc)
    for s in plain_doc["signals"]:
        s["key"] = False
    plain = policy_of(plain_doc)
    shape = (2, len(plain.signals))
    assert key_forced(ImpactModel.of(plain), np.ones(shape), np.zeros(shape, np.bool_)) is None
    ev = evaluate(plain, constant(values))
    unknown = ev.inconclusive.all(axis=-1)
    assert_array_equal(ev.score, _weighted_mean(plain, ev.category_severity, unknown))


@PROPS
@given(key_cases())
def test_a_key_signal_forces_exactly_one_where_it_is_conclusive_at_severity_one(
    case: tuple[dict[str, Any], np.ndarray],
) -> None:
    doc, values = case
    policy = policy_of(doc)
    plain_doc = copy.deepcopy(doc)
    for s in plain_doc["signals"]:
        s["key"] = False
    ev = evaluate(policy, constant(values))
    weighted = evaluate(policy_of(plain_doc), constant(values)).score
    key = np.array([s.key for s in policy.signals])
    forcing = (key & ~ev.inconclusive & (ev.severity == 1.0)).any(axis=-1)
    assert_array_equal(ev.score, np.where(forcing, 1.0, weighted))


@pytest.mark.parametrize("recent", [None, 10])
def test_many_evaluation_times_equal_each_evaluation_alone_with_a_key_signal(
    recent: int | None,
) -> None:
    p = policy_of(KEYED, evaluation={"recentSamples": recent} if recent else None)
    rng = np.random.default_rng(17)
    n_t, width, members = 160, 20, 6
    values = np.stack(
        [rng.normal(1.0, 0.3, (n_t, members)), rng.normal(0.2, 0.2, (n_t, members))], axis=-1
    )
    values[rng.random(values.shape) < 0.03] = np.nan
    mask = rng.random(values.shape) > 0.2
    mask[:, 0, 0] = rng.random(n_t) > 0.8  # member 0's key signal is mostly Inconclusive
    starts = np.arange(0, n_t - width, 3)
    many = evaluate_rows(p, SampleRows.of(values, mask), starts, width)
    forced = many.score == 1.0
    assert forced.any() and not forced.all(), "the data must force some scores and not others"
    for j, start in enumerate(starts):
        window = slice(start, start + width)
        alone = evaluate(
            p,
            Measurements(
                values=np.moveaxis(values[window], 0, -1),
                mask=np.moveaxis(mask[window], 0, -1),
                available=np.ones((members, 2), np.bool_),
            ),
        )
        assert bits(many.score[j]) == bits(alone.score), j
        assert bits(many.severity[j]) == bits(alone.severity), j


ONE_BACK = RevisionContext(
    current=7,
    history=[
        RevisionInfo(revision=7, template_hash="h7", approved=False),
        RevisionInfo(revision=6, template_hash="h6", approved=True, source="spec"),
    ],
)


def _samples(value: float, n: int = 20) -> Samples:
    return Samples(timestamps=[T0 - 6.0 * i for i in reversed(range(n))], values=[value] * n)


def decision(doc: dict[str, Any], latency: float, errors: float) -> DecisionDraft:
    p = policy_of(doc)
    rows = [_samples(latency), _samples(errors)]
    before = GuardState()
    r = step(p, measurements_from_samples([rows]), state_to_arrays(p, [before]), now=T0)
    return decide(
        p,
        r,
        0,
        samples=rows,
        queries=["q latency", "q errors"],
        revisions=ONE_BACK,
        business=None,
        state_before=before,
        now=T0,
    )


def recorded(doc: dict[str, Any], latency: float, errors: float) -> RollbackDecisionSpec:
    return build_spec(
        decision(doc, latency, errors),
        model_deployment="fraud",
        target=TargetRef.deployment("fraud"),
        policy=policy_snapshot(name="p", namespace="ml", generation=1, effective=policy_of(doc)),
        operator_version="0.1.0",
    )


def test_the_decision_records_and_explains_the_key_signal_that_forced_the_score() -> None:
    d = decision(KEYED, latency=1.5, errors=0.0)
    assert d.impact.score == 1.0
    assert d.impact.forced_by == ["p99_latency"]
    assert d.recommended.reason.startswith(
        "Rollback 7 → 6: score 1.00: key signal p99_latency at severity 1.00 (the weighted mean "
        "(customerExperience 0.001x1.00 + revenue 1x0.00) / 1.001 = 0.00 does not count once a "
        "key signal reaches severity 1); trigger 0 (Rollback): score 1.00 ≥ 0.7"
    )


def test_a_score_the_weights_decide_records_no_key_signal() -> None:
    d = decision(KEYED, latency=0.9, errors=0.9)
    assert d.impact.forced_by == []
    assert d.recommended.reason.startswith("Rollback 7 → 6: score 0.90 = (customerExperience")
    spec = recorded(KEYED, latency=0.9, errors=0.9)
    assert "forcedBy" not in spec.wire()["impact"]


def test_a_decision_forced_by_a_key_signal_replays_bit_for_bit() -> None:
    spec = recorded(KEYED, latency=1.5, errors=0.1)
    assert spec.impact.forced_by == ["p99_latency"]
    result = replay(spec)
    assert result.differences == []
    assert result.recomputed == spec
    wire = RollbackDecisionSpec.model_validate_json(spec.model_dump_json(by_alias=True))
    assert replay(wire).same


def test_a_recorded_key_signal_that_did_not_force_is_found_on_replay() -> None:
    spec = recorded(KEYED, latency=1.5, errors=0.1)
    forged = spec.model_copy(update={"impact": spec.impact.model_copy(update={"forced_by": []})})
    assert "impact.forcedBy: recorded None, replayed ['p99_latency']" in replay(forged).differences


def test_explain_says_a_key_signal_forced_the_score() -> None:
    spec = recorded(KEYED, latency=1.5, errors=0.1)
    obj = {"metadata": {"namespace": "ml", "name": "d1"}, "spec": spec.wire()}
    text = explain_text(obj)
    assert "Impact forced to 1 by key signal(s) p99_latency at severity 1" in text
    assert "    p99_latency (key)" in text
    assert "score 1.00: key signal p99_latency at severity 1.00" in text
    plain = recorded(PLAIN, latency=1.5, errors=0.9)
    assert "Impact = weighted mean of category severities:" in explain_text(
        {"metadata": {"namespace": "ml", "name": "d2"}, "spec": plain.wire()}
    )


def test_the_spec_hash_changes_only_when_a_signal_is_key() -> None:
    omitted = copy.deepcopy(KEYED)
    del omitted["signals"][0]["key"]
    assert spec_hash(policy_of(omitted)) == spec_hash(policy_of(PLAIN))
    assert '"key"' not in canonical_json(policy_of(PLAIN))
    assert spec_hash(policy_of(KEYED)) != spec_hash(policy_of(PLAIN))
    assert '"key":true' in canonical_json(policy_of(KEYED))


def test_a_decision_recorded_before_key_signals_keeps_its_hashes() -> None:
    spec = RollbackDecisionSpec.model_validate(yaml.safe_load(GOLDEN.read_text())["spec"])
    assert spec_hash(spec.policy.effective) == spec.policy.spec_hash
    evidence = evidence_json(spec)
    assert '"key"' not in evidence and "forcedBy" not in evidence


def test_the_playbook_names_the_key_signals() -> None:
    source = PlaybookSource(name="p", namespace="ns", spec_hash="X", descriptions={})
    text = render_playbook(policy_of(KEYED), source)
    assert "| `p99_latency` | — | at most 0 | 0 (margin 0) | 1 | Inconclusive | yes |" in text
    assert "| `error_rate` | — | at most 0 | 0 (margin 0) | 1 | Inconclusive | — |" in text
    assert "Key signals: `p99_latency`. When a key signal's severity reaches 1" in text
    assert "Key signals" not in render_playbook(policy_of(PLAIN), source)
