"""The decision journal: every decision with what it expected and what was observed, its
validation verdict and its post-decision review. Read from the live RollbackDecisions or from
the operator's exported audit log (``DecisionFinal`` lines carry whole decisions,
``DecisionReviewed`` lines the reviews written after them), so it outlives garbage collection.

PURE: takes objects or log lines; renders text, Markdown or JSON."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from rollguard.api.decision import (
    FINAL_PHASES,
    Review,
    RollbackDecisionSpec,
    RollbackDecisionStatus,
)
from rollguard.core.times import format_time, parse_timestamp
from rollguard.files.loading import InputError

# Decisions that did not roll back: if the regression was real, it was missed.
_NOT_ROLLED_BACK = frozenset({"Rejected", "Expired", "DryRun", "Superseded"})
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)(m|h|d)$")
_UNIT = {"m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Entry:
    """One decision of the journal."""

    namespace: str
    name: str
    spec: RollbackDecisionSpec
    status: RollbackDecisionStatus

    @property
    def evaluated(self) -> float:
        return self.spec.evaluated_at.timestamp()

    @property
    def policy(self) -> str:
        return f"{self.spec.policy.namespace}/{self.spec.policy.name}"

    @property
    def model_deployment(self) -> str:
        return f"{self.namespace}/{self.spec.model_deployment_ref.name}"

    @property
    def review(self) -> Review | None:
        return self.spec.review

    @property
    def final(self) -> bool:
        return self.status.phase in FINAL_PHASES

    @property
    def rolled_back(self) -> bool:
        """The Deployment was rolled back by this decision."""
        execution = self.status.execution
        return (
            self.spec.recommended.action == "Rollback"
            and execution is not None
            and execution.patched
        )

    @property
    def false_rollback(self) -> bool:
        """Rolled back, and the review found no real regression."""
        return (
            self.rolled_back and self.review is not None and self.review.regression == "FalseAlarm"
        )

    @property
    def missed_regression(self) -> bool:
        """Not rolled back (held, paused, rejected, expired, dry run), and the review found the
        regression real."""
        review = self.review
        if review is None or review.regression != "Real" or self.rolled_back:
            return False
        return self.spec.recommended.action != "Rollback" or self.status.phase in _NOT_ROLLED_BACK

    def action(self) -> str:
        rec = self.spec.recommended
        if rec.to_revision is None:
            return f"{rec.action} (rev {rec.from_revision})"
        return f"{rec.action} {rec.from_revision}->{rec.to_revision}"


@dataclass
class Journal:
    """The entries, oldest first, and what could not be read."""

    entries: list[Entry]
    skipped: list[str] = field(default_factory=list)


def _entry(obj: Mapping[str, Any]) -> Entry:
    meta = obj.get("metadata") or {}
    return Entry(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        spec=RollbackDecisionSpec.model_validate(obj.get("spec") or {}),
        status=RollbackDecisionStatus.model_validate(obj.get("status") or {}),
    )


def _where(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def from_objects(objects: Iterable[Mapping[str, Any]]) -> Journal:
    """The journal of RollbackDecisions as the API server returns them."""
    journal = Journal(entries=[])
    for obj in objects:
        try:
            journal.entries.append(_entry(obj))
        except ValidationError as err:
            journal.skipped.append(
                f"{_where(obj)}: not a readable decision ({err.error_count()} errors)"
            )
    journal.entries.sort(key=lambda e: (e.evaluated, e.namespace, e.name))
    return journal


def from_audit_log(lines: Iterable[str], *, source: str = "audit log") -> Journal:
    """The journal from the operator's audit log: the last ``DecisionFinal`` line of each
    decision, with the review of its ``DecisionReviewed`` line if the final line predates it.
    Lines that are not audit records (other log output) are ignored; broken records are
    reported in ``skipped``."""
    finals: dict[tuple[str, str], Mapping[str, Any]] = {}
    reviews: dict[tuple[str, str], Any] = {}
    skipped: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            record = json.loads(text)
        except ValueError:
            skipped.append(f"{source}:{number}: not JSON")
            continue
        if not isinstance(record, dict):
            continue
        key = (str(record.get("namespace")), str(record.get("name")))
        if record.get("event") == "DecisionFinal":
            if isinstance(record.get("decision"), dict):
                finals[key] = record["decision"]
            else:
                skipped.append(f"{source}:{number}: DecisionFinal without a decision")
        elif record.get("event") == "DecisionReviewed":
            reviews[key] = record.get("review")
    journal = Journal(entries=[], skipped=skipped)
    for key, obj in finals.items():
        try:
            entry = _entry(obj)
            if entry.spec.review is None and reviews.get(key) is not None:
                review = Review.model_validate(reviews[key])
                entry = Entry(
                    entry.namespace,
                    entry.name,
                    entry.spec.model_copy(update={"review": review}),
                    entry.status,
                )
        except ValidationError as err:
            journal.skipped.append(
                f"{key[0]}/{key[1]}: not a readable decision ({err.error_count()} errors)"
            )
            continue
        journal.entries.append(entry)
    for key in sorted(set(reviews) - set(finals)):
        journal.skipped.append(f"{key[0]}/{key[1]}: a review without its DecisionFinal line")
    journal.entries.sort(key=lambda e: (e.evaluated, e.namespace, e.name))
    return journal


def parse_since(text: str, *, now: float) -> float:
    """Unix seconds from ``30m``, ``12h``, ``7d`` (ago) or an RFC 3339 time."""
    match = _SINCE.match(text.strip())
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        return parse_timestamp(text)
    except ValueError as err:
        raise InputError(f"--since: {err}; or use a span like 30m, 12h or 7d") from None


def since(journal: Journal, start: float) -> Journal:
    return Journal([e for e in journal.entries if e.evaluated >= start], journal.skipped)


# --- rendering ------------------------------------------------------------------------------


def _n(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}f}"


def row(entry: Entry) -> dict[str, Any]:
    """The entry as a flat record: the journal's JSON and the source of its tables."""
    spec, status = entry.spec, entry.status
    outcome, validation = status.outcome, status.validation
    money = spec.impact.money_at_risk
    return {
        "namespace": entry.namespace,
        "name": entry.name,
        "modelDeployment": spec.model_deployment_ref.name,
        "policy": entry.policy,
        "evaluatedAt": format_time(spec.evaluated_at),
        "action": spec.recommended.action,
        "fromRevision": spec.recommended.from_revision,
        "toRevision": spec.recommended.to_revision,
        "mode": spec.mode,
        "phase": status.phase,
        "score": spec.impact.score,
        "moneyAtRiskPerHour": money.per_hour if money else None,
        "currency": money.currency if money else None,
        "approval": (
            f"{spec.approval.decision} by {spec.approval.by}"
            if spec.approval
            else ("required" if spec.requires_approval else "not required")
        ),
        "expectedScoreAfter": outcome.expected_score_after if outcome else None,
        "observedScoreAfter": outcome.observed_score_after if outcome else None,
        "expectedLossAvoided": outcome.expected_loss_avoided if outcome else None,
        "observedLossAvoided": outcome.observed_loss_avoided if outcome else None,
        "validation": validation.verdict if validation else None,
        "review": spec.review.wire() if spec.review else None,
        "auditSequence": status.audit.sequence if status.audit else None,
    }


