"""The rollback playbook of a policy, in Markdown, rendered from the effective policy (tier
defaults applied), so the document people read is what the operator does and cannot drift.

Called by ``rollguard playbook``. PURE: no I/O; the caller reads the policy (a file or a
cluster object) and writes the text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollguard.api.base import duration_seconds
from rollguard.api.policy import EffectivePolicy, Trigger
from rollguard.api.signal import EffectiveSignal
from rollguard.core import tiers
from rollguard.core.engine import paired_confidence
from rollguard.core.severity import signal_limit
from rollguard.files.loading import parse_policy


@dataclass(frozen=True)
class PlaybookSource:
    """Where the policy came from, and what only the written policy carries."""

    name: str
    namespace: str | None
    spec_hash: str
    descriptions: Mapping[str, str]  # signal name → description, when given


def _n(x: float) -> str:
    return f"{x:.4g}"


def _margin(signal: EffectiveSignal) -> str:
    m = signal.margin
    if m.relative is not None:
        return f"{m.relative * 100:.4g}% of the objective"
    return _n(m.width(0))


def _signal_rows(policy: EffectivePolicy, descriptions: Mapping[str, str]) -> list[str]:
    rows = [
        "| signal | why it is watched | objective | tolerated up to | severity 1 at | missing data "
        "| key |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in policy.signals:
        direction = "at most" if s.objective.direction == "max" else "at least"
        tolerated = f"{_n(signal_limit(s))} (margin {_margin(s)})"
        why = descriptions.get(s.name, "").replace("|", "\\|").replace("\n", " ").strip() or "—"
        rows.append(
            f"| `{s.name}` | {why} | {direction} {_n(s.objective.value)} | {tolerated} | "
            f"{_n(s.critical)} | {s.on_missing_data} | {'yes' if s.key else '—'} |"
        )
    return rows


def _plain_margins(policy: EffectivePolicy) -> list[str]:
    out = []
    for s in policy.signals:
        limit, critical = signal_limit(s), s.critical
        if s.objective.direction == "max":
            out.append(
                f"- `{s.name}`: fine up to {_n(s.objective.value)}; between it and {_n(limit)} "
                f"nothing escalates; beyond {_n(limit)} severity rises linearly, reaching 1 at "
                f"{_n(critical)}."
            )
        else:
            out.append(
                f"- `{s.name}`: fine down to {_n(s.objective.value)}; between it and "
                f"{_n(limit)} nothing escalates; below {_n(limit)} severity rises linearly, "
                f"reaching 1 at {_n(critical)}."
            )
    return out


def _impact_rows(policy: EffectivePolicy) -> list[str]:
    total = sum(c.weight for c in policy.impact.categories)
    rows = [
        "| category | weight | share of the score | signals (sensitivity) |",
        "|---|---|---|---|",
    ]
    for c in policy.impact.categories:
        signals = ", ".join(f"`{k}` x{_n(v)}" for k, v in c.signals.items())
        share = f"{c.weight / total * 100:.0f}%" if total else "—"
        rows.append(f"| {c.name} | {_n(c.weight)} | {share} | {signals} |")
    return rows


def _key_sentence(policy: EffectivePolicy) -> list[str]:
    keys = [f"`{s.name}`" for s in policy.signals if s.key]
    if not keys:
        return []
    return [
        "",
        f"Key signals: {', '.join(keys)}. When a key signal's severity reaches 1 the score is 1, "
        "whatever the weights; an Inconclusive key signal forces nothing.",
    ]


def _curve_rows(triggers: list[Trigger]) -> list[str]:
    rows = ["| # | action | when the score is at least | for at least |", "|---|---|---|---|"]
    for i, t in enumerate(triggers):
        rows.append(f"| {i} | {t.action} | {_n(t.min_score)} | {t.sustained_for} |")
    return rows


def curve_plot(triggers: list[Trigger], *, width: int = 40, height: int = 10) -> list[str]:
    """The trigger curve as text: dwell time across, score up; each point marks where its
    action fires (its number), the region above-right of a point is where it acts."""
    if not triggers:
        return ["(no trigger points)"]
    dwell = [duration_seconds(t.sustained_for) for t in triggers]
    longest = max(*dwell, 1.0) * 1.1
    grid = [[" "] * (width + 1) for _ in range(height + 1)]
    for i, (t, d) in enumerate(zip(triggers, dwell, strict=True)):
        col = round(d / longest * width)
        row = height - round(t.min_score * height)
        grid[row][col] = str(i) if i < 10 else "*"
    lines = []
    for r, cells in enumerate(grid):
        score = 1 - r / height
        label = f"{score:4.1f} |" if r % 2 == 0 else "     |"
        lines.append(label + "".join(cells).rstrip())
    lines.append("     +" + "-" * (width + 1))
    lines.append(f"      0{' ' * (width - 8)}{_duration(longest):>8}  dwell")
    return lines


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g}h"
    if seconds >= 60:
        return f"{seconds / 60:.3g}m"
    return f"{seconds:.3g}s"


def render_playbook(policy: EffectivePolicy, source: PlaybookSource) -> str:
    """The playbook as Markdown."""
    where = f"{source.namespace}/{source.name}" if source.namespace else source.name
    auth = policy.authorization
    auto = auth.auto_approve
    approvers = (
        ", ".join(f"`{a}`" for a in auth.approvers)
        if auth.approvers
        else "anyone RBAC lets patch RollbackDecisions (bind `rollguard-approver`)"
    )
    on_timeout = (
        "the action is executed anyway"
        if auth.on_timeout == "Execute"
        else "the decision expires and nothing is done"
    )
    ev, safety, val = policy.evaluation, policy.safety, policy.validation
    budget = safety.max_actions_per_window
    mode = (
        "**DryRun**: every decision is made and recorded, no workload is ever touched."
        if policy.mode == "DryRun"
        else "**Enforce**: decisions are carried out."
    )
    lines = [
        f"# Rollback playbook: {where}",
        "",
        f"Risk tier **{policy.risk_tier}** (defaults applied for everything the policy leaves "
        f"out). Mode {mode} Effective policy `{source.spec_hash}`: every decision records it, "
        "so each one can be traced to this playbook.",
        "",
        "## What is watched, and why",
        "",
        f"Every {ev.interval}, each signal is sampled over the last {ev.window}; with fewer "
        f"than {ev.min_samples} samples it is Inconclusive. A {ev.confidence * 100:.4g}% "
        "confidence interval is put around its mean and the bound most favourable to the "
        "deployment is compared with the limit, so noise alone does not trigger."
        + _newest_sentence(policy),
        "",
        *_signal_rows(policy, source.descriptions),
        "",
        "### The margins in plain numbers",
        "",
        *_plain_margins(policy),
        "",
        "## From signals to one impact score",
        "",
        "Category severity = min(1, Σ sensitivity x signal severity); the impact score is the "
        "weighted mean of the categories, between 0 and 1.",
        "",
        *_impact_rows(policy),
        *_key_sentence(policy),
        "",
        "## When it acts: the trigger curve",
        "",
        "An action fires when the score has stayed at or above a point's score for its dwell "
        "time; of the points satisfied, the most severe wins: the stronger action "
        "(Hold < Pause < Rollback), then the higher score.",
        "",
        *_curve_rows(policy.triggers),
        "",
        "```",
        *curve_plot(policy.triggers),
        "```",
        "",
        f"A deployment that triggered counts as recovered only once its score is below "
        f"{_n(policy.clear_below)} (hysteresis). Until then a point fires only when it is more "
        "severe than everything fired so far (a stronger action, or the same action at a "
        "higher score): hovering near a threshold makes one decision, not one per evaluation, "
        "and a Pause can be followed by a Rollback. One decision at a time: while one is "
        "open, no new one is made. A Rollback with no approved older revision, or a Pause "
        "with no rollout in progress, is recorded as a Hold.",
        "",
        "## What rollguard does alone, and what needs whom",
        "",
        f"- Alone: {', '.join(auto.actions) or 'nothing'}, while the score is at most "
        f"{_n(auto.max_score)} and a rollback goes back at most {auto.max_revisions_back} "
        "revision(s) — and only to a revision approved in Git, by bake time or by a human.",
        f"- Everything else waits for an approver: {approvers}. The API server verifies the "
        "approver's identity; an approval is given once.",
        f"- Nobody answers within {auth.approval_timeout}: {on_timeout}.",
        "",
        "## Safety",
        "",
        f"- Cooldown: after an executed Rollback, no automatic revision change on the same "
        f"ModelDeployment for {safety.cooldown}; a trigger meanwhile waits for a human, and "
        "if nobody approves it, it is offered again when the cooldown ends while the "
        "deployment is still degraded. A Hold or Pause starts no cooldown.",
        f"- Action budget: at most {budget.count} executed Rollback(s) and Pause(s) per "
        f"{budget.window}; "
        "beyond it the ModelDeployment is Escalated and automatic actions stop until a human "
        "runs `rollguard clear`.",
        "",
        "## After a rollback: validation",
        "",
        f"The rolled-back workload must be available within {val.rollout_timeout}; then, "
        "counting only evaluations that see nothing older than the rollout, the score must "
        f"stay below {_n(policy.clear_below)} for {val.window}. Otherwise the decision Fails "
        "and the ModelDeployment is Escalated to humans.",
        "",
    ]
    return "\n".join(lines)


def playbook_of(doc: Any, *, source: str) -> str:
    """The Markdown playbook of a RollbackPolicy object (from a file or the cluster)."""
    policy = parse_policy(doc, source=source)
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    descriptions = {
        str(s.get("name")): str(s.get("description") or "")
        for s in spec.get("signals") or []
        if isinstance(s, dict)
    }
    return render_playbook(
        policy,
        PlaybookSource(
            name=str(meta.get("name") or source),
            namespace=meta.get("namespace"),
            spec_hash=tiers.spec_hash(policy),
            descriptions=descriptions,
        ),
    )


def _newest_sentence(policy: EffectivePolicy) -> str:
    recent = policy.evaluation.recent_samples
    if recent is None:
        return ""
    return (
        f" The newest {recent} samples are also tested on their own, so a step change is seen "
        "before it moves the whole window; each signal is judged by the more severe of the two "
        f"tests, both at {paired_confidence(policy) * 100:.4g}% so that the pair false-alarms "
        f"no more often than one test at {policy.evaluation.confidence * 100:.4g}%."
    )
