"""The short forms ``kubectl get`` shows reach the status in writes the operator makes anyway,
against the in-memory API server: a ModelDeployment's ``lastEvaluation.scoreText`` with each
evaluation it writes, a RollbackDecision's ``scoreText`` and ``reasonText`` in the write that
seals it into its chain (at creation, or with its first transition when creation was cut
short). The decision's spec, the audited evidence, is never touched."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import handler_scenarios as h
import pytest
import reason_scenarios as s
from fake_cluster import NAMESPACE, FakeCluster
from operator_harness import OperatorRun, run_operator

from rollguard.api.decision import RollbackDecisionSpec
from rollguard.api.labels import ANNOTATION_PREVIOUS, ANNOTATION_SEQUENCE
from rollguard.api.modeldeployment import ModelDeploymentStatus
from rollguard.control.lifecycle import advance
from rollguard.control.status import SCORE_STEP, worth_writing
from rollguard.core.audit import link_hash

SHORT_FORMS = {"scoreText", "reasonText"}
REASON = "Rollback to revision 1: score 0.80 over 0.5"


@dataclass(frozen=True)
class Write:
    """One status write sent to the fake API server."""

    method: str  # patch_status or replace_status
    kind: str
    name: str
    status: dict[str, Any]


@contextmanager
def recorded_writes() -> Iterator[list[Write]]:
    """Every status write made while the context is open."""
    writes: list[Write] = []

    def recording(method: str) -> Callable[..., dict[str, Any]]:
        original = getattr(FakeCluster, method)

        def write(self: FakeCluster, kind: str, **kwargs: Any) -> dict[str, Any]:
            status = copy.deepcopy(dict(kwargs["status"]))
            writes.append(Write(method, kind, kwargs["name"], status))
            result: dict[str, Any] = original(self, kind, **kwargs)
            return result

        return write

    with pytest.MonkeyPatch.context() as patch:
        for method in ("patch_status", "replace_status"):
            patch.setattr(FakeCluster, method, recording(method))
        yield writes


@cache
def never_judged() -> tuple[OperatorRun, list[Write]]:
    """An auto-approved rollback decided at T0+105 at score 0.8; afterwards the series has no
    samples at all, so the ModelDeployment's score becomes unknown."""
    with recorded_writes() as writes:
        run = run_operator(
            s.AUTO_ROLLBACK, s.series((s.BAD, 8)), eval_times=s.times(s.DECIDED, 420)
        )
    return run, writes


def test_each_model_deployment_status_write_carries_its_score_with_two_decimals() -> None:
    _, writes = never_judged()
    evaluations = [
        w.status["lastEvaluation"]
        for w in writes
        if w.kind == "ModelDeployment" and "lastEvaluation" in w.status
    ]
    known = [e for e in evaluations if e.get("score") is not None]
    unknown = [e for e in evaluations if e.get("score") is None]
    assert known and unknown
    for evaluation in known:
        assert evaluation["scoreText"] == f"{evaluation['score']:.2f}"
    assert {e["scoreText"] for e in known} == {"0.80"}
    assert all("scoreText" not in e for e in unknown)


def test_the_short_score_adds_no_write_to_a_steady_service() -> None:
    """A score that moves less than SCORE_STEP is not written sooner because its two-decimal
    text changed."""
    now = 1_800_000_000.0

    def status(at: float, score: float) -> ModelDeploymentStatus:
        evaluation = {
            "time": datetime.fromtimestamp(at, tz=UTC),
            "score": score,
            "scoreText": f"{score:.2f}",
        }
        return ModelDeploymentStatus.model_validate(
            {"phase": "Degraded", "lastEvaluation": evaluation}
        )

    stored, new = status(now - 30, 0.71), status(now, 0.71 + SCORE_STEP / 2)
    assert stored.last_evaluation and new.last_evaluation
    assert stored.last_evaluation.score_text != new.last_evaluation.score_text
    assert not worth_writing(stored, new, refresh=60, now=now)


def _decision_writes(writes: list[Write], name: str) -> list[Write]:
    return [w for w in writes if w.kind == "RollbackDecision" and w.name == name]


def test_a_decision_is_sealed_with_its_short_score_and_reason_in_the_same_write() -> None:
    run, writes = never_judged()
    [decision] = run.stored_decisions
    name = decision["metadata"]["name"]
    mine = _decision_writes(writes, name)
    assert (mine[0].method, set(mine[0].status)) == ("patch_status", {"audit", *SHORT_FORMS})
    assert (mine[0].status["scoreText"], mine[0].status["reasonText"]) == ("0.80", REASON)
    # Never written on their own, and kept by every later transition.
    assert [w for w in mine if SHORT_FORMS & set(w.status)] == mine[:1]
    assert len(mine) > 1
    status = decision["status"]
    assert (status["scoreText"], status["reasonText"]) == ("0.80", REASON)


def _keys(value: Any) -> set[str]:
    """Every key of every mapping inside ``value``."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_the_short_forms_stay_out_of_the_audited_spec() -> None:
    run, _ = never_judged()
    [decision] = run.stored_decisions
    spec = RollbackDecisionSpec.model_validate(decision["spec"])
    assert not SHORT_FORMS & _keys(decision["spec"])
    assert len(spec.recommended.reason) > len(REASON) and "=" in spec.recommended.reason
    annotations = decision["metadata"]["annotations"]
    assert decision["status"]["audit"]["hash"] == link_hash(
        previous_hash=annotations[ANNOTATION_PREVIOUS],
        sequence=int(annotations[ANNOTATION_SEQUENCE]),
        name=decision["metadata"]["name"],
        spec=spec,
    )


def test_a_decision_created_but_not_sealed_gets_them_with_its_first_transition() -> None:
    """The operator stopped between creating a decision and sealing it: its daemon seals it
    in the write of its first transition, which carries the short forms as well."""
    made = s.dry_run().stored_decisions[0]
    w = h.world()
    body = {key: copy.deepcopy(made[key]) for key in ("apiVersion", "kind", "spec")}
    body["metadata"] = {
        key: copy.deepcopy(made["metadata"][key]) for key in ("name", "labels", "annotations")
    }
    body["metadata"]["namespace"] = NAMESPACE
    created = w.cluster.add_object("RollbackDecision", body)
    assert "status" not in created
    with recorded_writes() as writes:
        advance(w.lifecycle, created, now=s.T0 + s.DECIDED)
    first = _decision_writes(writes, body["metadata"]["name"])[0]
    assert first.status["phase"] == "DryRun"
    assert {"audit", *SHORT_FORMS} <= set(first.status)
    assert (first.status["scoreText"], first.status["reasonText"]) == ("0.80", REASON)
