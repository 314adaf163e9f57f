"""Commands for people, against a cluster: approve, reject and review a decision, explain it,
clear an escalation, verify the audit chains, and read what ``playbook``, ``inventory``,
``journal``, ``calibrate`` and the dashboard report on.

Called by ``rollguard.cli`` and ``rollguard.web``, with keyword arguments (never the parsed command line) and the
cluster to speak to, from ``cluster_for``: the caller's kubeconfig, so the API server's RBAC and
admission policies apply to them exactly as to ``kubectl``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollguard.api.decision import (
    FINAL_PHASES,
    ApprovalVerdict,
    RegressionFinding,
    ReviewVerdict,
    RollbackDecisionSpec,
    RollbackDecisionStatus,
)
from rollguard.api.labels import CLEAR_ANNOTATION
from rollguard.api.modeldeployment import AuditHead
from rollguard.core.audit import ChainEntry, ChainReport, verify
from rollguard.core.times import format_time
from rollguard.kube.client import (
    ApiError,
    Cluster,
    ConnectionSetupError,
    api_message,
    connect,
)


class CommandError(Exception):
    """A command failed for a reason the user can act on; the message says it in one line."""


class NotFoundError(CommandError):
    """The object asked for does not exist."""


# The API server's words for an RBAC refusal: which verb on which resource, and where.
_RBAC_REFUSAL = re.compile(
    r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)"(?: in API group "(?P<group>[^"]*)")?'
    r'(?: in the namespace "(?P<namespace>[^"]+)")?'
)


class ForbiddenError(CommandError):
    """The API server refused the caller (HTTP 403). ``verb``, ``resource`` (plural.group) and
    ``namespace`` (None: cluster-wide) name the missing permission when RBAC refused it; all
    three are None when something else did (an admission policy): the message says what."""

    def __init__(
        self, message: str, *, verb: str | None, resource: str | None, namespace: str | None
    ) -> None:
        super().__init__(message)
        self.verb, self.resource, self.namespace = verb, resource, namespace


def _refusal(err: ApiError, what: str) -> CommandError:
    """The error a command raises for an API error while doing ``what``."""
    text = f"{what}: {api_message(err)}"
    if err.status == 404:
        return NotFoundError(text)
    if err.status != 403:
        return CommandError(text)
    found = _RBAC_REFUSAL.search(api_message(err))
    if found is None:
        return ForbiddenError(text, verb=None, resource=None, namespace=None)
    group = found["group"]
    return ForbiddenError(
        text,
        verb=found["verb"],
        resource=f"{found['resource']}.{group}" if group else found["resource"],
        namespace=found["namespace"],
    )


def cluster_for(*, kubeconfig: str | None, context: str | None) -> Cluster:
    """The cluster as the caller sees it: a kubeconfig file (None: ``KUBECONFIG`` or
    ~/.kube/config) and a context in it (None: its current one). The commands below take what
    this returns."""
    try:
        api = connect(kubeconfig=kubeconfig, context=context)
    except ConnectionSetupError as err:
        raise CommandError(f"cannot connect to the cluster: {err}") from err
    return Cluster(api)


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
        raise _refusal(err, f"the API server refused the {noun} of {name}") from err
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
        raise _refusal(err, f"the API server refused the {noun} of {name}") from err
    return username


def whoami(*, cluster: Cluster) -> str:
    """The caller's username, as the API server authenticated them."""
    try:
        return cluster.whoami()[0]
    except ApiError as err:
        raise _refusal(err, "cannot ask the API server who you are") from err


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
            raise _refusal(err, "cannot list ModelDeployments in all namespaces") from err
    items: list[dict[str, Any]] = []
    for ns in fallback:
        try:
            items += cluster.list_objects("ModelDeployment", namespace=ns)
        except ApiError as err:
            raise _refusal(err, f"cannot list ModelDeployments in namespace {ns}") from err
    return Listing(items, list(fallback))


