"""Rollback targets: what rollguard needs of a workload, one implementation per kind.

A target offers its object (``read``), its revision history with templates and hashes
(``history``), a JSON Patch guarded by a precondition (``patch``: the first operation tests
``metadata.generation``, which moves only when someone changes the spec), and the operations
that return it to a template (``rollback_operations``) or pause it (``pause_operations``).
Where its rollout stands and which revision it serves are pure rules (``core.rollout``,
``core.revisions.current_revision``), shared with the simulators.

- ``Deployment`` (apps/v1): ReplicaSets it controls; pause is ``spec.paused``.
- ``StatefulSet`` (apps/v1): ControllerRevisions it controls, as
  ``kubectl rollout undo statefulset`` reads them. It has no pause of its own: rollguard halts
  its rolling update with ``updateStrategy.rollingUpdate.partition`` above every ordinal, and
  notes the partition it found in an annotation, which a rollback puts back. One that updates
  its Pods only when they are deleted (``OnDelete``) is refused with the reason.
- ``Rollout`` (argoproj.io/v1alpha1): ReplicaSets it controls; pause is ``spec.paused``; while
  a canary or blue-green update is in progress, a rollback to the stable ReplicaSet is an
  abort (``status.abort``), as ``kubectl argo rollouts abort`` does. A Rollout whose template
  lives in another object (``spec.workloadRef``) is refused with the reason.

KServe's InferenceService would be another: a rollback there sets ``canaryTrafficPercent`` to
0 or restores the previous ``storageUri``, never patching the Deployment KServe owns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollguard.api.base import TargetRef, WorkloadKind
from rollguard.api.labels import PAUSED_PARTITION_ANNOTATION
from rollguard.core.revisions import RevisionRecord
from rollguard.kube.client import Cluster

Operations = list[dict[str, Any]]


def _owned(items: Sequence[Mapping[str, Any]], uid: str, kind: WorkloadKind) -> list[Any]:
    """Records of the ``items`` (ReplicaSets, ControllerRevisions) ``uid`` controls."""
    records = []
    for obj in items:
        owners = (obj.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("uid") == uid and o.get("controller") for o in owners):
            continue
        record = RevisionRecord.from_object(obj, kind)
        if record is not None:
            records.append(record)
    return records


def _selector(workload: Mapping[str, Any]) -> str:
    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@dataclass(frozen=True)
class Target:
    """One kind of workload: where its API is (``group``, ``version``, ``plural``) and where
    its revisions are (``revisions``: ReplicaSets or ControllerRevisions, in ``apps/v1``)."""

    kind: WorkloadKind
    group: str
    version: str
    plural: str
    revisions: str = "replicasets"

    def read(self, cluster: Cluster, *, namespace: str, name: str) -> dict[str, Any]:
        return cluster.read_object(
            self.group, self.version, self.plural, namespace=namespace, name=name
        )

    def history(
        self, cluster: Cluster, *, namespace: str, workload: Mapping[str, Any]
    ) -> list[RevisionRecord]:
        """Its revisions: the objects of ``revisions`` it controls."""
        found = cluster.list_of(
            "apps", "v1", self.revisions, namespace=namespace, label_selector=_selector(workload)
        )
        return _owned(found, str(workload["metadata"]["uid"]), self.kind)

    def patch(
        self,
        cluster: Cluster,
        *,
        namespace: str,
        name: str,
        generation: int,
        operations: Sequence[Mapping[str, Any]],
    ) -> None:
        cluster.json_patch(
            self.group,
            self.version,
            self.plural,
            namespace=namespace,
            name=name,
            generation=generation,
            operations=operations,
        )

    def unsupported(self, workload: Mapping[str, Any]) -> str | None:
        """Why rollguard cannot act on this workload, or None."""
        return None

    def rollback_operations(
        self, live: Mapping[str, Any], template: Mapping[str, Any]
    ) -> tuple[Operations, str]:
        """The operations that give ``live`` ``template``, and what else they do (a phrase)."""
        operations: Operations = [{"op": "replace", "path": "/spec/template", "value": template}]
        if (live.get("spec") or {}).get("paused"):
            # A paused workload does not roll out a new template: a rollback left paused would
            # never complete (``kubectl rollout undo`` refuses one for that reason).
            operations.append({"op": "replace", "path": "/spec/paused", "value": False})
            return operations, " and resumed its paused rollout"
        return operations, ""

    def paused(self, live: Mapping[str, Any]) -> bool:
        return bool((live.get("spec") or {}).get("paused"))

    def pause_operations(self, live: Mapping[str, Any]) -> Operations:
        return [{"op": "add", "path": "/spec/paused", "value": True}]


class DeploymentTarget(Target):
    def read(self, cluster: Cluster, *, namespace: str, name: str) -> dict[str, Any]:
        return cluster.deployment(namespace=namespace, name=name)

    def history(
        self, cluster: Cluster, *, namespace: str, workload: Mapping[str, Any]
    ) -> list[RevisionRecord]:
        return cluster.replica_sets(namespace=namespace, deployment=workload)

    def patch(
        self,
        cluster: Cluster,
        *,
        namespace: str,
        name: str,
        generation: int,
        operations: Sequence[Mapping[str, Any]],
    ) -> None:
        cluster.patch_deployment(
            namespace=namespace, name=name, generation=generation, operations=operations
        )


HOLD_PARTITION = 2**31 - 1
"""The partition of rollguard's pause: above every ordinal, so that no Pod is updated, not even
one a scale-up adds (new ordinals are created at the update revision below the partition)."""
_PARTITION = "/spec/updateStrategy/rollingUpdate/partition"


class StatefulSetTarget(Target):
    def unsupported(self, workload: Mapping[str, Any]) -> str | None:
        strategy = ((workload.get("spec") or {}).get("updateStrategy") or {}).get("type")
        if strategy != "OnDelete":
            return None
        return (
            "the StatefulSet updates its Pods only when they are deleted (updateStrategy "
            "OnDelete): a rollback of its template would never roll out and could not be "
            "validated; use the RollingUpdate strategy"
        )

    def rollback_operations(
        self, live: Mapping[str, Any], template: Mapping[str, Any]
    ) -> tuple[Operations, str]:
        operations: Operations = [{"op": "replace", "path": "/spec/template", "value": template}]
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        if PAUSED_PARTITION_ANNOTATION not in annotations:
            return operations, ""
        # Undo rollguard's own pause: the partition it found, or none.
        before = annotations[PAUSED_PARTITION_ANNOTATION]
        rolling = ((live.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")
        if before:
            operations.append({"op": "add", "path": _PARTITION, "value": int(before)})
        elif "partition" in (rolling or {}):
            operations.append({"op": "remove", "path": _PARTITION})
        key = PAUSED_PARTITION_ANNOTATION.replace("/", "~1")
        operations.append({"op": "remove", "path": f"/metadata/annotations/{key}"})
        return operations, " and lifted the partition of its pause"

    def paused(self, live: Mapping[str, Any]) -> bool:
        """Paused by rollguard: its mark, and a partition still holding every Pod (a person may
        have lowered it since)."""
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        rolling = ((live.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")
        partition = (rolling or {}).get("partition", 0)
        replicas = int((live.get("spec") or {}).get("replicas", 1))
        return PAUSED_PARTITION_ANNOTATION in annotations and partition >= replicas

    def pause_operations(self, live: Mapping[str, Any]) -> Operations:
        spec = live.get("spec") or {}
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("rollingUpdate") or {}
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        # The partition it had, unless this is rollguard's own, left from an earlier pause.
        before = annotations.get(PAUSED_PARTITION_ANNOTATION, rolling.get("partition"))
        key = PAUSED_PARTITION_ANNOTATION.replace("/", "~1")
        operations: Operations = []
        if not annotations:
            operations.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        operations.append(
            {
                "op": "add",
                "path": f"/metadata/annotations/{key}",
                "value": "" if before is None or before == "" else str(before),
            }
        )
        operations.append(
            {
                "op": "add",
                "path": "/spec/updateStrategy",
                "value": {
                    **strategy,
                    "type": "RollingUpdate",
                    "rollingUpdate": {**rolling, "partition": HOLD_PARTITION},
                },
            }
        )
        return operations


class RolloutTarget(Target):
    def abort(
        self,
        cluster: Cluster,
        *,
        namespace: str,
        name: str,
        generation: int,
        status: Mapping[str, Any],
    ) -> None:
        """Abort the update in progress (``status.abort``, on the status subresource, as
        ``kubectl argo rollouts abort`` does), if the spec is still at ``generation`` and the
        update is still the one judged: the same stable and canary ReplicaSets as in ``status``
        (a promotion moves only the status; an abort after it would be dropped by Argo)."""
        cluster.json_patch(
            self.group,
            self.version,
            self.plural,
            namespace=namespace,
            name=name,
            generation=generation,
            operations=[
                {"op": "test", "path": "/status/stableRS", "value": status.get("stableRS")},
                {
                    "op": "test",
                    "path": "/status/currentPodHash",
                    "value": status.get("currentPodHash"),
                },
                {"op": "add", "path": "/status/abort", "value": True},
            ],
            status=True,
        )

    def unsupported(self, workload: Mapping[str, Any]) -> str | None:
        ref = (workload.get("spec") or {}).get("workloadRef")
        if not ref:
            return None
        return (
            f"the Rollout takes its pod template from {ref.get('kind', 'a workload')} "
            f"{ref.get('name', '')} (spec.workloadRef); rollguard rolls back Rollouts that "
            "hold their own template: name the Rollout's template in spec.template, or guard "
            "the referenced Deployment instead"
        )


TARGETS: dict[str, Target] = {
    "Deployment": DeploymentTarget("Deployment", "apps", "v1", "deployments"),
    "StatefulSet": StatefulSetTarget(
        "StatefulSet", "apps", "v1", "statefulsets", revisions="controllerrevisions"
    ),
    "Rollout": RolloutTarget("Rollout", "argoproj.io", "v1alpha1", "rollouts"),
}


def target_of(kind: WorkloadKind) -> Target:
    """The implementation for ``kind``."""
    return TARGETS[kind]


@dataclass(frozen=True)
class LiveReads:
    """A cycle's reads (``control.members.Reads``) from the API server."""

    cluster: Cluster

    def workload(self, target: TargetRef, *, namespace: str) -> dict[str, Any]:
        return target_of(target.kind).read(self.cluster, namespace=namespace, name=target.name)

    def history(
        self, target: TargetRef, *, namespace: str, workload: Mapping[str, Any]
    ) -> list[RevisionRecord]:
        return target_of(target.kind).history(self.cluster, namespace=namespace, workload=workload)
