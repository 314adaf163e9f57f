"""``kubectl get`` is for people: scores with two decimals, a decision's reason in one short
sentence, and the default columns of a realistic listing within a 120-column terminal.

The table width is computed the way kubectl prints a server-side table: each column as wide
as its widest cell (header included, in bytes) plus 3 spaces of padding and at least 6, the
last column as wide as its widest cell; the names are those of examples/, the decision names
are the ones the operator generates for them."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from rollguard.api.base import LocalObjectRef, NamespacedRef
from rollguard.api.decision import DecisionPhase, Recommendation, RollbackDecisionSpec
from rollguard.api.kinds import KINDS, KindInfo
from rollguard.api.labels import ANNOTATION_PREVIOUS, ANNOTATION_SEQUENCE
from rollguard.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus, Phase
from rollguard.control import reasons
from rollguard.control.members import Member
from rollguard.control.plan import decision_name
from rollguard.control.records import seal
from rollguard.core.display import MAX_REASON, reason_text, score_text

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent.parent / "golden" / "decision.yaml"
TERMINAL = 120
PADDING, MIN_WIDTH = 3, 6  # kubectl's tabwriter
AGE = "5d23h"  # the widest age kubectl prints for an object less than 8 days old
SCORE = 0.7224633288973392


def _golden() -> RollbackDecisionSpec:
    return RollbackDecisionSpec.model_validate(yaml.safe_load(GOLDEN.read_text())["spec"])


# -- the score -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "text"),
    [
        (SCORE, "0.72"),
        (0.726, "0.73"),
        (0.995001, "1.00"),
        (1.0, "1.00"),
        (0.0, "0.00"),
        (-0.0, "0.00"),
        (0.004, "0.00"),
        (0.1, "0.10"),
    ],
)
def test_a_score_is_shown_with_two_decimals_rounded(score: float, text: str) -> None:
    assert score_text(score) == text


@pytest.mark.parametrize("score", [None, math.nan, math.inf])
def test_an_unknown_score_has_no_text(score: float | None) -> None:
    assert score_text(score) is None


def test_an_unknown_score_is_left_out_of_the_status() -> None:
    status = ModelDeploymentStatus.model_validate(
        {"lastEvaluation": {"time": "2026-01-01T00:00:00Z", "score": None}}
    )
    assert "scoreText" not in status.wire()["lastEvaluation"]


# -- the reason ------------------------------------------------------------------------------


def _with(
    spec: RollbackDecisionSpec, *, trigger: dict[str, Any] | None = None, **recommended: Any
) -> RollbackDecisionSpec:
    rec: Recommendation = spec.recommended.model_copy(update=recommended)
    update: dict[str, Any] = {"recommended": rec}
    if trigger:
        update["trigger"] = spec.trigger.model_copy(update=trigger)
    return spec.model_copy(update=update)


def test_a_rollback_reason_names_the_target_and_the_trigger_without_the_arithmetic() -> None:
    spec = _golden()
    assert len(spec.recommended.reason) > 300
    assert reason_text(spec) == "Rollback to revision 3: score 0.85 over 0.7"
    held = _with(spec, trigger={"sustained_seconds": 150.4})
    assert reason_text(held) == "Rollback to revision 3: score 0.85 over 0.7 for 2m30s"


def test_a_score_that_rounds_to_its_threshold_is_shown_with_enough_decimals() -> None:
    spec = _with(_golden(), trigger={"score": 0.7, "min_score": 0.7, "sustained_seconds": 60})
    assert reason_text(spec) == "Rollback to revision 3: score 0.70 at 0.7 for 1m"
    spec = _with(spec, trigger={"score": 0.701})
    assert reason_text(spec) == "Rollback to revision 3: score 0.701 over 0.7 for 1m"


def test_pause_and_hold_reasons() -> None:
    golden = _golden()
    pause = _with(
        golden, action="Pause", to_revision=None, to_template_hash=None, trigger={"action": "Pause"}
    )
    assert reason_text(pause) == "Pause the rollout of revision 4: score 0.85 over 0.7"
    hold = _with(
        golden, action="Hold", to_revision=None, to_template_hash=None, trigger={"action": "Hold"}
    )
    assert reason_text(hold) == "Hold: score 0.85 over 0.7"


def test_a_hold_the_decision_fell_back_to_says_what_was_wanted() -> None:
    golden = _golden()
    unreachable = _with(golden, action="Hold", to_revision=None, to_template_hash=None)
    assert reason_text(unreachable) == "Hold: Rollback wanted, no approved older revision"
    no_rollout = _with(unreachable, trigger={"action": "Pause"})
    assert reason_text(no_rollout) == "Hold: Pause wanted, no rollout in progress"


def test_key_signals_are_named_when_they_fit() -> None:
    golden = _golden()
    one = golden.model_copy(
        update={"impact": golden.impact.model_copy(update={"forced_by": ["error_rate"]})}
    )
    assert reason_text(one) == "Rollback to revision 3: key signal error_rate at severity 1"
    names = ["approved_value_per_minute", "latency_p99"]
    two = golden.model_copy(
        update={"impact": golden.impact.model_copy(update={"forced_by": names})}
    )
    assert reason_text(two) == "Rollback to revision 3: 2 key signals at severity 1"


@pytest.mark.parametrize("sustained", [0.0, 59.6, 3600.0 * 23 + 59 * 60 + 59])
@pytest.mark.parametrize("score", [0.5, 0.5000000000000001, 0.123456789, 1.0])
@pytest.mark.parametrize(("action", "to_revision"), [("Rollback", 123456), ("Pause", None)])
def test_every_reason_is_one_short_line(
    sustained: float, score: float, action: str, to_revision: int | None
) -> None:
    spec = _with(
        _golden(),
        action=action,
        to_revision=to_revision,
        from_revision=123457,
        trigger={
            "action": action,
            "score": score,
            "min_score": 0.5,
            "sustained_seconds": sustained,
        },
    )
    text = reason_text(spec)
    assert len(text) <= MAX_REASON and text.isascii() and "\n" not in text, text
    assert not re.search(r"[=()]| x ", text), text


# -- the width of `kubectl get` --------------------------------------------------------------

_STEP = re.compile(r'\.(\w+)(?:\[\?\(@\.(\w+)=="(\w+)"\)\])?')


def _lookup(obj: Any, path: str) -> Any:
    """The value at a printer column's JSONPath (dotted fields, and a filter on a list)."""
    steps = list(_STEP.finditer(path))
    assert "".join(s.group(0) for s in steps) == path, f"unsupported JSONPath {path}"
    for step in steps:
        key, field, wanted = step.groups()
        obj = obj.get(key) if isinstance(obj, dict) else None
        if field:
            obj = next((item for item in obj or [] if item.get(field) == wanted), None)
    return obj


