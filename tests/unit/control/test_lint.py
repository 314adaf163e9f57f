"""`rollguard lint`: a policy file checked offline with the operator's own checks; every
problem named by its field, in the words of the Invalid condition and the other commands;
how each query runs; exit 0 when valid, 2 when not, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollguard.cli import main
from rollguard.control.policy_context import PolicyInvalid, load
from rollguard.files.loading import InputError, parse_policy
from rollguard.signals.promql import plan

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
LINT_DOCS = EXAMPLES.parent / "docs" / "concepts" / "simulation.md"
FRAUD = EXAMPLES / "fraud" / "policy.yaml"
UNCLOSED = 'sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment"}[1m]'
PER_DEPLOYMENT = (
    'topk(1, sum by (pod) (rate(model_revenue_total{namespace="$namespace",'
    'deployment="$deployment"}[1m])))'
)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def fraud() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(FRAUD.read_text())
    return doc


def write(tmp_path: Path, doc: dict[str, Any], name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def verdicts(out: str) -> list[str]:
    return [line for line in out.splitlines() if ": valid: " in line or ": invalid: " in line]


def example_policies() -> list[Path]:
    """Every file under examples/ holding a RollbackPolicy object."""
    found = []
    for path in sorted(EXAMPLES.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        docs = list(yaml.safe_load_all(path.read_text()))
        if any(isinstance(d, dict) and d.get("kind") == "RollbackPolicy" for d in docs):
            found.append(path)
    return found


def test_examples_hold_the_policies_this_file_expects() -> None:
    assert {p.relative_to(EXAMPLES).as_posix() for p in example_policies()} >= {
        "fraud/policy.yaml",
        "recommender/policy.yaml",
        "scenarios/policy.yaml",
    }


@pytest.mark.parametrize("path", example_policies(), ids=lambda p: p.parent.name)
def test_every_example_policy_lints_clean(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["lint", str(path)], capsys)
    assert (code, err) == (0, "")
    *signal_lines, verdict = out.splitlines()
    names = [s["name"] for s in yaml.safe_load(path.read_text())["spec"]["signals"]]
    assert [line.split()[0] for line in signal_lines] == names
    assert verdict.startswith(f"{path}: valid: {len(names)} signals")
    assert all(len(line) <= 100 for line in out.splitlines())


def test_all_example_policies_together_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in example_policies()]
    code, out, _ = run(["lint", *paths], capsys)
    assert code == 0
    assert [line.split(": valid: ")[0] for line in verdicts(out)] == paths


def test_json_of_a_valid_policy_is_exactly_signals_and_problems(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["lint", str(FRAUD), "--json"], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "signals": [
            {"name": "error_rate", "query": "Batched", "reason": ""},
            {"name": "latency_p99", "query": "Batched", "reason": ""},
            {"name": "approved_value_per_minute", "query": "Batched", "reason": ""},
        ],
        "problems": [],
    }


def test_a_query_that_cannot_be_batched_is_information_not_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = fraud()
    doc["spec"]["signals"][2]["query"] = PER_DEPLOYMENT
    path = write(tmp_path, doc)
    reason = plan(PER_DEPLOYMENT).reason
    assert reason

    code, out, _ = run(["lint", str(path)], capsys)
    assert code == 0
    assert f"approved_value_per_minute  PerDeployment: {reason}" in out
    assert out.splitlines()[-1] == f"{path}: valid: 3 signals, 2 batched, 1 per deployment"

    code, out, _ = run(["lint", str(path), "--json"], capsys)
    assert code == 0
    assert json.loads(out)["signals"][2] == {
        "name": "approved_value_per_minute",
        "query": "PerDeployment",
        "reason": reason,
    }


def test_an_invalid_query_names_the_field_as_the_invalid_condition_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = fraud()
    doc["spec"]["signals"][1]["query"] = UNCLOSED
    path = write(tmp_path, doc)

    code, out, err = run(["lint", str(path), "--json"], capsys)
    assert (code, err) == (2, "")
    found = json.loads(out)
    assert [s["name"] for s in found["signals"]] == ["error_rate", "approved_value_per_minute"]
    (problem,) = found["problems"]
    assert problem.startswith("spec.signals[1].query (latency_p99): ")
    # The operator's Invalid condition says the same, its path starting inside spec.
    doc["metadata"]["namespace"] = "ml"
    with pytest.raises(PolicyInvalid) as invalid:
        load(doc)
    assert problem == f"spec.{invalid.value}"

    code, out, _ = run(["lint", str(path)], capsys)
    assert code == 2
    assert out.splitlines()[-1] == f"{path}: invalid: 1 problem"
    assert "latency_p99  " not in out


def test_every_problem_is_reported_schema_and_queries_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = fraud()
    doc["spec"]["signals"][0]["critical"] = "high"
    doc["spec"]["signals"][1]["objectiv"] = {"max": 1}
    doc["spec"]["signals"][2]["query"] = UNCLOSED
    doc["spec"]["evaluation"] = {"minSamples": "ten"}
    path = write(tmp_path, doc)

    code, out, _ = run(["lint", str(path), "--json"], capsys)
    assert code == 2
    found = json.loads(out)
    problems = found["problems"]
    assert problems[:3] == [
        "spec.evaluation.minSamples: Input should be a valid integer, unable to parse string "
        "as an integer",
        "spec.signals[0].critical: Input should be a valid number, unable to parse string as "
        "a number",
        "spec.signals[1].objectiv: unknown field",
    ]
    assert len(problems) == 4
    assert problems[3].startswith("spec.signals[2].query (approved_value_per_minute): ")
    # A schema error elsewhere in a signal does not stop its query being planned.
    assert [s["name"] for s in found["signals"]] == ["error_rate", "latency_p99"]

    # Beside the file, as one lints one's own: the lines name it as given, whatever the
    # temporary directory's length.
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["lint", path.name], capsys)
    assert code == 2
    assert out.splitlines()[-1] == f"{path.name}: invalid: 4 problems"
    assert all(len(line) <= 100 for line in out.splitlines())


def test_a_query_refused_by_the_schema_is_not_reported_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = fraud()
    doc["spec"]["signals"][0]["query"] = ""
    code, out, _ = run(["lint", str(write(tmp_path, doc)), "--json"], capsys)
    assert code == 2
    (problem,) = json.loads(out)["problems"]
    assert problem.startswith("spec.signals[0].query: String should have at least 1 character")


def test_a_policy_invalid_only_under_its_tier_defaults_reads_as_the_other_commands_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = fraud()
    doc["spec"]["triggers"] = [{"action": "Rollback", "minScore": 0.01, "sustainedFor": "0s"}]
    path = write(tmp_path, doc)
    code, out, _ = run(["lint", str(path), "--json"], capsys)
    assert code == 2
    found = json.loads(out)
    (problem,) = found["problems"]
    assert problem.startswith("spec.triggers[0].minScore: 0.01 must be above clearBelow")
    with pytest.raises(InputError) as refused:
        parse_policy(doc, source="policy.yaml")
    assert str(refused.value) == f"policy.yaml: {problem}"
    # The queries are still checked and planned.
    assert len(found["signals"]) == 3


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"spec: [unclosed\n", "policy.yaml line 2: invalid YAML: "),
        (b"\xff\xfe not text", "/policy.yaml: not UTF-8 text"),
        (b"- just\n- a list\n", "policy.yaml: expected a RollbackPolicy object, got list"),
        (
            b"apiVersion: apps/v1\nkind: Deployment\n",
            "policy.yaml: kind: expected RollbackPolicy, got 'Deployment'",
        ),
    ],
    ids=["not-yaml", "not-text", "not-an-object", "another-kind"],
)
def test_a_file_that_is_not_a_policy_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, problem: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(content)

    code, out, err = run(["lint", str(path)], capsys)
    assert (code, out) == (2, "")
    assert "Traceback" not in err
    assert err.count("\n") == 1
    assert err.startswith("error: ") and problem in err

    code, out, err = run(["lint", str(path), "--json"], capsys)
    assert (code, err) == (2, "")
    found = json.loads(out)
    assert found["signals"] == []
    (line,) = found["problems"]
    assert problem in line and "policy.yaml" in line


def test_a_missing_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    code, out, err = run(["lint", str(missing)], capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {missing}: cannot read: No such file or directory\n"

    code, out, err = run(["lint", str(missing), "--json"], capsys)
    assert (code, err) == (2, "")
    assert json.loads(out) == {
        "signals": [],
        "problems": [f"{missing}: cannot read: No such file or directory"],
    }


def test_several_files_map_each_path_to_its_object_and_exit_2_if_any_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = fraud()
    doc["spec"]["signals"][1]["query"] = UNCLOSED
    bad = write(tmp_path, doc, "bad.yaml")
    missing = tmp_path / "nope.yaml"

    code, out, _ = run(["lint", str(FRAUD), str(bad), str(missing), "--json"], capsys)
    assert code == 2
    found = json.loads(out)
    assert list(found) == [str(FRAUD), str(bad), str(missing)]
    assert found[str(FRAUD)]["problems"] == []
    assert len(found[str(bad)]["problems"]) == 1
    assert found[str(missing)]["signals"] == []

    code, out, err = run(["lint", str(FRAUD), str(bad), str(missing)], capsys)
    assert code == 2
    assert verdicts(out) == [
        f"{FRAUD}: valid: 3 signals, 3 batched, 0 per deployment",
        f"{bad}: invalid: 1 problem",
    ]
    assert err == f"error: {missing}: cannot read: No such file or directory\n"

    code, _, _ = run(["lint", str(FRAUD), str(FRAUD)], capsys)
    assert code == 0


def test_lint_needs_a_policy_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["lint"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: rollguard lint: the following arguments are required: POLICY")


def test_the_documented_example_is_what_lint_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    section = LINT_DOCS.read_text().split("## Linting a policy\n", 1)[1]
    shown = section.split("then a verdict:\n\n```\n", 1)[1].split("```", 1)[0]
    doc = fraud()
    doc["spec"]["signals"][0]["critical"] = 0.008
    doc["spec"]["signals"][1]["query"] = (
        "histogram_quantile(0.99, sum by (le) (rate(model_request_duration_seconds_bucket"
        '{namespace="$namespace",deployment="$deployment"}[1m])'
    )
    doc["spec"]["signals"][2]["query"] = (
        'topk(1, sum by (pod) (rate(model_revenue_total{namespace="$namespace",'
        'deployment="$deployment"}[1m]))) * 60'
    )
    (tmp_path / "policies").mkdir()
    write(tmp_path / "policies", doc, "fraud.yaml")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["lint", "policies/fraud.yaml"], capsys)
    assert code == 2
    assert out == shown