def get_decision(*, cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """A RollbackDecision, as the API server returns it."""
    try:
        return cluster.get("RollbackDecision", namespace=namespace, name=name)
    except ApiError as err:
        raise _refusal(err, f"RollbackDecision {namespace}/{name}") from err


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


def explain(*, cluster: Cluster, namespace: str, name: str) -> str:
    """The decision in plain words, with its numbers."""
    try:
        obj = cluster.get("RollbackDecision", namespace=namespace, name=name)
    except ApiError as err:
        raise CommandError(f"RollbackDecision {namespace}/{name}: {api_message(err)}") from err
    return explain_text(obj)


def explain_text(obj: dict[str, Any]) -> str:
    spec = RollbackDecisionSpec.model_validate(obj["spec"])
    status = RollbackDecisionStatus.model_validate(obj.get("status") or {})
    rec, trig, impact = spec.recommended, spec.trigger, spec.impact
    lines = [
        f"RollbackDecision {obj['metadata']['namespace']}/{obj['metadata']['name']} "
        f"for ModelDeployment {spec.model_deployment_ref.name} ({spec.target.kind} {spec.target.name})",
        f"  Evaluated {spec.evaluated_at.isoformat()} under RollbackPolicy {spec.policy.namespace}/{spec.policy.name} "
        f"(generation {spec.policy.generation}, tier {spec.policy.effective.risk_tier}, mode {spec.mode})",
        "",
        f"Why: impact score {impact.score:.3f} stayed >= {trig.min_score} for {trig.sustained_seconds:.0f}s "
        f"(curve point {trig.index}: {trig.action} after {trig.sustained_for}).",
    ]
    if impact.forced_by:
        lines.append(
            f"  Impact forced to 1 by key signal(s) {', '.join(impact.forced_by)} at severity 1 "
            "(a key signal at severity 1 counts whatever the weights); the weighted mean of "
            "category severities does not count:"
        )
    else:
        lines.append("  Impact = weighted mean of category severities:")
    for c in impact.categories:
        lines.append(f"    {c.name:<20} weight {c.weight:<6g} severity {c.severity:.3f}")
    if impact.money_at_risk:
        m = impact.money_at_risk
        lines.append(f"  Money at risk: {m.per_hour:,.2f} {m.currency} per hour")
    lines.append("  Signals (bound given the benefit of the doubt vs objective + margin):")
    keys = {s.name for s in spec.policy.effective.signals if s.key}
    for s in spec.signals:
        name = f"{s.name} (key)" if s.name in keys else s.name
        lines.append(f"    {name:<20} {s.status:<12} severity {s.severity:.3f}  {s.message}")
    lines += ["", "Options (expected loss in impact-hours):"]
    for o in spec.options:
        target = f" to revision {o.to_revision}" if o.to_revision is not None else ""
        where = "inside" if o.within_boundary else "outside"
        avail = "" if o.available else " [not available]"
        lines.append(
            f"  {o.action}{target}: {o.expected_loss:.3f}, {where} the auto-approval boundary{avail}; {o.reason}"
        )
    target = (
        f" revision {rec.from_revision} -> {rec.to_revision}" if rec.to_revision is not None else ""
    )
    lines += ["", f"Recommended: {rec.action}{target}. {rec.reason}"]
    lines.append(
        f"Approval: {'required: ' if spec.requires_approval else 'not required: '}{spec.approval_reason}"
    )
    if spec.approval:
        lines.append(f"  {spec.approval.decision} by {spec.approval.by}: {spec.approval.reason}")
    lines.append(f"Phase: {status.phase or 'New'}. {status.message}")
    if status.validation:
        v = status.validation
        lines.append(
            f"Validation: {v.verdict or 'in progress'} (score below {v.criteria.clear_below} for {v.criteria.window} "
            f"after the rollout, within {v.criteria.rollout_timeout}); max observed {v.observed_max_score}"
        )
    if status.outcome:
        lines.append(f"Outcome: {status.outcome.summary}")
    if spec.review:
        r = spec.review
        lines.append(
            f"Review: {r.verdict}, regression {r.regression}, by {r.by} at "
            f"{r.reviewed_at.isoformat()}: {r.notes}"
        )
    if status.audit:
        lines.append(
            f"Audit: #{status.audit.sequence} {status.audit.hash} (previous {status.audit.previous_hash})"
        )
    return "\n".join(lines)


def _head(mdep: dict[str, Any]) -> AuditHead:
    return AuditHead.model_validate(((mdep.get("status") or {}).get("audit")) or {})


def _chains(decisions: list[dict[str, Any]]) -> dict[tuple[str, str], list[ChainEntry]]:
    """The decisions as chain entries, by (namespace, ModelDeployment)."""
    chains: dict[tuple[str, str], list[ChainEntry]] = defaultdict(list)
    for d in decisions:
        spec = RollbackDecisionSpec.model_validate(d["spec"])
        audit = (d.get("status") or {}).get("audit") or {}
        key = (d["metadata"]["namespace"], spec.model_deployment_ref.name)
        chains[key].append(
            ChainEntry(
                d["metadata"]["name"],
                spec,
                audit.get("sequence"),
                audit.get("hash"),
                audit.get("previousHash"),
            )
        )
    return chains


def verify_chain(*, cluster: Cluster, namespace: str, model_deployment: str) -> ChainReport:
    """Walk one ModelDeployment's decision chain, as ``audit verify`` does."""
    try:
        decisions = cluster.list_objects("RollbackDecision", namespace=namespace)
        try:
            head = _head(cluster.get("ModelDeployment", namespace=namespace, name=model_deployment))
        except ApiError as err:
            if err.status != 404:
                raise
            head = AuditHead()
    except ApiError as err:
        raise _refusal(
            err, f"cannot read the audit chain of {namespace}/{model_deployment}"
        ) from err
    entries = _chains(decisions).get((namespace, model_deployment), [])
    return verify(f"{namespace}/{model_deployment}", entries, head)


def audit_verify(*, cluster: Cluster, namespace: str | None) -> tuple[str, bool]:
    """Walk every ModelDeployment's decision chain (of ``namespace``, or all when None);
    returns the report and whether all are intact."""
    chains = _chains(cluster.list_objects("RollbackDecision", namespace=namespace))
    mdeps = cluster.list_objects("ModelDeployment", namespace=namespace)
    heads = {(m["metadata"]["namespace"], m["metadata"]["name"]): _head(m) for m in mdeps}
    lines, intact = [], True
    for key in sorted(set(chains) | {k for k, h in heads.items() if h.sequence}):
        report = verify(f"{key[0]}/{key[1]}", chains.get(key, []), heads.get(key, AuditHead()))
        intact &= report.intact
        verdict = "intact" if report.intact else "BROKEN"
        lines.append(f"{report.model_deployment}: {report.checked} decision(s), chain {verdict}")
        lines += [f"  - {p}" for p in report.problems]
    if not lines:
        lines.append("no decisions found")
    return "\n".join(lines), intact
