"""`rollguard inventory` from objects: every ModelDeployment with what governance needs, and the
ones without a Ready policy named."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml

from rollguard.governance.inventory import inventory, to_csv, to_json, to_markdown

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _load(path: Path, namespace: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    doc["metadata"]["namespace"] = namespace
    doc.update(extra)
    return doc


READY = {
    "conditions": [{"type": "Ready", "status": "True"}, {"type": "Invalid", "status": "False"}]
}


def _objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    fraud_policy = _load(EXAMPLES / "fraud" / "policy.yaml", "fraud", status=READY)
    fraud = _load(
        EXAMPLES / "fraud" / "modeldeployment.yaml", "fraud",
        status={"phase": "Healthy", "currentRevision": 3, "lastDecision": "fraud-scorer-1a",
                "approvedRevisions": [{"revision": 1, "source": "spec"}, {"revision": 3, "source": "bake"}]},
    )  # fmt: skip
    recs = _load(EXAMPLES / "recommender" / "modeldeployment.yaml", "shop")  # no policy at all
    broken_policy = _load(EXAMPLES / "recommender" / "policy.yaml", "other")
    broken_policy["metadata"]["name"] = "broken"
    broken_policy["status"] = {
        "conditions": [{"type": "Invalid", "status": "True", "message": "signals[0].query: bad"}]
    }
    orphan = _load(EXAMPLES / "recommender" / "modeldeployment.yaml", "other")
    orphan["spec"]["policyRef"] = {"name": "broken"}
    return [recs, fraud, orphan], [fraud_policy, broken_policy]


def test_rows_carry_owners_tier_figures_signals_revisions_and_policy_state() -> None:
    rows = inventory(*_objects())
    assert [(r.namespace, r.name) for r in rows] == [
        ("fraud", "fraud-scorer"), ("other", "recommender"), ("shop", "recommender"),
    ]  # fmt: skip
    fraud = rows[0]
    assert fraud.model == "card-fraud-gbm 1.4.2"
    assert "payments-risk-ml (model-owner)" in fraud.owners
    assert fraud.riskTier == "high"
    assert fraud.business.startswith("420,000 EUR/h; 1,800,000 customers")
    assert (
        fraud.signals
        == "error_rate <= 0.005; latency_p99 <= 0.25; approved_value_per_minute >= 100"
    )
    assert fraud.approvedRevisions == "1 (spec), 3 (bake)"
    assert (fraud.currentRevision, fraud.phase, fraud.lastDecision) == (
        "3",
        "Healthy",
        "fraud-scorer-1a",
    )
    assert fraud.policyState == "Ready"
    assert rows[1].policyState == "Invalid: signals[0].query: bad"
    assert rows[2].policyState == "Missing" and rows[2].policy == "shop/recommender-low"


def test_a_policy_that_does_not_even_parse_is_invalid_with_the_reason() -> None:
    mdeps, policies = _objects()
    policies[0]["spec"]["signals"][0]["objective"] = {"max": 0.1, "min": 0.0}
    (fraud,) = [r for r in inventory(mdeps, policies) if r.name == "fraud-scorer"]
    assert fraud.policyState.startswith("Invalid: RollbackPolicy fraud/fraud-high")
    assert "objective" in fraud.policyState


def test_markdown_csv_and_json_agree() -> None:
    rows = inventory(*_objects())
    md = to_markdown(rows)
    assert md.count("\n| ") == 3  # a row each (the header opens the text, the separator is "|---")
    assert "3 ModelDeployment(s); 2 without a Ready policy." in md
    assert "- shop/recommender: policy shop/recommender-low Missing" in md
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [r["name"] for r in parsed] == [r.name for r in rows]
    assert json.loads(to_json(rows))["items"][0]["riskTier"] == "high"
    assert parsed[0]["business"] == rows[0].business
