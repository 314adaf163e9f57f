"""Carrying out a decision on its workload: roll back to an approved revision, or pause.

Exactly once and never over someone else's edit: the workload is read, checked to still be
at the revision the decision judged, and patched with a JSON Patch that tests its
metadata.generation (it moves only when someone changes the spec). A refused patch is re-read:
an edit that left the revision and its pod template alone (a scale) is retried, any other is
a Conflict. Already at the target means done, with no patch, so running this again after a
crash or on a second replica changes nothing. What each kind patches: ``kube.targets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from rollguard.api.base import TargetRef
from rollguard.core.revisions import (
    RevisionRecord,
    current_revision,
    history,
    rollback_template,
)
from rollguard.core.rollout import rollout_aborted, rollout_in_progress
from rollguard.kube.client import Cluster, api_message
from rollguard.kube.targets import RolloutTarget, Target, target_of

Verdict = Literal["Patched", "AlreadyDone", "Conflict", "TargetMissing"]
MAX_REFUSAL = 300  # characters of the API server's refusal kept in a result's message


@dataclass(frozen=True)
class ExecutionResult:
    """What happened to the workload."""

    verdict: Verdict
    message: str
    from_template_hash: str | None = None
    to_template_hash: str | None = None

    @property
    def patched(self) -> bool:
        return self.verdict == "Patched"


def _same_template(live: dict[str, Any], target: dict[str, Any]) -> bool:
    labels = dict((live.get("metadata") or {}).get("labels") or {})
    labels.pop("pod-template-hash", None)
    labels.pop("rollouts-pod-template-hash", None)
    live_meta = {**(live.get("metadata") or {}), "labels": labels}
    target_meta = {
        **(target.get("metadata") or {}),
        "labels": (target.get("metadata") or {}).get("labels") or {},
    }
    return bool(live_meta == target_meta and live.get("spec") == target.get("spec"))


def _hash_of_revision(records: list[RevisionRecord], revision: int | None) -> str | None:
    return next((r.template_hash for r in records if r.revision == revision), None)


ATTEMPTS = 3
"""Patches tried per execution. A refused patch (409, or 422 from the generation test) is
re-read: an edit that left the revision and its pod template alone (a scale, an autoscaler,
a label) is retried on the new generation; any other edit is a Conflict, never overwritten."""


def _refused(err: ApiException) -> bool:
    return err.status in (409, 422)


def _template_changed(live: dict[str, Any], judged: dict[str, Any] | None) -> bool:
    """Whether the pod template moved since the first read (None: this is the first)."""
    return judged is not None and live["spec"].get("template") != judged


@dataclass(frozen=True)
class _Patch:
    """A patch to try: JSON Patch operations on the spec, or an Argo abort."""

    operations: list[dict[str, Any]]
    message: str
    abort: bool = False


def _plan_rollback(
    target: Target,
    what: str,
    live: dict[str, Any],
    records: list[RevisionRecord],
    *,
    from_revision: int,
    to_template_hash: str,
    judged: dict[str, Any] | None,
    refusal: str,
) -> ExecutionResult | _Patch:
    """What to do with ``live``: a final result (done, conflict, no target), or a patch."""
    found = next((r for r in records if r.template_hash == to_template_hash), None)
    if found is None:
        return ExecutionResult(
            "TargetMissing",
            f"no revision of {what} has template hash {to_template_hash}; its history may "
            "have been pruned (revisionHistoryLimit)",
        )
    template = rollback_template(found)
    current = current_revision(live, target.kind, records)
    current_hash = _hash_of_revision(records, current)
    status = live.get("status") or {}
    if _same_template(live["spec"]["template"], template) or (
        rollout_aborted(live) and status.get("stableRS") == to_template_hash
    ):
        return ExecutionResult(
            "AlreadyDone",
            f"{what} already runs the template of revision {found.revision}",
            from_template_hash=current_hash,
            to_template_hash=to_template_hash,
        )
    if current != from_revision or _template_changed(live, judged):
        changed = f"is at revision {current}, not {from_revision} as judged"
        if current == from_revision:
            changed = "has a new pod template (its new revision is not numbered yet)"
        return ExecutionResult(
            "Conflict",
            f"{what} {changed}; someone changed it "
            f"{'while it was being patched' if refusal else 'since'}{refusal}, so it is "
            "left alone",
            from_template_hash=current_hash,
        )
    if (
        isinstance(target, RolloutTarget)
        and rollout_in_progress(live, "Rollout")
        and status.get("stableRS") == to_template_hash
    ):
        # The canary (or preview) is judged bad and the stable ReplicaSet is the target: abort,
        # as Argo's own CLI does; traffic returns to stable at once.
        resumed = " (and resumed it: it was paused)" if target.paused(live) else ""
        return _Patch(
            [],
            f"Aborted the update of {what} at revision {current}{resumed}: the stable "
            f"revision {found.revision} serves again",
            abort=True,
        )
    operations, also = target.rollback_operations(live, template)
    return _Patch(
        operations,
        f"Patched {what} from revision {current} to the template of revision "
        f"{found.revision}{also}",
    )


def rollback(
    *,
    cluster: Cluster,
    namespace: str,
    target: TargetRef,
    from_revision: int,
    to_template_hash: str,
) -> ExecutionResult:
    """Return the workload to the revision whose template hash is ``to_template_hash``."""
    kind, what = target_of(target.kind), target.describe(namespace)
    judged: dict[str, Any] | None = None  # the pod template as first read
    refusal = ""
    for _ in range(ATTEMPTS):
        live = kind.read(cluster, namespace=namespace, name=target.name)
        records = history(kind.history(cluster, namespace=namespace, workload=live))
        plan = _plan_rollback(
            kind,
            what,
            live,
            records,
            from_revision=from_revision,
            to_template_hash=to_template_hash,
            judged=judged,
            refusal=refusal,
        )
        if isinstance(plan, ExecutionResult):
            return plan
        judged = live["spec"].get("template")
        generation = int(live["metadata"]["generation"])
        try:
            if plan.abort and isinstance(kind, RolloutTarget):
                kind.abort(
                    cluster,
                    namespace=namespace,
                    name=target.name,
                    generation=generation,
                    status=live.get("status") or {},
                )
                if kind.paused(live):
                    # A paused Rollout does not scale its canary down: an abort left paused
                    # would never complete.
                    kind.patch(
                        cluster,
                        namespace=namespace,
                        name=target.name,
                        generation=generation,
                        operations=[{"op": "replace", "path": "/spec/paused", "value": False}],
                    )
            else:
                kind.patch(
                    cluster,
                    namespace=namespace,
                    name=target.name,
                    generation=generation,
                    operations=plan.operations,
                )
        except ApiException as err:
            if not _refused(err):
                raise
            refusal = f" (HTTP {err.status}: {api_message(err)[:MAX_REFUSAL]})"
            continue  # re-read: the next pass sees what changed
        return ExecutionResult(
            "Patched",
            plan.message,
            from_template_hash=_hash_of_revision(
                records, current_revision(live, target.kind, records)
            ),
            to_template_hash=to_template_hash,
        )
    return ExecutionResult(
        "Conflict",
        f"{what} changed under each of {ATTEMPTS} patches{refusal}; not overwritten",
    )


def pause(
    *, cluster: Cluster, namespace: str, target: TargetRef, from_revision: int
) -> ExecutionResult:
    """Pause the workload's rollout, if it is still at ``from_revision`` (``kube.targets``
    says how each kind pauses)."""
    kind, what = target_of(target.kind), target.describe(namespace)
    judged: dict[str, Any] | None = None
    refusal = ""
    for _ in range(ATTEMPTS):
        live = kind.read(cluster, namespace=namespace, name=target.name)
        if kind.paused(live):
            return ExecutionResult("AlreadyDone", f"{what} is already paused")
        records = (
            kind.history(cluster, namespace=namespace, workload=live)
            if target.kind != "Deployment"
            else []
        )
        current = current_revision(live, target.kind, records)
        if current != from_revision or _template_changed(live, judged):
            return ExecutionResult(
                "Conflict",
                f"{what} is at revision {current}, not {from_revision}, or has a new pod "
                f"template{refusal}",
            )
        judged = live["spec"].get("template")
        try:
            kind.patch(
                cluster,
                namespace=namespace,
                name=target.name,
                generation=int(live["metadata"]["generation"]),
                operations=kind.pause_operations(live),
            )
        except ApiException as err:
            if not _refused(err):
                raise
            refusal = f" (HTTP {err.status}: {api_message(err)[:MAX_REFUSAL]})"
            continue
        return ExecutionResult("Patched", f"Paused {what} at revision {current}")
    return ExecutionResult(
        "Conflict",
        f"{what} changed under each of {ATTEMPTS} patches{refusal}; not overwritten",
    )
