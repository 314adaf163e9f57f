"""Commands for people, against a cluster: approve, reject and review a decision, explain it,
clear an escalation, verify the audit chains, and read what ``playbook``, ``inventory``,
``journal``, ``calibrate`` and the dashboard report on.

Called by ``rollguard.cli`` and ``rollguard.web``, with keyword arguments (never the parsed
command line) and the cluster to speak to, from ``cluster_for``: the caller's kubeconfig, so
the API server's RBAC and admission policies apply to them exactly as to ``kubectl``. What they
raise and ``cluster_for`` are in ``errors``; ``explain`` and ``audit`` hold those commands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollguard.api.decision import (
    FINAL_PHASES,
    ApprovalVerdict,
    RegressionFinding,
    ReviewVerdict,
)
from rollguard.api.labels import CLEAR_ANNOTATION
from rollguard.commands.audit import audit_verify, verify_chain
from rollguard.commands.errors import (
    CommandError,
    ForbiddenError,
    NotFoundError,
    api_refusal,
    cluster_for,
)
from rollguard.commands.explain import explain, explain_text
from rollguard.core.times import format_time
from rollguard.kube.client import (
    ApiError,
    Cluster,
    api_message,
)


def _write_once(
    *,
    cluster: Cluster,
    namespace: str,
    name: str,
    field: str,
    noun: str,
    value: Callable[[str], dict[str, Any]],
    phase_ok: Callable[[str | None], str | None],
) -> str:
    """Write ``spec.<field>`` of a decision as the caller, once. ``phase_ok`` says why the
    decision's phase does not allow it (None if it does). The write is conditional on the
    decision not having changed since it was read; returns the caller's username."""
    username = whoami(cluster=cluster)
    where = f"RollbackDecision {namespace}/{name}"
    try:
        obj = cluster.get("RollbackDecision", namespace=namespace, name=name)
    except ApiError as err:
        if err.status == 404:
            raise NotFoundError(f"{where} not found") from err
        raise api_refusal(err, f"the API server refused the {noun} of {name}") from err
    given = (obj.get("spec") or {}).get(field)
    if given:
        verdict = given.get("decision") or given.get("verdict")
        raise CommandError(
            f"{where} already has {'an' if field[0] in 'aeiou' else 'a'} {field}: {verdict} by "
            f"{given.get('by')}; it is set once"
        )
    refusal = phase_ok((obj.get("status") or {}).get("phase"))
    if refusal:
        raise CommandError(f"{where} is {refusal}")
    body = {
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
        "spec": {field: value(username)},
    }
    try:
        cluster.patch("RollbackDecision", namespace=namespace, name=name, body=body)
    except ApiError as err:
        if err.status == 409:
            raise CommandError(
                f"{where} changed while you were deciding; look at it again and retry"
            ) from err
        raise api_refusal(err, f"the API server refused the {noun} of {name}") from err
    return username


def whoami(*, cluster: Cluster) -> str:
    """The caller's username, as the API server authenticated them."""
    try:
        return cluster.whoami()[0]
    except ApiError as err:
        raise api_refusal(err, "cannot ask the API server who you are") from err


@dataclass(frozen=True)
class Listing:
    """ModelDeployments the caller may read: cluster-wide (``namespaces`` None) or, when the
    caller may not list them cluster-wide, of the namespaces they named."""

    items: list[dict[str, Any]]
    namespaces: list[str] | None


def list_model_deployments(*, cluster: Cluster, fallback: Sequence[str]) -> Listing:
    """Every ModelDeployment the caller may list; on a 403 cluster-wide, those of the
    ``fallback`` namespaces (a 403 there is the caller's answer)."""
    try:
        return Listing(cluster.list_objects("ModelDeployment"), None)
    except ApiError as err:
        if err.status != 403 or not fallback:
            where = "" if fallback or err.status != 403 else " (name the ones you may read: -n)"
            raise api_refusal(
                err, f"cannot list ModelDeployments in all namespaces{where}"
            ) from err
    items: list[dict[str, Any]] = []
    for ns in fallback:
        try:
            items += cluster.list_objects("ModelDeployment", namespace=ns)
        except ApiError as err:
            raise api_refusal(err, f"cannot list ModelDeployments in namespace {ns}") from err
    return Listing(items, list(fallback))


