"""A policy with several problems names every one of them: one line per problem for a person
reading a file's errors, and one bounded line for a status condition or a table cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rollguard.api.policy import RollbackPolicySpec
from rollguard.control.policy_context import PolicyInvalid, load
from rollguard.files.loading import (
    STATUS_MESSAGE_LIMIT,
    InputError,
    format_validation_error,
    parse_policy,
    validation_summary,
)
from rollguard.governance.inventory import inventory

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
POLICY = EXAMPLES / "scenarios" / "policy.yaml"
THREE_FIELDS = (
    "spec.evaluation.minSamples",
    "spec.signals[0].critical",
    "spec.signals[1].objectiv",
)


def three_problems() -> dict[str, Any]:
    """The example policy with a wrong type, another wrong type and an unknown field."""
    doc: dict[str, Any] = yaml.safe_load(POLICY.read_text())
    doc["spec"]["evaluation"]["minSamples"] = "ten"
    doc["spec"]["signals"][0]["critical"] = "high"
    doc["spec"]["signals"][1]["objectiv"] = {"max": 1}
    return doc


def spec_error(spec: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        RollbackPolicySpec.model_validate(spec)
    return err.value


def test_a_file_with_three_problems_lists_each_field_path_on_its_own_line() -> None:
    with pytest.raises(InputError) as err:
        parse_policy(three_problems(), source="policy.yaml")
    head, *lines = str(err.value).splitlines()
    assert head == "policy.yaml: 3 problems:"
    assert [line.split(": ", 1)[0] for line in lines] == [f"  {f}" for f in THREE_FIELDS]
    assert lines[0].endswith(
        "Input should be a valid integer, unable to parse string as an integer"
    )
    assert lines[2] == "  spec.signals[1].objectiv: unknown field"


def test_a_file_with_one_problem_keeps_it_on_one_line() -> None:
    doc = three_problems()
    doc["spec"]["evaluation"]["minSamples"] = 10
    doc["spec"]["signals"][1].pop("objectiv")
    error = spec_error(doc["spec"])
    assert format_validation_error("policy.yaml", error, prefix="spec") == (
        "policy.yaml: spec.signals[0].critical: Input should be a valid number, "
        "unable to parse string as a number"
    )


def test_the_operator_marks_a_policy_invalid_with_every_problem_in_one_line() -> None:
    with pytest.raises(PolicyInvalid) as err:
        load(three_problems())
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("3 problems: evaluation.minSamples: ")
    positions = [message.index(f"{f.removeprefix('spec.')}: ") for f in THREE_FIELDS]
    assert positions == sorted(positions)
    assert "more)" not in message


def test_a_status_message_with_very_many_problems_is_cut_and_counts_the_rest() -> None:
    doc = three_problems()
    signal = doc["spec"]["signals"][0]
    doc["spec"]["signals"] = [
        {**signal, "name": f"signal-{i}", "critical": "x" * 100} for i in range(32)
    ]
    error = spec_error(doc["spec"])
    message = validation_summary(error, prefix="spec")
    assert len(message) <= STATUS_MESSAGE_LIMIT
    assert message.startswith("33 problems: spec.evaluation.minSamples: ")
    shown = message.count("; ") + 1
    assert message.endswith(f" ({33 - shown} more)")
    assert 1 < shown < 33


def test_a_status_message_whose_first_problem_alone_is_too_long_is_cut() -> None:
    error = spec_error(three_problems()["spec"])
    message = validation_summary(error, prefix="spec", limit=60)
    assert len(message) == 60
    assert message.startswith("3 problems: spec.evaluation.minSamples: ")
    assert message.endswith("... (2 more)")


def test_the_inventory_shows_every_problem_of_a_policy_in_one_cell() -> None:
    policy = three_problems()
    mdep = yaml.safe_load((EXAMPLES / "recommender" / "modeldeployment.yaml").read_text())
    mdep["metadata"]["namespace"] = policy["metadata"]["namespace"]
    mdep["spec"]["policyRef"] = {"name": policy["metadata"]["name"]}
    (row,) = inventory([mdep], [policy])
    assert "\n" not in row.policyState
    assert row.policyState.startswith("Invalid: ")
    assert "3 problems: " in row.policyState
    assert all(f in row.policyState for f in THREE_FIELDS)
