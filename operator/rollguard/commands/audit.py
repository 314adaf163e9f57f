"""``rollguard audit verify`` and the dashboard's chain state: each ModelDeployment's decision
chain walked and checked."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rollguard.api.decision import RollbackDecisionSpec
from rollguard.api.modeldeployment import AuditHead
from rollguard.commands.errors import api_refusal
from rollguard.core.audit import ChainEntry, ChainReport, verify
from rollguard.files.loading import validation_problems
from rollguard.kube.client import (
    ApiError,
    Cluster,
)


def _head(mdep: dict[str, Any]) -> AuditHead:
    return AuditHead.model_validate(((mdep.get("status") or {}).get("audit")) or {})


Key = tuple[str, str]  # namespace, ModelDeployment


def _chains(
    decisions: list[dict[str, Any]],
) -> tuple[dict[Key, list[ChainEntry]], dict[Key, list[str]]]:
    """The decisions as chain entries, by (namespace, ModelDeployment); and, by the same key,
    the decisions whose evidence cannot be read (an edited object, or one a newer operator
    wrote), each a problem of its chain rather than a failure of the whole walk."""
    chains: dict[Key, list[ChainEntry]] = defaultdict(list)
    unreadable: dict[Key, list[str]] = defaultdict(list)
    for d in decisions:
        ref = ((d.get("spec") or {}).get("modelDeploymentRef") or {}).get("name", "")
        key = (d["metadata"]["namespace"], str(ref))
        try:
            spec = RollbackDecisionSpec.model_validate(d["spec"])
        except (ValidationError, KeyError) as err:
            why = validation_problems(err)[0] if isinstance(err, ValidationError) else "no spec"
            unreadable[key].append(f"{d['metadata']['name']}: its evidence cannot be read ({why})")
            continue
        audit = (d.get("status") or {}).get("audit") or {}
        chains[key].append(
            ChainEntry(
                d["metadata"]["name"],
                spec,
                audit.get("sequence"),
                audit.get("hash"),
                audit.get("previousHash"),
            )
        )
    return chains, unreadable


def _verified(
    key: Key,
    chains: Mapping[Key, list[ChainEntry]],
    unreadable: Mapping[Key, list[str]],
    head: AuditHead,
) -> ChainReport:
    report = verify(f"{key[0]}/{key[1]}", chains.get(key, []), head)
    extra = unreadable.get(key, [])
    if not extra:
        return report
    return ChainReport(report.model_deployment, report.checked, [*extra, *report.problems])


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
    mine = [
        d
        for d in decisions
        if ((d.get("spec") or {}).get("modelDeploymentRef") or {}).get("name") == model_deployment
    ]
    chains, unreadable = _chains(mine)
    return _verified((namespace, model_deployment), chains, unreadable, head)


def audit_verify(*, cluster: Cluster, namespace: str | None) -> tuple[str, bool]:
    """Walk every ModelDeployment's decision chain (of ``namespace``, or all when None);
    returns the report and whether all are intact."""
    chains, unreadable = _chains(cluster.list_objects("RollbackDecision", namespace=namespace))
    mdeps = cluster.list_objects("ModelDeployment", namespace=namespace)
    heads = {(m["metadata"]["namespace"], m["metadata"]["name"]): _head(m) for m in mdeps}
    lines, intact = [], True
    for key in sorted(set(chains) | set(unreadable) | {k for k, h in heads.items() if h.sequence}):
        report = _verified(key, chains, unreadable, heads.get(key, AuditHead()))
        intact &= report.intact
        verdict = "intact" if report.intact else "BROKEN"
        lines.append(f"{report.model_deployment}: {report.checked} decision(s), chain {verdict}")
        lines += [f"  - {p}" for p in report.problems]
    if not lines:
        lines.append("no decisions found")
    return "\n".join(lines), intact
