"""Workload revisions and which of them a rollback may target. PURE.

A revision is identified by its template hash: Kubernetes renumbers a revision when it is
rolled back to (revision 2 becomes revision 5), but the template hash stays, so approvals are
kept by hash and their numbers refreshed from the history, the same history
`kubectl rollout undo --to-revision` reads. Each kind keeps it its own way:

- Deployment: its ReplicaSets, ``deployment.kubernetes.io/revision`` and ``pod-template-hash``;
- Argo Rollouts Rollout: its ReplicaSets, ``rollout.argoproj.io/revision`` and
  ``rollouts-pod-template-hash``;
- StatefulSet: its ControllerRevisions, their ``revision`` and
  ``controller.kubernetes.io/hash``, the template in ``data.spec.template``.

Called by the execution layer (which lists the ReplicaSets) and by the operator's handlers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollguard.api.base import WorkloadKind, duration_seconds
from rollguard.api.decision import RevisionContext, RevisionInfo
from rollguard.api.labels import HUMAN_APPROVALS_ANNOTATION
from rollguard.api.modeldeployment import ApprovalSource, ApprovedRevision, ApprovedRevisionRef
from rollguard.core.times import api_seconds, to_datetime

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH_LABEL = "pod-template-hash"
ROLLOUT_REVISION_ANNOTATION = "rollout.argoproj.io/revision"
ROLLOUT_HASH_LABEL = "rollouts-pod-template-hash"
CONTROLLER_REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
_REPLICA_SET_KEYS: dict[str, tuple[str, str]] = {
    "Deployment": (REVISION_ANNOTATION, TEMPLATE_HASH_LABEL),
    "Rollout": (ROLLOUT_REVISION_ANNOTATION, ROLLOUT_HASH_LABEL),
}
# The operator's own record of revisions approved by a person, on the ModelDeployment:
# a comma-separated list of template hashes (written by `rollguard approve-revision`).


@dataclass(frozen=True)
class RevisionRecord:
    """What rollguard needs of one ReplicaSet of a Deployment."""

    name: str
    revision: int
    template_hash: str
    image: str | None
    template: Mapping[str, Any]
    created: float | None = None  # metadata.creationTimestamp, Unix seconds

    @classmethod
    def from_object(
        cls, obj: Mapping[str, Any], kind: WorkloadKind = "Deployment"
    ) -> RevisionRecord | None:
        """From a revision of a ``kind`` workload as the API returns it (a ReplicaSet, or a
        StatefulSet's ControllerRevision); None when it carries no revision."""
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if kind == "StatefulSet":
            raw: Any = obj.get("revision")
            template = dict(((obj.get("data") or {}).get("spec") or {}).get("template") or {})
            template.pop("$patch", None)  # the strategic-merge directive the controller stores
            hash_label = CONTROLLER_REVISION_HASH_LABEL
        else:
            annotation, hash_label = _REPLICA_SET_KEYS[kind]
            raw = (meta.get("annotations") or {}).get(annotation)
            template = (obj.get("spec") or {}).get("template") or {}
        try:
            revision = int(raw)
        except (TypeError, ValueError):
            return None
        containers = (template.get("spec") or {}).get("containers") or [{}]
        return cls(
            name=str(meta.get("name", "")),
            revision=revision,
            template_hash=str(labels.get(hash_label, "")),
            image=containers[0].get("image"),
            template=template,
            created=api_seconds(meta.get("creationTimestamp")),
        )


def revision_born(
    records: Iterable[RevisionRecord], *, current: int, changed_at: float | None
) -> float | None:
    """Since when the current revision can have data (``engine.Measurements.born``): the later
    of its ReplicaSet's creation and the newest executed Rollback (``changed_at``), which
    makes an old ReplicaSet current again, created long before; None when neither is known."""
    created = next((r.created for r in history(records) if r.revision == current), None)
    known = [t for t in (created, changed_at) if t is not None]
    return max(known) if known else None


def history(records: Iterable[RevisionRecord]) -> list[RevisionRecord]:
    """ReplicaSets by revision, newest first (one per revision)."""
    by_revision: dict[int, RevisionRecord] = {}
    for record in records:
        by_revision.setdefault(record.revision, record)
    return [by_revision[r] for r in sorted(by_revision, reverse=True)]


def current_revision(
    workload: Mapping[str, Any],
    kind: WorkloadKind = "Deployment",
    records: Iterable[RevisionRecord] = (),
) -> int | None:
    """The revision the workload serves: a Deployment's and a Rollout's revision annotation
    (an aborted Rollout serves its stable ReplicaSet's), a StatefulSet's ``updateRevision``
    looked up in its ControllerRevisions (``records``)."""
    status = workload.get("status") or {}
    if kind == "StatefulSet":
        name = status.get("updateRevision")
        return next((r.revision for r in records if name and r.name == name), None)
    if kind == "Rollout" and status.get("abort"):
        stable = status.get("stableRS")
        return next((r.revision for r in records if stable and r.template_hash == stable), None)
    annotation = _REPLICA_SET_KEYS[kind][0]
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations[annotation])
    except (KeyError, ValueError):
        return None


