"""Validating a rollback: the rollout completes (or times out), then the ModelDeployment's
evaluations through the validation window judge it.

``judge`` decides from what is known (the decision's validation as written, the evaluations
remembered since, the ModelDeployment's latest evaluation) and returns a ``Verdict``:
what to record and whether the validation ends. ``validating`` reads, asks ``judge`` and
writes; ``lifecycle`` runs it for a decision in phase Validating.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rollguard.api.base import duration_seconds
from rollguard.api.decision import RollbackDecisionSpec, ValidationResult
from rollguard.api.modeldeployment import LastEvaluation, ModelDeploymentStatus
from rollguard.api.policy import EffectivePolicy
from rollguard.control import reasons
from rollguard.control.steps import Observed, Step, Transition, iso
from rollguard.core import machine
from rollguard.core.revisions import serves
from rollguard.core.rollout import rollout_complete
from rollguard.kube.targets import LiveReads
from rollguard.signals.promql import lookback_seconds

OBSERVED_STEP = 0.05  # a validation maximum this far above the written one is written at once


def rollout_transition(
    policy: EffectivePolicy, *, done: bool, started: float, now: float
) -> Transition | None:
    """The rollback's rollout completed, or timed out; None while it may still complete."""
    if done:
        return Transition(
            "Validating",
            reasons.ROLLOUT_COMPLETED,
            "Rollout completed; watching the impact score",
            status={"validation": {"rolloutCompletedAt": iso(now)}},
        )
    timeout = policy.validation.rollout_timeout
    if now - started <= duration_seconds(timeout):
        return None
    message = f"Rollout not available within rolloutTimeout {timeout}"
    return Transition(
        "Failed",
        reasons.ROLLOUT_TIMED_OUT,
        message,
        warning=True,
        status={"validation": {"verdict": "Failed", "message": message}},
        escalate=message,
    )


@dataclass(frozen=True)
class Verdict:
    """What one validation step records and decides. ``record``: the evaluations seen are
    written now (``write``), kept in memory until they matter (``remember``), or nothing new
    was seen (None). ``transition``: the validation's end, None while it goes on."""

    observed: Observed
    record: Literal["write", "remember"] | None
    transition: Transition | None


def judge(
    spec: RollbackDecisionSpec,
    validation: ValidationResult,
    *,
    remembered: Observed | None,
    evaluation: LastEvaluation | None,
    observe_from: float,
    until: float,
    name: str,
    now: float,
) -> Verdict:
    """The validation step at ``now`` of decision ``name``: one conclusive evaluation at or
    after ``observe_from`` not below clearBelow fails it; at ``until`` it passes if any
    conclusive evaluation was seen, and fails if none was."""
    policy = spec.policy.effective
    seen = (
        validation.last_evaluation_at.timestamp()
        if validation.last_evaluation_at is not None
        else None
    )
    known = Observed(
        validation.observed_max_score, validation.observed_last_score, validation.evaluations, seen
    )
    if (
        remembered is not None
        and remembered.seen is not None
        and (seen is None or remembered.seen > seen)
    ):
        known = remembered
    record: Literal["write", "remember"] | None = None
    if (
        evaluation is not None
        and evaluation.score is not None
        and evaluation.time.timestamp() >= observe_from
        and (known.seen is None or evaluation.time.timestamp() > known.seen)
    ):
        score = evaluation.score
        worst = score if known.worst is None else max(known.worst, score)
        known = Observed(worst, score, known.count + 1, evaluation.time.timestamp())
        if machine.validation_failed(policy, score):
            return Verdict(known, None, _failed(spec, known, score, evaluation.time, name=name))
        # Written when it matters: the first evaluation (a restart must not forget that one
        # was conclusive) and a maximum OBSERVED_STEP above the one written. The others are
        # kept in memory until the verdict; a restart loses only their count, last score and
        # maximum below that step.
        written = validation.observed_max_score
        raised = written is None or score >= written + OBSERVED_STEP
        record = "write" if known.count == 1 or raised else "remember"
    if now < until:
        return Verdict(known, record, None)
    return Verdict(known, record, _window_end(spec, known))


def _failed(
    spec: RollbackDecisionSpec, observed: Observed, score: float, at: datetime, *, name: str
) -> Transition:
    policy = spec.policy.effective
    message = (
        f"impact score {score:.3f} at {at.isoformat()} is not below clearBelow {policy.clear_below}"
    )
    return Transition(
        "Failed",
        reasons.VALIDATION_FAILED,
        message,
        warning=True,
        status={
            "validation": {"verdict": "Failed", "message": message, **observed.fields()},
            "outcome": outcome(spec, observed, achieved=False),
        },
        escalate=f"rollback {name} did not bring the score below clearBelow",
    )


