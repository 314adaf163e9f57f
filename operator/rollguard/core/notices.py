"""Who hears of a decision, of what, and what they read: the transitions a decision's move
raises, which receivers a policy's ``notify`` subscribes to them, and the message (one screen:
model, revisions, score and money at risk, the worst signals, the recommendation, the exact
approve and reject commands and the web view's link).

Delivering a message (receivers, retries, recording) is ``control.notifications`` and
``control.delivery``; this module only decides, including a delivery attempt's outcome.
Callers: ``control.steps`` (a transition written), ``control.delivery``, the recorded-series
simulator (``simulation.virtual``) and tests. PURE.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import get_args

from rollguard.api.decision import NotificationState, RollbackDecisionSpec
from rollguard.api.policy import Notify, NotifyOn
from rollguard.core.display import reason_text, score_text

NOTIFY_ON: tuple[NotifyOn, ...] = get_args(NotifyOn)

# A decision's phases that are, by themselves, something to tell.
PHASE_EVENTS: frozenset[str] = frozenset(
    {"PendingApproval", "Approved", "Rejected", "Expired", "Succeeded", "Failed", "DryRun"}
)
WORST_SIGNALS = 3  # signals a message lists, worst first


def raised(
    phase: str, *, changed_workload: bool, validation_failed: bool, escalates: bool
) -> tuple[NotifyOn, ...]:
    """What a move to ``phase`` is, as ``notify.transitions`` names it, most specific first:
    ``changed_workload`` (the rollback or pause was applied), ``validation_failed`` (the
    change did not bring the score down, or its rollout never completed), ``escalates`` (the
    ModelDeployment stops automatic actions until a human clears it)."""
    out: list[NotifyOn] = []
    if validation_failed:
        out.append("ValidationFailed")
    if changed_workload:
        out.append("Executed")
    if phase in PHASE_EVENTS:
        out.append(phase)  # type: ignore[arg-type]  # PHASE_EVENTS holds NotifyOn values only
    if escalates:
        out.append("Escalated")
    return tuple(out)


def subscribed(notify: Sequence[Notify], events: Sequence[NotifyOn]) -> list[tuple[str, NotifyOn]]:
    """Each receiver a policy subscribes to any of ``events``, once, with the most specific
    event it asked for: one message per receiver and transition, however many lines name it."""
    wanted: dict[str, set[str]] = {}
    for n in notify:
        wanted.setdefault(n.receiver, set()).update(n.transitions)
    out: list[tuple[str, NotifyOn]] = []
    for receiver, on in wanted.items():
        first = next((e for e in events if e in on), None)
        if first is not None:
            out.append((receiver, first))
    return out


def key(uid: str, receiver: str, event: str) -> str:
    """What a receiver may deduplicate on: the same for every retry of one message."""
    return f"{uid}/{event}/{receiver}"


@dataclass(frozen=True)
class Notice:
    """One message: its headline and lines of text, and the same in fields for receivers
    that take structure (a webhook's JSON, an alert's labels)."""

    event: NotifyOn
    namespace: str
    decision: str
    model_deployment: str
    target: str
    phase: str
    title: str
    lines: tuple[str, ...]
    score: float
    money_per_hour: float | None
    currency: str | None
    action: str
    from_revision: int
    to_revision: int | None
    reason: str
    signals: tuple[dict[str, object], ...] = ()
    commands: dict[str, str] = field(default_factory=dict)
    link: str | None = None

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.lines))


def _title(event: NotifyOn, subject: str) -> str:
    return {
        "PendingApproval": f"Approval needed: {subject}",
        "Approved": f"Approved: {subject}",
        "Rejected": f"Rejected: {subject}",
        "Expired": f"Expired without approval: {subject}",
        "Executed": f"Executed: {subject}",
        "Succeeded": f"Succeeded: {subject}",
        "ValidationFailed": f"Validation failed: {subject}",
        "Failed": f"Failed: {subject}",
        "Escalated": f"Escalated to humans: {subject}",
        "DryRun": f"Dry run recorded: {subject}",
    }[event]


def _move(spec: RollbackDecisionSpec) -> str:
    rec = spec.recommended
    if rec.action == "Rollback" and rec.to_revision is not None:
        return f"Rollback revision {rec.from_revision} -> {rec.to_revision}"
    return f"{rec.action} at revision {rec.from_revision}"


def _signals(spec: RollbackDecisionSpec) -> tuple[dict[str, object], ...]:
    """The worst signals: those not Ok, worst first (at most WORST_SIGNALS); the worst one
    when all are Ok."""
    ranked = sorted(spec.signals, key=lambda s: (-s.severity, s.name))
    worst = [s for s in ranked if s.status != "Ok"][:WORST_SIGNALS] or ranked[:1]
    return tuple(
        {
            "name": s.name,
            "status": s.status,
            "value": s.value,
            "severity": round(s.severity, 4),
            "message": s.message,
        }
        for s in worst
    )


def commands(namespace: str, name: str) -> dict[str, str]:
    """The exact commands that approve or reject the decision as whoever runs them."""
    ns, nm = shlex.quote(namespace), shlex.quote(name)
    return {
        "approve": f"rollguard approve {nm} -n {ns} --reason '...'",
        "reject": f"rollguard reject {nm} -n {ns} --reason '...'",
    }


def notice(
    spec: RollbackDecisionSpec,
    *,
    event: NotifyOn,
    namespace: str,
    name: str,
    phase_now: str,
    message: str,
    dashboard_url: str | None,
) -> Notice:
    """The message telling of ``event`` for decision ``namespace/name``, which is now in
    ``phase_now`` (its status message: ``message``); ``dashboard_url``: the web view's base,
    for a link. A message delivered late says where the decision is now, and offers no
    approve command for a decision that no longer waits."""
    phase = event if event in PHASE_EVENTS else phase_now
    moved_on = phase != phase_now
    message = f"(now {phase_now}: {message})" if moved_on else message
    target = f"{spec.target.kind}/{spec.target.name}"
    subject = f"{namespace}/{spec.model_deployment_ref.name} ({target})"
    impact, rec = spec.impact, spec.recommended
    money = impact.money_at_risk
    score = score_text(impact.score) or "unknown"
    risk = f", {money.per_hour:,.2f} {money.currency}/h at risk" if money else ""
    lines = [
        f"Decision {namespace}/{name}: {phase}. {message}",
        f"{_move(spec)}. Impact score {score}{risk}.",
        f"Why: {reason_text(spec)}",
    ]
    signals = _signals(spec)
    for s in signals:
        value = "no data" if s["value"] is None else f"{s['value']:.4g}"
        lines.append(f"  {s['name']}: {s['status']} at {value} (severity {s['severity']:.2f})")
    cmds = commands(namespace, name) if phase_now == "PendingApproval" else {}
    if cmds:
        lines += [f"Approve: {cmds['approve']}", f"Reject:  {cmds['reject']}"]
    link = None
    if dashboard_url:
        link = f"{dashboard_url.rstrip('/')}/decisions/{namespace}/{name}"
        lines.append(f"Details: {link}")
    return Notice(
        event=event,
        namespace=namespace,
        decision=name,
        model_deployment=spec.model_deployment_ref.name,
        target=target,
        phase=phase,
        title=_title(event, subject),
        lines=tuple(lines),
        score=impact.score,
        money_per_hour=money.per_hour if money else None,
        currency=money.currency if money else None,
        action=rec.action,
        from_revision=rec.from_revision,
        to_revision=rec.to_revision,
        reason=rec.reason,
        signals=signals,
        commands=cmds,
        link=link,
    )


# The delivery schedule: attempts of one message, and the pause before each retry (doubling,
# capped). Ten attempts span about eight minutes; then the message is recorded as Failed.
MAX_ATTEMPTS = 10
FIRST_RETRY = 2.0
MAX_RETRY = 120.0


def retry_after(attempts: int) -> float | None:
    """Seconds to wait after ``attempts`` failed attempts, or None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return float(min(MAX_RETRY, FIRST_RETRY * 2.0 ** max(0, attempts - 1)))


def outcome(
    attempts: int, failure: str | None, *, final: bool = False
) -> tuple[NotificationState, float | None]:
    """A message's state after its ``attempts``-th attempt failed with ``failure`` (None: it
    was taken), and the seconds to wait before the next (None: there is none). ``final``: no
    attempt could ever succeed (the receiver is not defined)."""
    if failure is None:
        return "Delivered", None
    wait = None if final else retry_after(attempts)
    return ("Failed" if wait is None else "Pending"), wait