def serves(
    workload: Mapping[str, Any],
    kind: WorkloadKind,
    records: Iterable[RevisionRecord],
    template_hash: str,
) -> bool:
    """Whether the revision ``workload`` serves is the one with ``template_hash``."""
    records = list(records)
    current = current_revision(workload, kind, records)
    return any(r.revision == current and r.template_hash == template_hash for r in records)


def rollback_template(record: RevisionRecord) -> dict[str, Any]:
    """The pod template to write into the workload to return to ``record``: the recorded
    template without the controller's hash label, as `kubectl rollout undo` (and
    `kubectl argo rollouts undo`) does."""
    template: dict[str, Any] = _plain(record.template)
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(TEMPLATE_HASH_LABEL, None)
        labels.pop(ROLLOUT_HASH_LABEL, None)
    return template


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def approved_revisions(
    *,
    records: Sequence[RevisionRecord],
    previous: Sequence[ApprovedRevision],
    spec_refs: Sequence[ApprovedRevisionRef],
    human_hashes: Iterable[str],
    current: int | None,
    healthy_since: float | None,
    bake_time: str,
    now: float,
) -> list[ApprovedRevision]:
    """Every revision a rollback may target, newest first.

    Sources: ``spec`` (approved through Git, by revision, template hash or image), ``human``
    (the ModelDeployment annotation), ``bake`` (the current revision stayed healthy for
    ``bake_time``), and approvals recorded earlier (``previous``) whose ReplicaSet still
    exists. An approval keeps its first time and source; its revision number is refreshed.
    """
    by_hash = {r.template_hash: r for r in history(records) if r.template_hash}
    kept: dict[str, ApprovedRevision] = {}
    for old in previous:
        if old.template_hash in by_hash:
            kept[old.template_hash] = old.model_copy(
                update={"revision": by_hash[old.template_hash].revision}
            )

    def add(record: RevisionRecord, source: ApprovalSource) -> None:
        if record.template_hash not in kept:
            kept[record.template_hash] = ApprovedRevision(
                revision=record.revision,
                template_hash=record.template_hash,
                approved_at=to_datetime(now),
                source=source,
            )

    for ref in spec_refs:
        for record in by_hash.values():
            if (
                (ref.revision is not None and record.revision == ref.revision)
                or (ref.template_hash is not None and record.template_hash == ref.template_hash)
                or (ref.image is not None and record.image == ref.image)
            ):
                add(record, "spec")
    for template_hash in human_hashes:
        if template_hash in by_hash:
            add(by_hash[template_hash], "human")
    if (
        current is not None
        and healthy_since is not None
        and now - healthy_since >= duration_seconds(bake_time)
    ):
        for record in by_hash.values():
            if record.revision == current:
                add(record, "bake")
    return sorted(kept.values(), key=lambda a: a.revision, reverse=True)


def revision_context(
    *,
    records: Sequence[RevisionRecord],
    approved: Sequence[ApprovedRevision],
    current: int,
    rollout_in_progress: bool,
    born: float | None = None,
    limit: int = 64,
) -> RevisionContext:
    """The revisions as a decision records them: newest first, each marked approved or not;
    ``born``, the current revision's ``revision_born`` the evaluation used, for replay."""
    approvals = {a.template_hash: a for a in approved}
    infos = []
    for record in history(records)[:limit]:
        approval = approvals.get(record.template_hash)
        infos.append(
            RevisionInfo(
                revision=record.revision,
                template_hash=record.template_hash,
                approved=approval is not None,
                source=approval.source if approval else None,
            )
        )
    return RevisionContext(
        current=current, rollout_in_progress=rollout_in_progress, history=infos, born=born
    )


def parse_human_hashes(annotations: Mapping[str, str] | None) -> list[str]:
    raw = (annotations or {}).get(HUMAN_APPROVALS_ANNOTATION, "")
    return [h.strip() for h in raw.split(",") if h.strip()]