def get_decision(*, cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """A RollbackDecision, as the API server returns it."""
    try:
        return cluster.get("RollbackDecision", namespace=namespace, name=name)
    except ApiError as err:
        raise api_refusal(err, f"RollbackDecision {namespace}/{name}") from err


def set_approval(
    *,
    cluster: Cluster,
    namespace: str,
    name: str,
    verdict: ApprovalVerdict,
    reason: str,
) -> str:
    """Write spec.approval as the caller; the API server checks ``by`` is really them. Only a
    decision waiting for approval can be approved or rejected. Returns the caller's username."""

    def pending(phase: str | None) -> str | None:
        if phase == "PendingApproval":
            return None
        return (
            f"{phase or 'not yet processed'}; only a decision in PendingApproval can be "
            "approved or rejected"
        )

    return _write_once(
        cluster=cluster,
        namespace=namespace,
        name=name,
        field="approval",
        noun={"Approve": "approval", "Reject": "rejection"}[verdict],
        value=lambda user: {"decision": verdict, "by": user, "reason": reason},
        phase_ok=pending,
    )


def set_review(
    *,
    cluster: Cluster,
    namespace: str,
    name: str,
    verdict: ReviewVerdict,
    regression: RegressionFinding,
    notes: str,
    now: datetime,
) -> str:
    """Write spec.review as the caller, once, on a decision that has ended; the API server
    checks ``by`` is really them and that the decision is final. Returns the caller's
    username."""

    def final(phase: str | None) -> str | None:
        if phase in FINAL_PHASES:
            return None
        return f"{phase or 'not yet processed'}; a decision is reviewed once it has ended"

    return _write_once(
        cluster=cluster,
        namespace=namespace,
        name=name,
        field="review",
        noun="review",
        value=lambda user: {
            "verdict": verdict,
            "regression": regression,
            "by": user,
            "notes": notes,
            "reviewedAt": format_time(now),
        },
        phase_ok=final,
    )


def clear_escalation(*, cluster: Cluster, namespace: str, name: str, now: datetime) -> None:
    """Let automatic actions resume on an Escalated ModelDeployment (an annotation the
    operator reads; it never writes it)."""
    stamp = format_time(now)
    try:
        cluster.patch(
            "ModelDeployment",
            namespace=namespace,
            name=name,
            body={"metadata": {"annotations": {CLEAR_ANNOTATION: stamp}}},
        )
    except ApiError as err:
        raise CommandError(f"ModelDeployment {namespace}/{name}: {api_message(err)}") from err


def get_policy(*, cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """A RollbackPolicy from the cluster, as the API server returns it."""
    try:
        return cluster.get("RollbackPolicy", namespace=namespace, name=name)
    except ApiError as err:
        raise CommandError(
            f"RollbackPolicy {namespace}/{name}: {api_message(err)} (and no file of that name)"
        ) from err


def list_for_inventory(
    *, cluster: Cluster, namespace: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ModelDeployments (of ``namespace``, or all when None) and every RollbackPolicy they may
    refer to."""
    try:
        mdeps = cluster.list_objects("ModelDeployment", namespace=namespace)
        try:
            # A ModelDeployment may use a policy of a central namespace: read them all...
            policies = cluster.list_objects("RollbackPolicy")
        except ApiError as err:
            if err.status != 403:
                raise
            # ...or, without the right to, those of the namespaces the ModelDeployments name.
            wanted = {
                ((m.get("spec") or {}).get("policyRef") or {}).get("namespace")
                or m["metadata"]["namespace"]
                for m in mdeps
            }
            policies = [
                p
                for ns in sorted(wanted)
                for p in cluster.list_objects("RollbackPolicy", namespace=ns)
            ]
    except ApiError as err:
        raise CommandError(
            f"cannot list ModelDeployments and policies: {api_message(err)}"
        ) from err
    return mdeps, policies


def list_decisions(*, cluster: Cluster, namespace: str | None) -> list[dict[str, Any]]:
    """RollbackDecisions of ``namespace`` (all when None), as the API server returns them."""
    try:
        return cluster.list_objects("RollbackDecision", namespace=namespace)
    except ApiError as err:
        raise CommandError(f"cannot list RollbackDecisions: {api_message(err)}") from err


__all__ = [
    "CommandError",
    "ForbiddenError",
    "Listing",
    "NotFoundError",
    "audit_verify",
    "clear_escalation",
    "cluster_for",
    "explain",
    "explain_text",
    "get_decision",
    "get_policy",
    "list_decisions",
    "list_for_inventory",
    "list_model_deployments",
    "set_approval",
    "set_review",
    "verify_chain",
    "whoami",
]