def _window_end(spec: RollbackDecisionSpec, observed: Observed) -> Transition:
    policy = spec.policy.effective
    window = policy.validation.window
    if not observed.count:
        message = f"no conclusive evaluation within the validation window {window}"
        return Transition(
            "Failed",
            reasons.VALIDATION_FAILED,
            message,
            warning=True,
            status={"validation": {"verdict": "Failed", "message": message}},
            escalate=message,
        )
    message = (
        f"impact score stayed below clearBelow {policy.clear_below} for {window} "
        f"(max {observed.worst:.3f})"
    )
    return Transition(
        "Succeeded",
        reasons.VALIDATION_SUCCEEDED,
        message,
        status={
            "validation": {"verdict": "Passed", "message": message, **observed.fields()},
            "outcome": outcome(spec, observed, achieved=True),
        },
    )


def outcome(spec: RollbackDecisionSpec, observed: Observed, *, achieved: bool) -> dict[str, Any]:
    """``status.outcome`` of a validated rollback: expected against observed."""
    worst, last = observed.worst, observed.last
    options = {o.action: o for o in spec.options}
    hold, chosen = options.get("Hold"), options.get(spec.recommended.action)
    expected_avoided = hold.expected_loss - chosen.expected_loss if hold and chosen else None
    horizon = duration_seconds(spec.policy.effective.authorization.approval_timeout) / 3600
    observed_avoided = (spec.impact.score - (last or 0.0)) * horizon if last is not None else None
    money = spec.impact.money_at_risk
    verdict = "achieved" if achieved else "not achieved"
    after = worst if worst is not None else float("nan")
    return {
        "expectedScoreAfter": 0.0,
        "observedScoreAfter": worst,
        "expectedLossAvoided": expected_avoided,
        "observedLossAvoided": observed_avoided,
        "moneyAtRiskBefore": money.per_hour if money else None,
        "summary": f"score {spec.impact.score:.3f} -> {after:.3f} after the rollback: {verdict}",
    }


def _rolled_out(step: Step) -> bool:
    """Whether the workload has rolled out what the decision did. For a Rollout, also that the
    revision it serves is the decision's target: Argo can abort the rollback's own update (an
    analysis step that fails), and an aborted update also looks complete."""
    target, rec = step.spec.target, step.spec.recommended
    reads = LiveReads(step.life.cluster)
    workload = reads.workload(target, namespace=step.namespace)
    if not rollout_complete(workload, target.kind):
        return False
    if target.kind != "Rollout" or rec.to_template_hash is None:
        return True
    records = reads.history(target, namespace=step.namespace, workload=workload)
    return serves(workload, target.kind, records, rec.to_template_hash)


def validating(step: Step) -> bool:
    """One validation step of a decision in phase Validating; whether it moved."""
    policy = step.spec.policy.effective
    validation = step.status.validation
    assert validation is not None and validation.started_at is not None
    completed = validation.rollout_completed_at
    if completed is None:
        started = validation.started_at.timestamp()
        transition = rollout_transition(
            policy, done=_rolled_out(step), started=started, now=step.now
        )
        if transition is None:
            return False
        step.move(transition)
        return True
    # Evaluations right after the rollout still see the bad revision: through their window,
    # through the ranges inside the queries (rate(...[1m]) looks back a minute), and through
    # one scrape interval. Only evaluations that see nothing older than the rollout count.
    settle = max((lookback_seconds(sig.query) for sig in policy.signals), default=0.0)
    observe_from, until = machine.validation_span(
        policy,
        completed_at=completed.timestamp(),
        settle=settle,
        scrape_interval=step.life.scrape_interval,
    )
    status = ModelDeploymentStatus.model_validate(step.model_deployment().get("status") or {})
    memory = step.life.memory
    key = (step.namespace, step.name, str(step.meta.get("uid", "")))
    verdict = judge(
        step.spec,
        validation,
        remembered=memory.observed(key),
        evaluation=status.last_evaluation,
        observe_from=observe_from,
        until=until,
        name=step.name,
        now=step.now,
    )
    if verdict.record == "write":
        step.patch({"validation": verdict.observed.fields()})
        memory.forget(key)
    elif verdict.record == "remember":
        memory.remember(key, verdict.observed)
    if verdict.transition is None:
        return False
    step.move(verdict.transition)
    memory.forget(key)
    return True
