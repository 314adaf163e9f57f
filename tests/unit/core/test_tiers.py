"""Risk-tier defaults, the resolver's field-by-field merge, its validation, and the spec hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from factory import ONE_SIGNAL, policy_of, spec_of

from rollguard.api.policy import EffectivePolicy
from rollguard.api.signal import Margin
from rollguard.core.tiers import (
    TIERS,
    canonical_json,
    default_bake_time,
    resolve,
    spec_hash,
    tier_table_markdown,
)

NO_MARGIN_SIGNAL: dict[str, Any] = {
    **ONE_SIGNAL,
    "signals": [{"name": "error_rate", "query": "q", "objective": {"max": 0.01}, "critical": 0.05}],
}


@pytest.mark.parametrize("tier", ["low", "medium", "high", "critical"])
def test_omitted_settings_come_from_the_tier(tier: str) -> None:
    p = policy_of(NO_MARGIN_SIGNAL, riskTier=tier)
    d = TIERS[tier]  # type: ignore[index]
    assert p.mode == "Enforce"
    assert (p.evaluation.interval, p.evaluation.window) == (d.interval, d.window)
    assert (p.evaluation.min_samples, p.evaluation.confidence) == (d.min_samples, d.confidence)
    assert p.signals[0].margin == Margin(relative=d.margin_relative)
    assert p.triggers == list(d.triggers)
    assert p.clear_below == d.clear_below
    assert p.safety.cooldown == d.cooldown
    assert p.safety.max_actions_per_window == d.budget
    assert p.authorization.auto_approve == d.auto_approve
    assert p.authorization.approvers == []
    assert (p.authorization.approval_timeout, p.authorization.on_timeout) == (
        d.approval_timeout,
        "Reject",
    )
    assert (p.validation.rollout_timeout, p.validation.window) == (
        d.rollout_timeout,
        d.validation_window,
    )


def test_tier_values_match_the_documented_table() -> None:
    high = TIERS["high"]
    assert (high.interval, high.window, high.min_samples, high.confidence) == ("15s", "2m", 8, 0.9)
    assert [(t.action, t.min_score, t.sustained_for) for t in high.triggers] == [
        ("Rollback", 0.7, "0s"),
        ("Rollback", 0.4, "2m"),
        ("Hold", 0.15, "2m"),
    ]
    critical = TIERS["critical"]
    assert critical.auto_approve.actions == ["Pause", "Hold"]
    assert critical.auto_approve.max_score == 0.5
    assert (critical.budget.count, critical.budget.window) == (3, "1h")
    assert TIERS["low"].margin_relative == 0.5
    assert TIERS["medium"].approval_timeout == "2h"


def test_partial_evaluation_override_keeps_the_other_tier_settings() -> None:
    p = policy_of(riskTier="low", evaluation={"interval": "5s"})
    assert p.evaluation.interval == "5s"
    assert p.evaluation.window == "10m"
    assert p.evaluation.min_samples == 10


def test_partial_auto_approve_override_merges_field_by_field() -> None:
    p = policy_of(authorization={"autoApprove": {"maxScore": 0.3}, "approvers": ["alice"]})
    auto = p.authorization.auto_approve
    assert auto.max_score == 0.3
    assert auto.actions == ["Rollback", "Pause", "Hold"]
    assert auto.max_revisions_back == 1
    assert p.authorization.approvers == ["alice"]
    assert p.authorization.approval_timeout == "1h"


def test_given_triggers_are_used_as_given_in_user_order() -> None:
    given = [
        {"action": "Hold", "minScore": 0.2, "sustainedFor": "1m"},
        {"action": "Rollback", "minScore": 0.9, "sustainedFor": "0s"},
    ]
    p = policy_of(triggers=given)
    assert [(t.action, t.min_score) for t in p.triggers] == [("Hold", 0.2), ("Rollback", 0.9)]


def test_zero_and_empty_values_are_choices_not_omissions() -> None:
    p = policy_of(
        clearBelow=0.0,
        safety={"cooldown": "0s", "maxActionsPerWindow": {"count": 0, "window": "1h"}},
        authorization={"autoApprove": {"actions": [], "maxRevisionsBack": 0}},
    )
    assert p.clear_below == 0.0
    assert p.safety.cooldown == "0s"
    assert p.safety.max_actions_per_window.count == 0
    assert p.authorization.auto_approve.actions == []
    assert p.authorization.auto_approve.max_revisions_back == 0


def test_a_given_margin_is_kept() -> None:
    assert policy_of().signals[0].margin == Margin(absolute=0.0)


def test_critical_inside_the_tier_margin_is_refused_naming_the_field() -> None:
    # low tier: relative margin 0.5 -> limit 0.015; critical 0.012 lies inside it.
    doc = {**NO_MARGIN_SIGNAL, "riskTier": "low"}
    doc["signals"] = [{**doc["signals"][0], "critical": 0.012}]
    with pytest.raises(ValueError, match=r"signals\[error_rate\]\.critical: .*0\.015.*tier low"):
        resolve(spec_of(doc))
    # The same signal is fine under the high tier (limit 0.011).
    assert resolve(spec_of(doc, riskTier="high")).signals[0].critical == 0.012


def test_min_objective_critical_must_lie_below_objective_minus_margin() -> None:
    doc = {
        **ONE_SIGNAL,
        "riskTier": "low",
        "signals": [{"name": "acc", "query": "q", "objective": {"min": 0.9}, "critical": 0.5}],
        "impact": {"categories": [{"name": "market", "weight": 1, "signals": {"acc": 1}}]},
    }
    with pytest.raises(ValueError, match=r"signals\[acc\]\.critical: .*below objective\.min"):
        resolve(spec_of(doc))  # limit 0.9 - 0.45 = 0.45


def test_a_trigger_at_or_below_clear_below_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"triggers\[2\]\.minScore: 0\.15 must be above clearBelow"
    ):
        resolve(spec_of(clearBelow=0.15))


def test_min_samples_beyond_what_a_decision_records_is_refused() -> None:
    with pytest.raises(ValueError, match=r"evaluation\.minSamples: 301"):
        resolve(spec_of(evaluation={"minSamples": 301}))


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"interval": "0s"}, r"evaluation\.interval: 0s is shorter than 1s"),
        ({"interval": "500ms"}, r"evaluation\.interval: 500ms is shorter than 1s"),
        ({"window": "0s"}, r"evaluation\.window: must be longer than 0s"),
    ],
)
def test_an_interval_or_window_too_short_to_mean_anything_is_refused(
    evaluation: dict[str, Any], message: str
) -> None:
    # A zero interval would make the operator's evaluation loop spin without pause.
    with pytest.raises(ValueError, match=message):
        resolve(spec_of(evaluation=evaluation))


def test_a_critical_so_far_beyond_the_limit_that_the_span_overflows_is_refused() -> None:
    signal = {**ONE_SIGNAL["signals"][0], "objective": {"max": -1e308}, "critical": 1.7e308}
    with pytest.raises(ValueError, match=r"signals\[error_rate\]\.critical: .* overflows"):
        resolve(spec_of(signals=[signal]))


def test_spec_hash_is_sha256_of_canonical_json() -> None:
    p = policy_of()
    text = canonical_json(p)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert spec_hash(p) == "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_spec_hash_is_stable_across_a_json_round_trip_and_changes_with_the_policy() -> None:
    p = policy_of()
    again = EffectivePolicy.model_validate_json(p.model_dump_json(by_alias=True))
    assert spec_hash(again) == spec_hash(p)
    assert spec_hash(policy_of(clearBelow=0.01)) != spec_hash(p)


def test_default_bake_time_per_tier() -> None:
    assert [default_bake_time(t) for t in ("low", "medium", "high", "critical")] == [
        "1h",
        "2h",
        "4h",
        "24h",
    ]


def test_tier_table_markdown_renders_every_row_from_the_tier_data() -> None:
    table = tier_table_markdown()
    lines = table.strip().splitlines()
    assert lines[0] == "| setting | low | medium | high | critical |"
    assert len(lines) == 2 + 15
    assert "| evaluation.recentSamples | 4 | 4 | 3 | 3 |" in lines
    assert "| evaluation.confidence | 0.99 | 0.95 | 0.90 | 0.80 |" in lines
    assert (
        "| triggers | Rollback ≥0.8 for 5m; Rollback ≥0.5 for 30m; Hold ≥0.2 for 10m | "
        "Rollback ≥0.8 for 2m; Rollback ≥0.5 for 10m; Hold ≥0.2 for 5m | "
        "Rollback ≥0.7 for 0s; Rollback ≥0.4 for 2m; Hold ≥0.15 for 2m | "
        "Rollback ≥0.5 for 0s; Rollback ≥0.25 for 1m; Hold ≥0.1 for 1m |"
    ) in lines
    assert "| safety.maxActionsPerWindow | 1 per 6h | 2 per 6h | 2 per 1h | 3 per 1h |" in lines
    assert "maxScore 0.5, [Pause, Hold], 1 back |" in table
    assert "| bakeTime (ModelDeployment) | 1h | 2h | 4h | 24h |" in lines
