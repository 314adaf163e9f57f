"""Carrying out a decision on its Deployment: roll back to an approved revision, or pause.

Exactly once and never over someone else's edit: the Deployment is read, checked to still be
at the revision the decision judged, and patched with a JSON Patch that tests its
metadata.generation (it moves only when someone changes the spec). A refused patch is re-read:
an edit that left the revision and its pod template alone (a scale) is retried, any other is
a Conflict. Already at the target means done, with no patch, so running this again after a
crash or on a second replica changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from rollguard.core.revisions import (
    ReplicaSetRecord,
    current_revision,
    history,
    rollback_template,
)
from rollguard.kube.client import Cluster, api_message

Verdict = Literal["Patched", "AlreadyDone", "Conflict", "TargetMissing"]
MAX_REFUSAL = 300  # characters of the API server's refusal kept in a result's message


@dataclass(frozen=True)
class ExecutionResult:
    """What happened to the Deployment."""

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
    live_meta = {**(live.get("metadata") or {}), "labels": labels}
    target_meta = {
        **(target.get("metadata") or {}),
        "labels": (target.get("metadata") or {}).get("labels") or {},
    }
    return bool(live_meta == target_meta and live.get("spec") == target.get("spec"))


def _hash_of_revision(records: list[ReplicaSetRecord], revision: int | None) -> str | None:
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


def rollback(
    *,
    cluster: Cluster,
    namespace: str,
    deployment: str,
    from_revision: int,
    to_template_hash: str,
) -> ExecutionResult:
    """Return ``deployment`` to the revision whose pod-template-hash is ``to_template_hash``."""
    judged: dict[str, Any] | None = None  # the pod template as first read
    refusal = ""
    for _ in range(ATTEMPTS):
        live = cluster.deployment(namespace=namespace, name=deployment)
        records = history(cluster.replica_sets(namespace=namespace, deployment=live))
        target = next((r for r in records if r.template_hash == to_template_hash), None)
        if target is None:
            return ExecutionResult(
                "TargetMissing",
                f"no ReplicaSet of Deployment {namespace}/{deployment} has pod-template-hash "
                f"{to_template_hash}; its history may have been pruned (revisionHistoryLimit)",
            )
        template = rollback_template(target)
        current = current_revision(live)
        current_hash = _hash_of_revision(records, current)
        if _same_template(live["spec"]["template"], template):
            return ExecutionResult(
                "AlreadyDone",
                f"Deployment {namespace}/{deployment} already runs the template of revision "
                f"{target.revision}",
                from_template_hash=current_hash,
                to_template_hash=to_template_hash,
            )
        if current != from_revision or _template_changed(live, judged):
            changed = f"is at revision {current}, not {from_revision} as judged"
            if current == from_revision:
                changed = "has a new pod template (its new revision is not numbered yet)"
            return ExecutionResult(
                "Conflict",
                f"Deployment {namespace}/{deployment} {changed}; someone changed it "
                f"{'while it was being patched' if refusal else 'since'}{refusal}, so it is "
                "left alone",
                from_template_hash=current_hash,
            )
        judged = live["spec"].get("template")
        operations: list[dict[str, Any]] = [
            {"op": "replace", "path": "/spec/template", "value": template}
        ]
        resumed = ""
        if live["spec"].get("paused"):
            # A paused Deployment does not roll out a new template: a rollback left paused
            # would never complete (``kubectl rollout undo`` refuses one for that reason).
            operations.append({"op": "replace", "path": "/spec/paused", "value": False})
            resumed = " and resumed its paused rollout"
        try:
            cluster.patch_deployment(
                namespace=namespace,
                name=deployment,
                generation=int(live["metadata"]["generation"]),
                operations=operations,
            )
        except ApiException as err:
            if not _refused(err):
                raise
            refusal = f" (HTTP {err.status}: {api_message(err)[:MAX_REFUSAL]})"
            continue  # re-read: the next pass sees what changed
        return ExecutionResult(
            "Patched",
            f"Patched Deployment {namespace}/{deployment} from revision {current} to the "
            f"template of revision {target.revision}{resumed}",
            from_template_hash=current_hash,
            to_template_hash=to_template_hash,
        )
    return ExecutionResult(
        "Conflict",
        f"Deployment {namespace}/{deployment} changed under each of {ATTEMPTS} patches"
        f"{refusal}; not overwritten",
    )


def pause(
    *, cluster: Cluster, namespace: str, deployment: str, from_revision: int
) -> ExecutionResult:
    """Pause the Deployment's rollout (``spec.paused``), if it is still at ``from_revision``."""
    judged: dict[str, Any] | None = None
    refusal = ""
    for _ in range(ATTEMPTS):
        live = cluster.deployment(namespace=namespace, name=deployment)
        if live["spec"].get("paused"):
            return ExecutionResult(
                "AlreadyDone", f"Deployment {namespace}/{deployment} is already paused"
            )
        current = current_revision(live)
        if current != from_revision or _template_changed(live, judged):
            return ExecutionResult(
                "Conflict",
                f"Deployment {namespace}/{deployment} is at revision {current}, not "
                f"{from_revision}, or has a new pod template{refusal}",
            )
        judged = live["spec"].get("template")
        try:
            cluster.patch_deployment(
                namespace=namespace,
                name=deployment,
                generation=int(live["metadata"]["generation"]),
                operations=[{"op": "add", "path": "/spec/paused", "value": True}],
            )
        except ApiException as err:
            if not _refused(err):
                raise
            refusal = f" (HTTP {err.status}: {api_message(err)[:MAX_REFUSAL]})"
            continue
        return ExecutionResult(
            "Patched", f"Paused Deployment {namespace}/{deployment} at revision {current}"
        )
    return ExecutionResult(
        "Conflict",
        f"Deployment {namespace}/{deployment} changed under each of {ATTEMPTS} patches"
        f"{refusal}; not overwritten",
    )
