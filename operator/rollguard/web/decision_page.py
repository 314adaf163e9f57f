"""The page of one RollbackDecision: its signals charted against their limits, the score
against the threshold curve, the options, the recommendation, the approval (with the Approve
and Reject forms while it is pending), execution, validation, the audit chain and the
notifications. PURE: the decision as the API server returns it in, HTML out. Called by
``rollguard.web.server``.

Limits come from ``core.severity.signal_limit``, the function the decision machine uses: the
page draws what was decided, it does not re-derive it.
"""

from __future__ import annotations

from typing import Any

from rollguard.api.base import duration_seconds
from rollguard.api.decision import (
    RollbackDecisionSpec,
    RollbackDecisionStatus,
    SignalEvidence,
)
from rollguard.api.signal import EffectiveSignal
from rollguard.core.audit import ChainReport
from rollguard.core.severity import signal_limit
from rollguard.web.charts import CurvePoint, num, score_chart, signal_chart
from rollguard.web.csrf import TOKEN_FIELD
from rollguard.web.pages import decision_path, layout, table, text

# The fields of a notification entry shown first, in this order; any others follow.
NOTIFICATION_FIELDS = ["receiver", "transition", "state", "attempts", "lastAttemptAt", "reason"]


def limit_of(spec: RollbackDecisionSpec, signal: SignalEvidence) -> float:
    """The signal's limit (objective adjusted by the margin) as the decision machine has it:
    from the decision's effective policy, else (a signal it does not list) from the evidence."""
    effective = next((e for e in spec.policy.effective.signals if e.name == signal.name), None)
    return signal_limit(
        effective
        or EffectiveSignal(
            name=signal.name,
            query=signal.query,
            objective=signal.objective,
            margin=signal.margin,
            critical=signal.critical,
            on_missing_data=signal.on_missing_data,
        )
    )


def _signals(spec: RollbackDecisionSpec) -> str:
    end = spec.evaluated_at.timestamp()
    charts = [
        "<figure>"
        + signal_chart(
            name=s.name,
            timestamps=s.samples.timestamps,
            values=s.samples.values,
            objective=s.objective.value,
            limit=limit_of(spec, s),
            critical=s.critical,
            end=end,
        )
        + f"<figcaption>{text(s.name)} (objective {text(s.objective.direction)})</figcaption>"
        "</figure>"
        for s in spec.signals
    ]
    rows = [
        [
            text(s.name),
            text(s.status),
            text(num(s.value) if s.value is not None else "—"),
            text(
                f"{num(s.lower)} … {num(s.upper)}"
                if s.lower is not None and s.upper is not None
                else "—"
            ),
            text(num(limit_of(spec, s))),
            text(f"{s.severity:.3f}"),
            text(s.message),
        ]
        for s in spec.signals
    ]
    return (
        '<section id="signals"><h2>Signals</h2><div class="charts">'
        + "".join(charts)
        + "</div>"
        + table(["Signal", "Status", "Value", "Interval", "Limit", "Severity", "How"], rows)
        + "</section>"
    )


def _score(spec: RollbackDecisionSpec) -> str:
    trig, impact = spec.trigger, spec.impact
    points = [
        CurvePoint(t.action, t.min_score, duration_seconds(t.sustained_for))
        for t in spec.policy.effective.triggers
    ]
    chart = score_chart(
        points=points,
        score=impact.score,
        sustained_seconds=trig.sustained_seconds,
        fired=trig.index,
    )
    why = (
        f"Impact score {impact.score:.3f} stayed ≥ {num(trig.min_score)} for "
        f"{trig.sustained_seconds:.0f} s (curve point {trig.index}: {trig.action} after "
        f"{trig.sustained_for})."
    )
    forced = (
        f"<p>Forced to 1 by key signal(s) {text(', '.join(impact.forced_by))}.</p>"
        if impact.forced_by
        else ""
    )
    money = impact.money_at_risk
    at_risk = (
        f"<p>Money at risk: {money.per_hour:,.2f} {text(money.currency)} per hour.</p>"
        if money
        else ""
    )
    categories = table(
        ["Category", "Weight", "Severity"],
        [
            [text(c.name), text(f"{c.weight:g}"), text(f"{c.severity:.3f}")]
            for c in impact.categories
        ],
    )
    return (
        f'<section id="score"><h2>Score and trigger</h2>{chart}<p>{text(why)}</p>{forced}'
        f"{at_risk}{categories}</section>"
    )


def _options(spec: RollbackDecisionSpec) -> str:
    money = spec.impact.money_at_risk
    currency = money.currency if money else ""
    rec = spec.recommended
    rows = []
    for o in spec.options:
        chosen = o.action == rec.action and o.to_revision == rec.to_revision
        rows.append(
            [
                text(o.action) + (" <strong>(recommended)</strong>" if chosen else ""),
                text(o.to_revision if o.to_revision is not None else "—"),
                text(f"{o.expected_loss:.3f}"),
                text(
                    f"{o.expected_money_loss:,.2f} {currency}"
                    if o.expected_money_loss is not None
                    else "—"
                ),
                "inside" if o.within_boundary else "outside",
                "yes" if o.available else "no",
                text(o.reason),
            ]
        )
    target = (
        f" revision {rec.from_revision} → {rec.to_revision}" if rec.to_revision is not None else ""
    )
    return (
        '<section id="options"><h2>Options</h2>'
        + table(
            [
                "Action",
                "To revision",
                "Expected loss (impact-hours)",
                "Expected loss (money)",
                "Auto-approval boundary",
                "Available",
                "Why",
            ],
            rows,
        )
        + f'<p id="recommendation"><strong>Recommended: {text(rec.action)}{text(target)}.</strong> '
        f"{text(rec.reason)}</p></section>"
    )


