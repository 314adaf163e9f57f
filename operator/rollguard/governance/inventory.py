"""The model inventory: every ModelDeployment with its owners, risk tier, business figures,
signals and objectives, revisions, phase and last decision, and which ones have no policy or
an invalid one. Built from the live objects (``rollguard inventory`` lists them).

PURE: takes the objects as the API server returns them; renders Markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rollguard.files.loading import InputError, flatten_problems, parse_policy

COLUMNS = (
    "namespace", "name", "model", "owners", "riskTier", "business", "signals",
    "currentRevision", "approvedRevisions", "phase", "lastDecision", "policy", "policyState",
)  # fmt: skip  # grouped as the table reads: the model and its spec, then its state


@dataclass(frozen=True)
class Row:
    namespace: str
    name: str
    model: str
    owners: str
    riskTier: str  # noqa: N815 - the column names are the API's
    business: str
    signals: str
    currentRevision: str  # noqa: N815
    approvedRevisions: str  # noqa: N815
    phase: str
    lastDecision: str  # noqa: N815
    policy: str
    policyState: str  # noqa: N815


def _num(x: Any) -> str:
    return f"{x:,.10g}" if isinstance(x, int | float) and not isinstance(x, bool) else str(x)


def _business(spec: Mapping[str, Any]) -> str:
    b = spec.get("business") or {}
    parts = []
    if b.get("revenuePerHour") is not None:
        parts.append(
            f"{_num(b['revenuePerHour'])} {b.get('currency') or ''}/h".replace(" /h", "/h")
        )
    if b.get("customers") is not None:
        parts.append(f"{_num(b['customers'])} customers")
    parts += [f"{k} {_num(v)}" for k, v in sorted((b.get("figures") or {}).items())]
    return "; ".join(parts)


def _policy_state(doc: Mapping[str, Any] | None, source: str) -> tuple[str, str, str]:
    """(state, tier, signals) of a policy object."""
    if doc is None:
        return "Missing", "", ""
    conditions = (doc.get("status") or {}).get("conditions") or []
    invalid = next(
        (c for c in conditions if c.get("type") == "Invalid" and c.get("status") == "True"), None
    )
    try:
        # Judged on what its author wrote; the status is the operator's.
        written = {k: doc.get(k) for k in ("apiVersion", "kind", "metadata", "spec")}
        policy = parse_policy(written, source=source)
    except InputError as err:
        tier = str((doc.get("spec") or {}).get("riskTier") or "")
        return f"Invalid: {flatten_problems(str(err))}", tier, ""
    signals = "; ".join(
        f"{s.name} {'<=' if s.objective.direction == 'max' else '>='} {_num(s.objective.value)}"
        for s in policy.signals
    )
    if invalid is not None:
        return f"Invalid: {invalid.get('message', '')}", policy.risk_tier, signals
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ("Ready" if ready else "NotReady"), policy.risk_tier, signals


def inventory(
    model_deployments: Sequence[Mapping[str, Any]], policies: Sequence[Mapping[str, Any]]
) -> list[Row]:
    """One row per ModelDeployment, sorted by namespace and name."""
    by_key = {
        (str(p["metadata"].get("namespace")), str(p["metadata"]["name"])): p for p in policies
    }
    rows = []
    for m in model_deployments:
        meta, spec = m["metadata"], m.get("spec") or {}
        status = m.get("status") or {}
        namespace = str(meta.get("namespace") or "")
        ref = spec.get("policyRef") or {}
        key = (str(ref.get("namespace") or namespace), str(ref.get("name") or ""))
        state, tier, signals = _policy_state(by_key.get(key), f"RollbackPolicy {key[0]}/{key[1]}")
        model = spec.get("model") or {}
        owners = ", ".join(
            f"{o.get('name')}" + (f" ({o['role']})" if o.get("role") else "")
            for o in spec.get("owners") or []
        )
        approved = ", ".join(
            f"{a.get('revision')} ({a.get('source')})"
            for a in status.get("approvedRevisions") or []
        )
        rows.append(
            Row(
                namespace=namespace,
                name=str(meta["name"]),
                model=" ".join(str(x) for x in (model.get("name"), model.get("version")) if x),
                owners=owners,
                riskTier=tier,
                business=_business(spec),
                signals=signals,
                currentRevision=str(status.get("currentRevision") or ""),
                approvedRevisions=approved,
                phase=str(status.get("phase") or ""),
                lastDecision=str(status.get("lastDecision") or ""),
                policy=f"{key[0]}/{key[1]}",
                policyState=state,
            )
        )
    return sorted(rows, key=lambda r: (r.namespace, r.name))


def to_markdown(rows: Sequence[Row]) -> str:
    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ") or "—"

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(getattr(r, c)) for c in COLUMNS) + " |" for r in rows]
    problems = [r for r in rows if r.policyState != "Ready"]
    lines += ["", f"{len(rows)} ModelDeployment(s); {len(problems)} without a Ready policy."]
    lines += [f"- {r.namespace}/{r.name}: policy {r.policy} {r.policyState}" for r in problems]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    return out.getvalue()


def to_json(rows: Sequence[Row]) -> str:
    return json.dumps({"items": [asdict(r) for r in rows]}, indent=2) + "\n"


RENDERERS = {"markdown": to_markdown, "csv": to_csv, "json": to_json}
