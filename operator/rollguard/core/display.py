"""Short forms for ``kubectl get``: a score with two decimals, a decision in one sentence.

A printer column prints a number with every digit it has and a string as long as it is, so
the operator writes these short forms into status, in writes it makes anyway:
``status.lastEvaluation.scoreText`` of a ModelDeployment (``evidence.last_evaluation``), and
``status.scoreText`` and ``status.reasonText`` of a RollbackDecision when it is sealed into
its chain (``control.decisions``). Never into a decision's spec: the spec is the evidence the
audit chain and ``replay`` check. The full-precision numbers and the reason with its
arithmetic stay where they are (``rollguard explain`` prints them).

Callers: ``evidence`` and ``control.decisions``. PURE.
"""

from __future__ import annotations

import math

from rollguard.api.base import format_duration
from rollguard.api.decision import RollbackDecisionSpec
from rollguard.core.options import pair

MAX_REASON = 60  # characters: the longest reasonText, so `kubectl get -o wide` stays readable


def score_text(score: float | None) -> str | None:
    """The score with two decimals (``0.72``); None when it is unknown."""
    if score is None or not math.isfinite(score):
        return None
    text = f"{score:.2f}"
    return "0.00" if text == "-0.00" else text


def _move(spec: RollbackDecisionSpec) -> tuple[str, bool]:
    """What the decision recommends, and whether it is the fired point's own action (not a
    Hold it fell back to)."""
    rec, wanted = spec.recommended, spec.trigger.action
    if rec.action == "Rollback":
        target = f" to revision {rec.to_revision}" if rec.to_revision is not None else ""
        return f"Rollback{target}", True
    if rec.action == "Pause":
        return f"Pause the rollout of revision {rec.from_revision}", True
    if wanted == "Rollback":
        return "Hold: Rollback wanted, no approved older revision", False
    if wanted == "Pause":
        return "Hold: Pause wanted, no rollout in progress", False
    return "Hold", True


def _causes(spec: RollbackDecisionSpec) -> list[str]:
    """Why the point fired, from the most to the least detailed wording."""
    keys = spec.impact.forced_by
    if keys:
        plural = "s" if len(keys) > 1 else ""
        return [
            f"key signal{plural} {', '.join(keys)} at severity 1",
            f"{len(keys)} key signal{plural} at severity 1",
        ]
    trigger = spec.trigger
    shown, threshold = pair(trigger.score, trigger.min_score)
    relation = "over" if trigger.score > trigger.min_score else "at"
    score = f"score {shown} {relation} {threshold}"
    held = round(max(trigger.sustained_seconds, 0.0))
    if held < 1:
        return [score]
    return [f"{score} for {format_duration(float(held))}", score]


def reason_text(spec: RollbackDecisionSpec) -> str:
    """The decision in one sentence of at most MAX_REASON characters, such as ``Rollback to
    revision 3: score 0.85 over 0.7 for 2m``: the action and its target, then why the trigger
    fired. A Hold the decision fell back to says what was wanted and why it could not be."""
    move, own = _move(spec)
    if not own:
        return move
    for cause in _causes(spec):
        sentence = f"{move}: {cause}"
        if len(sentence) <= MAX_REASON:
            return sentence
    return move