def _approval(spec: RollbackDecisionSpec, phase: str | None, path: str, csrf_token: str) -> str:
    need = "required" if spec.requires_approval else "not required"
    parts = [f"<p>Approval {need}: {text(spec.approval_reason)}</p>"]
    if spec.approval:
        a = spec.approval
        parts.append(
            f'<p id="approval">{text(a.decision)} by <strong>{text(a.by)}</strong>: '
            f"{text(a.reason)}</p>"
        )
    elif phase == "PendingApproval":
        for verdict, label in (("Approve", "Approve"), ("Reject", "Reject")):
            parts.append(
                f'<form class="approval" method="post" action="{text(path)}">'
                f'<input type="hidden" name="{TOKEN_FIELD}" value="{text(csrf_token)}">'
                f'<input type="hidden" name="verdict" value="{verdict}">'
                f'<label>Reason<br><textarea name="reason" required minlength="1" '
                f'maxlength="4096" id="reason-{verdict.lower()}"></textarea></label><br>'
                f'<button type="submit" id="{verdict.lower()}">{label}</button></form>'
            )
    return f'<section id="approval-section"><h2>Approval</h2>{"".join(parts)}</section>'


def _progress(status: RollbackDecisionStatus) -> str:
    rows: list[list[str]] = []
    if status.execution:
        e = status.execution
        rows.append(
            [
                "Execution",
                text(
                    f"started {e.started_at or '—'}, finished {e.finished_at or '—'}, "
                    f"patched {'yes' if e.patched else 'no'}"
                ),
                text(e.message),
            ]
        )
    if status.validation:
        v = status.validation
        c = v.criteria
        rows.append(
            [
                "Validation",
                text(
                    f"{v.verdict or 'in progress'}: score below {c.clear_below} for {c.window} "
                    f"within {c.rollout_timeout}; max observed {v.observed_max_score}"
                ),
                text(v.message),
            ]
        )
    if status.outcome:
        rows.append(["Outcome", text(status.outcome.summary), ""])
    body = table(["Step", "State", "Detail"], rows) if rows else "<p>Not executed.</p>"
    return f'<section id="execution"><h2>Execution and validation</h2>{body}</section>'


def _audit(status: RollbackDecisionStatus, chain: ChainReport | None, chain_error: str) -> str:
    own = (
        f"<p>Sequence {status.audit.sequence}, hash <code>{text(status.audit.hash)}</code>, "
        f"previous <code>{text(status.audit.previous_hash)}</code>.</p>"
        if status.audit
        else "<p>Not sealed yet.</p>"
    )
    if chain is None:
        verdict = (
            f'<p class="bad" id="chain">The chain could not be checked: {text(chain_error)}</p>'
        )
    elif chain.intact:
        verdict = (
            f'<p class="good" id="chain">Chain of {text(chain.model_deployment)} verifies: '
            f"{chain.checked} decision(s), intact.</p>"
        )
    else:
        problems = "".join(f"<li>{text(p)}</li>" for p in chain.problems)
        verdict = (
            f'<p class="bad" id="chain">Chain of {text(chain.model_deployment)} is BROKEN:</p>'
            f"<ul>{problems}</ul>"
        )
    return f'<section id="audit"><h2>Audit chain</h2>{own}{verdict}</section>'


def _notifications(entries: Any) -> str:
    if not isinstance(entries, list) or not entries:
        return ""
    dicts = [e for e in entries if isinstance(e, dict)]
    extra = sorted({k for e in dicts for k in e} - set(NOTIFICATION_FIELDS))
    fields = [f for f in NOTIFICATION_FIELDS if any(f in e for e in dicts)] + extra
    rows = [[text(e.get(f, "")) for f in fields] for e in dicts]
    return '<section id="notifications"><h2>Notifications</h2>' + table(fields, rows) + "</section>"


def decision_page(
    obj: dict[str, Any],
    *,
    chain: ChainReport | None,
    chain_error: str = "",
    csrf_token: str,
    user: str,
) -> str:
    """The whole page of one decision (``obj`` as the API server returns it); ``chain`` is
    its ModelDeployment's audit chain report, None when it could not be read
    (``chain_error`` says why)."""
    meta = obj["metadata"]
    spec = RollbackDecisionSpec.model_validate(obj["spec"])
    raw_status = obj.get("status") or {}
    # Notifications are rendered from the raw entries, whatever fields they carry.
    status = RollbackDecisionStatus.model_validate(
        {k: v for k, v in raw_status.items() if k != "notifications"}
    )
    path = decision_path(meta["namespace"], meta["name"])
    pol = spec.policy
    summary = (
        f'<p>Phase <span class="phase" id="phase">{text(status.phase or "New")}</span> '
        f"{text(status.message)}</p>"
        f"<p>ModelDeployment <strong>{text(spec.model_deployment_ref.name)}</strong> "
        f"({text(spec.target.kind)} {text(spec.target.name)}), evaluated "
        f"{text(spec.evaluated_at.isoformat())} under RollbackPolicy "
        f"{text(pol.namespace)}/{text(pol.name)} (generation {pol.generation}, tier "
        f"{text(pol.effective.risk_tier)}, mode {text(spec.mode)}).</p>"
    )
    body = "".join(
        [
            summary,
            _score(spec),
            _signals(spec),
            _options(spec),
            _approval(spec, status.phase, path, csrf_token),
            _progress(status),
            _audit(status, chain, chain_error),
            _notifications(raw_status.get("notifications")),
        ]
    )
    return layout(f"RollbackDecision {meta['namespace']}/{meta['name']}", body, user=user)