def _cell(column: dict[str, Any], obj: dict[str, Any]) -> str:
    if column["type"] == "date":
        return AGE
    value = _lookup(obj, column["jsonPath"])
    if value is None:
        return ""
    if column["type"] == "boolean":
        return "true" if value else "false"
    return str(value)


def _table(info: KindInfo, objects: list[dict[str, Any]], *, wide: bool = False) -> list[str]:
    """The lines ``kubectl get`` prints for ``objects``, without a namespace column."""
    columns = [c for c in info.columns if wide or not c.get("priority")]
    rows = [["NAME", *(c["name"].upper() for c in columns)]]
    rows += [[o["metadata"]["name"], *(_cell(c, o) for c in columns)] for o in objects]
    widths = [
        max(MIN_WIDTH, max(len(row[i].encode()) for row in rows) + PADDING)
        for i in range(len(rows[0]) - 1)
    ]
    return [
        "".join(cell.encode().ljust(w).decode() for cell, w in zip(row, widths, strict=False))
        + row[-1]
        for row in rows
    ]


def _examples(kind: str) -> list[dict[str, Any]]:
    found = [
        doc
        for path in sorted((ROOT / "examples").glob("*/*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == kind
    ]
    assert found
    return found


def _policies() -> list[dict[str, Any]]:
    ready = [reasons.POLICY_READY, reasons.QUERY_PER_DEPLOYMENT, reasons.METRICS_UNAVAILABLE]
    return [
        {
            **policy,
            "status": {
                "boundModelDeployments": 12,
                "conditions": [{"type": "Ready", "status": "False", "reason": why}],
            },
        }
        for policy in _examples("RollbackPolicy")
        for why in ready
    ]


def _target(spec: dict[str, Any]) -> str:
    ref = spec.get("targetRef") or {"kind": "Deployment", **spec["deploymentRef"]}
    return f"{ref['kind']}/{ref['name']}"


def _model_deployments() -> list[dict[str, Any]]:
    return [
        {
            **mdep,
            "status": {
                "phase": phase,
                "target": _target(mdep["spec"]),
                "currentRevision": 12,
                "stableRevision": 11,
                "lastDecision": f"{mdep['metadata']['name']}-3f2a9c1d0b",
                "lastEvaluation": {"time": "2026-01-01T00:00:00Z", "scoreText": score_text(SCORE)},
            },
        }
        for mdep in _examples("ModelDeployment")
        for phase in get_args(Phase)
    ]


def _decision(mdep: dict[str, Any], spec: RollbackDecisionSpec, phase: str) -> dict[str, Any]:
    name = mdep["metadata"]["name"]
    member = Member(
        obj={"metadata": {"name": name, "namespace": "ml", "uid": "6a1f0c2e-uid"}},
        spec=ModelDeploymentSpec(
            deployment_ref=LocalObjectRef(name=name), policy_ref=NamespacedRef(name="policy")
        ),
        status=ModelDeploymentStatus(),
        deployment={},
        records=[],
        current=12,
    )
    since = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    obj: dict[str, Any] = {
        "metadata": {
            "name": decision_name(member, 0, since, 12),
            "annotations": {ANNOTATION_SEQUENCE: "12", ANNOTATION_PREVIOUS: "sha256:" + "0" * 64},
        },
        "spec": spec.model_copy(update={"model_deployment_ref": LocalObjectRef(name=name)}).wire(),
    }
    obj["status"] = {**seal(obj), "phase": phase}
    return obj


def _decisions() -> list[dict[str, Any]]:
    golden = _golden()
    specs = [
        _with(golden, from_revision=12, to_revision=11, trigger={"sustained_seconds": 754}),
        _with(golden, action="Hold", to_revision=None, to_template_hash=None),
    ]
    return [
        _decision(mdep, spec, phase)
        for mdep in _examples("ModelDeployment")
        for spec in specs
        for phase in get_args(DecisionPhase)
    ]


OBJECTS = {
    "RollbackPolicy": _policies,
    "ModelDeployment": _model_deployments,
    "RollbackDecision": _decisions,
}


@pytest.mark.parametrize("info", KINDS, ids=[k.kind for k in KINDS])
def test_kubectl_get_fits_a_120_column_terminal(info: KindInfo) -> None:
    lines = _table(info, OBJECTS[info.kind]())
    assert max(len(line.encode()) for line in lines) <= TERMINAL, "\n" + "\n".join(lines)
    assert lines[0].startswith("NAME") and lines[0].endswith("AGE")


def test_no_column_prints_a_number_with_every_digit() -> None:
    for info in KINDS:
        assert [c["name"] for c in info.columns if c["type"] == "number"] == [], info.kind
        for line in _table(info, OBJECTS[info.kind](), wide=True)[1:]:
            assert str(SCORE) not in line and "0.8452312887464316" not in line


def test_scores_revisions_and_the_short_reason_are_what_people_see() -> None:
    fraud = next(d for d in _decisions() if d["metadata"]["name"].startswith("fraud-scorer-"))
    [header, row] = _table(KINDS[2], [fraud])
    assert header.split() == ["NAME", "ACTION", "FROM", "TO", "SCORE", "PHASE", "APPROVAL", "AGE"]
    assert row.split()[1:] == ["Rollback", "12", "11", "0.85", "PendingApproval", "true", AGE]
    assert re.fullmatch(r"fraud-scorer-[0-9a-f]{10}", row.split()[0])
    [header, row] = _table(KINDS[2], [fraud], wide=True)
    assert header.split()[-2:] == ["REASON", "AGE"]
    assert row.endswith(f"Rollback to revision 11: score 0.85 over 0.7 for 12m34s   {AGE}")
    fraud_scorer = [m for m in _model_deployments() if m["metadata"]["name"] == "fraud-scorer"]
    [_, row] = _table(KINDS[1], fraud_scorer[:1])
    assert row.split() == ["fraud-scorer", "Healthy", "0.72", "12", "11",
                           "Deployment/fraud-scorer", "fraud-high", AGE]  # fmt: skip
