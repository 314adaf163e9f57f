"""What happens to a decision once it is final: its audit line is exported, the chain of its
ModelDeployment's decisions is pruned from its start, and a review written later is exported
once.

``prunable`` decides which decisions go; ``export`` and ``record_review`` write. Called by
``lifecycle`` (``export``) and by the handlers (``review_pending``, ``record_review``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rollguard.api.decision import FINAL_PHASES
from rollguard.api.labels import LABEL_MODEL_DEPLOYMENT
from rollguard.control import reasons
from rollguard.control import telemetry as observe
from rollguard.control.notifications import unsettled
from rollguard.control.steps import Lifecycle, Step
from rollguard.kube.client import ApiError


def review_pending(obj: Mapping[str, Any]) -> bool:
    """Whether the decision carries a review that has not been exported yet."""
    audit = (obj.get("status") or {}).get("audit") or {}
    return bool((obj.get("spec") or {}).get("review")) and not audit.get("reviewExported")


def record_review(life: Lifecycle, obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Export a decision's review, once: an audit line carrying it (so the journal kept beyond
    etcd has it), an Event and a metric, then ``status.audit.reviewExported``. Returns the
    decision as persisted, or None when there was nothing to record."""
    meta = obj["metadata"]
    with life.memory.serialised(meta["namespace"], meta["name"]):
        fresh = life.cluster.get("RollbackDecision", namespace=meta["namespace"], name=meta["name"])
        if not review_pending(fresh):
            return None
        step = Step(life, fresh, time.time())
        review, audit = step.spec.review, step.status.audit
        if review is None or audit is None:
            return None  # not sealed yet: the decision's own loop seals it first
        observe.REVIEWS.labels(verdict=review.verdict, regression=review.regression).inc()
        life.recorder.transition(
            obj=fresh,
            reason=reasons.DECISION_REVIEWED,
            message=f"Reviewed by {review.by}: {review.verdict}, regression {review.regression}. "
            f"{review.notes}",
            phase=step.status.phase,
            modelDeployment=step.spec.model_deployment_ref.name,
            sequence=audit.sequence,
            hash=audit.hash,
            review=review.wire(),
        )
        return life.cluster.patch_status(
            "RollbackDecision",
            namespace=step.namespace,
            name=step.name,
            status={"audit": {**audit.wire(), "reviewExported": True}},
        )


def prunable(items: Sequence[Mapping[str, Any]], *, keep: int) -> list[Mapping[str, Any]]:
    """The decisions to delete of one ModelDeployment's ``items``, oldest first: beyond the
    newest ``keep`` sealed ones, from the chain's start only, and only final ones exported
    (their review too) whose messages are settled."""
    sealed = sorted(
        (i for i in items if (i.get("status") or {}).get("audit")),
        key=lambda i: i["status"]["audit"]["sequence"],
    )
    out: list[Mapping[str, Any]] = []
    for item in sealed[: max(0, len(sealed) - keep)]:
        st = item["status"]
        if (
            st.get("phase") not in FINAL_PHASES
            or not st["audit"].get("exported")
            or review_pending(item)
            or unsettled(st)  # its messages are still being delivered
        ):
            break
        out.append(item)
    return out


def export(step: Step) -> None:
    """Once final: the audit line with the whole decision, then garbage collection."""
    audit = step.status.audit
    if audit is None or audit.exported:
        return
    step.life.recorder.audit.write(
        {
            "event": "DecisionFinal",
            "namespace": step.namespace,
            "name": step.name,
            "decision": dict(step.obj),
        }
    )
    step.patch({"audit": {**audit.wire(), "exported": True}})
    _collect(step)


def _collect(step: Step) -> None:
    """Keep the newest ``keep_decisions`` decisions of the ModelDeployment; older final,
    exported ones are deleted and the chain head records where the chain now begins."""
    cluster, mdep_name = step.life.cluster, step.spec.model_deployment_ref.name
    items = cluster.list_objects(
        "RollbackDecision",
        namespace=step.namespace,
        label_selector=f"{LABEL_MODEL_DEPLOYMENT}={mdep_name}",
    )
    for item in prunable(items, keep=step.life.keep_decisions):
        audit = item["status"]["audit"]
        try:
            cluster.delete(
                "RollbackDecision", namespace=step.namespace, name=item["metadata"]["name"]
            )
        except ApiError as err:
            if err.status != 404:
                raise
        cluster.patch_status(
            "ModelDeployment",
            namespace=step.namespace,
            name=mdep_name,
            status={"audit": {"prunedThrough": audit["sequence"], "prunedHash": audit["hash"]}},
        )
        step.life.recorder.audit.write(
            {
                "event": reasons.DECISION_PRUNED,
                "namespace": step.namespace,
                "name": item["metadata"]["name"],
                "sequence": audit["sequence"],
            }
        )
