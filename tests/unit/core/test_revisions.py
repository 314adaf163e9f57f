"""Revision history and approvals: what a rollback may target."""

from __future__ import annotations

from typing import Any

from rollguard.api.modeldeployment import ApprovedRevision, ApprovedRevisionRef
from rollguard.core.revisions import (
    RevisionRecord,
    approved_revisions,
    current_revision,
    history,
    parse_human_hashes,
    revision_context,
    rollback_template,
)

NOW = 1_800_000_000.0


def _rs(name: str, revision: int | None, template_hash: str, image: str) -> dict[str, Any]:
    annotations = {} if revision is None else {"deployment.kubernetes.io/revision": str(revision)}
    return {
        "metadata": {
            "name": name,
            "annotations": annotations,
            "labels": {"app": "fraud", "pod-template-hash": template_hash},
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "fraud", "pod-template-hash": template_hash}},
                "spec": {"containers": [{"name": "model", "image": image}]},
            }
        },
    }


def _records() -> list[RevisionRecord]:
    objects = [
        _rs("fraud-a", 1, "aaa", "fraud:v1"),
        _rs("fraud-c", 3, "ccc", "fraud:v3"),
        _rs("fraud-b", 2, "bbb", "fraud:v2"),
        _rs("stray", None, "zzz", "fraud:v0"),
    ]
    return [r for o in objects if (r := RevisionRecord.from_object(o)) is not None]


def test_replica_sets_without_revision_annotation_are_ignored_and_history_is_newest_first() -> None:
    assert [r.revision for r in history(_records())] == [3, 2, 1]


def test_current_revision_comes_from_the_deployment_annotation() -> None:
    assert (
        current_revision({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "3"}}})
        == 3
    )
    assert current_revision({"metadata": {}}) is None


def test_rollback_template_drops_pod_template_hash_like_rollout_undo() -> None:
    record = history(_records())[1]
    template = rollback_template(record)
    assert template["metadata"]["labels"] == {"app": "fraud"}
    assert template["spec"]["containers"][0]["image"] == "fraud:v2"
    # The record itself is untouched.
    assert record.template["metadata"]["labels"]["pod-template-hash"] == "bbb"


def _approved(**kwargs: Any) -> list[ApprovedRevision]:
    defaults: dict[str, Any] = {
        "records": _records(),
        "previous": [],
        "spec_refs": [],
        "human_hashes": [],
        "current": 3,
        "healthy_since": None,
        "bake_time": "1h",
        "now": NOW,
    }
    return approved_revisions(**{**defaults, **kwargs})


def test_spec_approvals_match_by_revision_template_hash_or_image() -> None:
    refs = [
        ApprovedRevisionRef(revision=1),
        ApprovedRevisionRef(template_hash="bbb"),
        ApprovedRevisionRef(image="fraud:v9"),
    ]
    approved = _approved(spec_refs=refs)
    assert [(a.revision, a.template_hash, a.source) for a in approved] == [
        (2, "bbb", "spec"),
        (1, "aaa", "spec"),
    ]


def test_current_revision_is_approved_by_bake_only_after_bake_time() -> None:
    assert _approved(healthy_since=NOW - 3599) == []
    baked = _approved(healthy_since=NOW - 3600)
    assert [(a.revision, a.source) for a in baked] == [(3, "bake")]


def test_human_approvals_come_from_the_annotation() -> None:
    hashes = parse_human_hashes({"rollguard.dev/approved-template-hashes": "aaa, nope,"})
    assert hashes == ["aaa", "nope"]
    assert [(a.revision, a.source) for a in _approved(human_hashes=hashes)] == [(1, "human")]


def test_earlier_approvals_keep_source_and_time_and_follow_renumbering() -> None:
    earlier = ApprovedRevision(
        revision=2, template_hash="bbb", approved_at="2026-01-01T00:00:00Z", source="bake"
    )
    # Rolling back to bbb renumbered it to revision 4.
    renumbered = [
        r if r.template_hash != "bbb" else RevisionRecord(r.name, 4, "bbb", r.image, r.template)
        for r in _records()
    ]
    approved = _approved(
        records=renumbered, previous=[earlier], spec_refs=[ApprovedRevisionRef(revision=4)]
    )
    assert len(approved) == 1
    assert approved[0].revision == 4
    assert approved[0].source == "bake"
    assert approved[0].approved_at == earlier.approved_at


def test_approvals_of_replica_sets_that_no_longer_exist_are_dropped() -> None:
    gone = ApprovedRevision(
        revision=9, template_hash="gone", approved_at="2026-01-01T00:00:00Z", source="spec"
    )
    assert _approved(previous=[gone]) == []


def test_revision_context_marks_approved_revisions() -> None:
    approved = _approved(spec_refs=[ApprovedRevisionRef(revision=1)])
    context = revision_context(
        records=_records(), approved=approved, current=3, rollout_in_progress=False
    )
    assert context.current == 3
    assert [(i.revision, i.approved, i.source) for i in context.history] == [
        (3, False, None),
        (2, False, None),
        (1, True, "spec"),
    ]
