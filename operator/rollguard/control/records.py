"""RollbackDecisions: created once per trigger episode, sealed into the hash chain, and the
index of them the cycle consults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollguard.api import API_VERSION
from rollguard.api.decision import FINAL_PHASES, RollbackDecisionSpec
from rollguard.api.labels import (
    ANNOTATION_PREVIOUS,
    ANNOTATION_SEQUENCE,
    LABEL_MODEL_DEPLOYMENT,
    LABEL_POLICY,
)
from rollguard.api.modeldeployment import AuditHead, ModelDeploymentStatus
from rollguard.api.policy import Action
from rollguard.control import reasons
from rollguard.control import telemetry as observe
from rollguard.core.audit import GENESIS, link_hash
from rollguard.core.display import reason_text, score_text
from rollguard.core.times import api_seconds
from rollguard.kube.client import ApiError, Cluster


@dataclass(frozen=True)
class DecisionSummary:
    """What the evaluation cycle needs to know of a decision."""

    namespace: str
    name: str
    model_deployment: str
    phase: str
    executed_at: float | None  # when it changed the Deployment (cooldown and budget count it)
    sequence: int
    hash: str
    requires_approval: bool = False
    action: Action = "Hold"  # the recommended action
    acts: bool = False  # a Rollback or Pause in Enforce mode: it may change the Deployment
    exported: bool = False  # its final audit line is written

    @property
    def final(self) -> bool:
        return self.phase in FINAL_PHASES

    @property
    def unfinished(self) -> bool:
        """Not final yet, or final but sealed and not exported: its lifecycle has work left."""
        return not self.final or (bool(self.hash) and not self.exported)

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> DecisionSummary:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        execution = status.get("execution") or {}
        audit = status.get("audit") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            model_deployment=(spec.get("modelDeploymentRef") or {}).get("name", ""),
            phase=status.get("phase") or "",
            executed_at=api_seconds(execution.get("startedAt"))
            if execution.get("patched")
            else None,
            sequence=int(audit.get("sequence") or annotations.get(ANNOTATION_SEQUENCE) or 0),
            hash=str(audit.get("hash") or ""),
            requires_approval=bool(spec.get("requiresApproval")),
            action=_action((spec.get("recommended") or {}).get("action")),
            acts=spec.get("mode") != "DryRun"
            and (spec.get("recommended") or {}).get("action") in ("Rollback", "Pause"),
            exported=bool(audit.get("exported")),
        )


def linked(obj: Mapping[str, Any]) -> bool:
    """Whether the decision carries the audit link the operator fixes when it creates one."""
    annotations = obj["metadata"].get("annotations") or {}
    sequence = str(annotations.get(ANNOTATION_SEQUENCE, ""))
    previous = str(annotations.get(ANNOTATION_PREVIOUS, ""))
    return sequence.isdigit() and int(sequence) >= 1 and previous.startswith("sha256:")


def seal(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The status a decision is sealed with: ``audit``, from the link fixed at its creation
    (annotations), and the short forms ``kubectl get`` shows (``scoreText``, ``reasonText``),
    which ride along with that write."""
    annotations = obj["metadata"].get("annotations") or {}
    sequence = int(annotations[ANNOTATION_SEQUENCE])
    previous = annotations[ANNOTATION_PREVIOUS]
    spec = RollbackDecisionSpec.model_validate(obj["spec"])
    digest = link_hash(
        previous_hash=previous, sequence=sequence, name=obj["metadata"]["name"], spec=spec
    )
    return {
        "audit": {
            "sequence": sequence,
            "hash": digest,
            "previousHash": previous,
            "exported": False,
        },
        "scoreText": score_text(spec.impact.score),
        "reasonText": reason_text(spec),
    }


def confirmed_history(
    cluster: Cluster, member_obj: Mapping[str, Any]
) -> tuple[list[DecisionSummary], AuditHead]:
    """The ModelDeployment's decisions and chain head as the API server has them, read just
    before a decision is created. The watch caches a cycle runs on can lag (for a while after
    a peering pause, the other replica's decisions are missing): a decision made from them
    could duplicate one still open, or link to a stale head and fork the chain."""
    meta = member_obj["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    items = cluster.list_objects(
        "RollbackDecision", namespace=namespace, label_selector=f"{LABEL_MODEL_DEPLOYMENT}={name}"
    )
    live = cluster.get("ModelDeployment", namespace=namespace, name=name)
    head = ModelDeploymentStatus.model_validate(live.get("status") or {}).audit
    return [DecisionSummary.of(item) for item in items], head


def next_link(known: Sequence[DecisionSummary], audit_head: AuditHead) -> tuple[int, str]:
    """The sequence number and previous hash of the next decision in the chain."""
    newest = max([*known], key=lambda d: d.sequence, default=None)
    if newest is not None and newest.sequence >= audit_head.sequence:
        return newest.sequence + 1, newest.hash or audit_head.hash
    return audit_head.sequence + 1, audit_head.hash or audit_head.pruned_hash


def _action(value: Any) -> Action:
    return "Rollback" if value == "Rollback" else "Pause" if value == "Pause" else "Hold"


def create_decision(
    *,
    cluster: Cluster,
    recorder: observe.Recorder,
    member_obj: Mapping[str, Any],
    name: str,
    spec: RollbackDecisionSpec,
    audit_head: AuditHead,
    known: Sequence[DecisionSummary],
    policy_key: tuple[str, str],
) -> dict[str, Any]:
    """Create the decision (or find it, if an earlier attempt got as far as creating it) and
    seal it into the chain. The chain link is fixed in annotations at creation, atomically
    with the evidence, so a crash before sealing loses nothing."""
    meta = member_obj["metadata"]
    namespace = meta["namespace"]
    sequence, previous = next_link(known, audit_head)
    body = {
        "apiVersion": API_VERSION,
        "kind": "RollbackDecision",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_MODEL_DEPLOYMENT: meta["name"],
                LABEL_POLICY: f"{policy_key[0]}.{policy_key[1]}",
            },
            "annotations": {
                ANNOTATION_SEQUENCE: str(sequence),
                ANNOTATION_PREVIOUS: previous or GENESIS,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "ModelDeployment",
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "spec": spec.wire(),
    }
    try:
        created = cluster.create("RollbackDecision", namespace=namespace, body=body)
        fresh = True
    except ApiError as err:
        if err.status != 409:
            raise
        created = cluster.get("RollbackDecision", namespace=namespace, name=name)
        fresh = False
    if not (created.get("status") or {}).get("audit"):
        created = cluster.patch_status(
            "RollbackDecision", namespace=namespace, name=name, status=seal(created)
        )
    if fresh:
        rec = spec.recommended
        reason = {"Rollback": reasons.ROLLBACK_RECOMMENDED, "Pause": reasons.PAUSE_RECOMMENDED}.get(
            rec.action, reasons.HOLD_RECOMMENDED
        )
        target = f" to revision {rec.to_revision}" if rec.to_revision is not None else ""
        recorder.transition(
            obj=created,
            reason=reason,
            message=f"{rec.action}{target} recommended for ModelDeployment {namespace}/{meta['name']}: {rec.reason}",
            warning=rec.action != "Hold",
            action=rec.action,
            score=spec.impact.score,
            fromRevision=rec.from_revision,
            toRevision=rec.to_revision,
            requiresApproval=spec.requires_approval,
            audit=created.get("status", {}).get("audit"),
        )
        observe.DECISIONS.labels(action=rec.action).inc()
    return created