def _review_text(entry: Entry) -> str:
    review = entry.review
    if review is None:
        return "not reviewed" if entry.final else "-"
    return f"{review.verdict}, regression {review.regression}, by {review.by}: {review.notes}"


def to_text(journal: Journal) -> str:
    if not journal.entries:
        return "no decisions found\n" + "".join(f"skipped {s}\n" for s in journal.skipped)
    lines: list[str] = []
    for e in journal.entries:
        r = row(e)
        lines += [
            f"{r['evaluatedAt']}  {e.namespace}/{e.name}  ({e.model_deployment}, policy {e.policy})",
            f"  {e.action()}  phase {r['phase'] or 'New'}  score {_n(r['score'])}  approval: {r['approval']}",
            f"  score after: expected {_n(r['expectedScoreAfter'])}, observed "
            f"{_n(r['observedScoreAfter'])};  loss avoided (impact-hours): expected "
            f"{_n(r['expectedLossAvoided'])}, observed {_n(r['observedLossAvoided'])}",
            f"  validation: {r['validation'] or '-'};  review: {_review_text(e)}",
            "",
        ]
    lines += [f"skipped {s}" for s in journal.skipped]
    return "\n".join(lines).rstrip("\n") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(journal: Journal) -> str:
    header = (
        "| evaluated | decision | model deployment | action | phase | score | approval "
        "| score after (exp / obs) | loss avoided (exp / obs) | validation | review |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for e in journal.entries:
        r = row(e)
        cells = [
            r["evaluatedAt"],
            e.name,
            e.model_deployment,
            e.action(),
            r["phase"] or "New",
            _n(r["score"]),
            r["approval"],
            f"{_n(r['expectedScoreAfter'])} / {_n(r['observedScoreAfter'])}",
            f"{_n(r['expectedLossAvoided'])} / {_n(r['observedLossAvoided'])}",
            r["validation"] or "-",
            _review_text(e),
        ]
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    lines += [f"\nskipped {s}" for s in journal.skipped]
    return "\n".join(lines) + "\n"


def to_json(journal: Journal) -> str:
    return (
        json.dumps(
            {"decisions": [row(e) for e in journal.entries], "skipped": journal.skipped}, indent=2
        )
        + "\n"
    )


RENDERERS = {"text": to_text, "markdown": to_markdown, "json": to_json}
