"""``rollguard audit verify`` and the dashboard's chain state: each ModelDeployment's decision
chain walked and checked."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rollguard.api.decision import (
    RollbackDecisionSpec,
)
from rollguard.api.modeldeployment import AuditHead
from rollguard.commands.errors import api_refusal
from rollguard.core.audit import ChainEntry, ChainReport, verify
from rollguard.kube.client import (
    ApiError,
    Cluster,
)


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
        raise api_refusal(
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
