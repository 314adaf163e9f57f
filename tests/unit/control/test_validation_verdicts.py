"""A rollback's validation, decided without the API server: which conclusive evaluations are
written at once and which are only remembered, when it fails or passes, and that what is
remembered belongs to the ``Lifecycle`` that saw it (clearBelow 0.05, validation window 3m)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from rollguard.api.decision import RollbackDecisionSpec, ValidationResult
from rollguard.api.modeldeployment import LastEvaluation
from rollguard.control import reasons
from rollguard.control.lifecycle import Lifecycle
from rollguard.control.steps import Observed
from rollguard.control.validation import OBSERVED_STEP, Verdict, judge

GOLDEN = Path(__file__).parent.parent / "golden" / "decision.yaml"
STARTED = 1_800_000_000.0
FROM, UNTIL = STARTED + 60, STARTED + 240  # evaluations from FROM count; the verdict at UNTIL


def _spec(clear_below: float = 0.05) -> RollbackDecisionSpec:
    spec = RollbackDecisionSpec.model_validate(yaml.safe_load(GOLDEN.read_text())["spec"])
    effective = spec.policy.effective.model_copy(update={"clear_below": clear_below})
    return spec.model_copy(
        update={"policy": spec.policy.model_copy(update={"effective": effective})}
    )


def _validation(**observed: Any) -> ValidationResult:
    criteria = {"rolloutTimeout": "5m", "window": "3m", "clearBelow": 0.05}
    return ValidationResult.model_validate({"criteria": criteria, **observed})


def _evaluation(at: float, score: float | None) -> LastEvaluation:
    return LastEvaluation.model_validate(
        {"time": datetime.fromtimestamp(at, tz=UTC), "score": score}
    )


def _judge(
    validation: ValidationResult,
    evaluation: LastEvaluation | None,
    *,
    remembered: Observed | None = None,
    now: float,
    clear_below: float = 0.05,
) -> Verdict:
    return judge(
        _spec(clear_below),
        validation,
        remembered=remembered,
        evaluation=evaluation,
        observe_from=FROM,
        until=UNTIL,
        name="fraud-1",
        now=now,
    )


def test_the_first_conclusive_evaluation_is_written_and_a_close_second_only_remembered() -> None:
    first = _judge(_validation(), _evaluation(FROM, 0.01), now=FROM)
    assert (first.record, first.transition) == ("write", None)
    assert first.observed == Observed(0.01, 0.01, 1, FROM)

    written = _validation(**first.observed.fields())
    second = _judge(written, _evaluation(FROM + 15, 0.02), now=FROM + 15)
    assert (second.record, second.transition) == ("remember", None)
    assert second.observed == Observed(0.02, 0.02, 2, FROM + 15)

    # The next step counts from what was remembered, not from what was written.
    third = _judge(written, _evaluation(FROM + 30, 0.01), remembered=second.observed, now=FROM + 30)
    assert third.observed == Observed(0.02, 0.01, 3, FROM + 30)


def test_a_maximum_observed_step_above_the_written_one_is_written_at_once() -> None:
    """With clearBelow 0.5, so that a score may rise that far and still pass."""
    written = _validation(**Observed(0.1, 0.1, 1, FROM).fields())
    below = _judge(
        written, _evaluation(FROM + 15, 0.1 + OBSERVED_STEP / 2), now=FROM + 15, clear_below=0.5
    )
    assert below.record == "remember"
    above = _judge(
        written, _evaluation(FROM + 15, 0.1 + OBSERVED_STEP * 1.2), now=FROM + 15, clear_below=0.5
    )
    assert (above.record, above.transition) == ("write", None)
    assert above.observed.worst == 0.1 + OBSERVED_STEP * 1.2


def test_an_evaluation_already_seen_or_too_early_changes_nothing() -> None:
    written = _validation(**Observed(0.01, 0.01, 1, FROM).fields())
    for evaluation in (_evaluation(FROM, 0.01), _evaluation(FROM - 15, 0.0), None):
        verdict = _judge(written, evaluation, now=FROM + 15)
        assert (verdict.record, verdict.transition) == (None, None)
        assert verdict.observed == Observed(0.01, 0.01, 1, FROM)


def test_a_score_not_below_clear_below_fails_and_escalates_at_once() -> None:
    verdict = _judge(_validation(), _evaluation(FROM, 0.3), now=FROM)
    assert verdict.record is None and verdict.transition is not None
    failed = verdict.transition
    assert (failed.phase, failed.reason, failed.warning) == (
        "Failed",
        reasons.VALIDATION_FAILED,
        True,
    )
    assert failed.message.startswith("impact score 0.300 at ")
    assert failed.escalate == "rollback fraud-1 did not bring the score below clearBelow"
    assert failed.status["validation"]["evaluations"] == 1


def test_at_the_windows_end_it_passes_with_an_evaluation_and_fails_without() -> None:
    seen = _validation(**Observed(0.02, 0.01, 12, UNTIL - 15).fields())
    passed = _judge(seen, None, now=UNTIL).transition
    assert passed is not None and (passed.phase, passed.reason, passed.escalate) == (
        "Succeeded",
        reasons.VALIDATION_SUCCEEDED,
        None,
    )
    assert passed.status["validation"]["evaluations"] == 12
    failed = _judge(_validation(), None, now=UNTIL).transition
    assert failed is not None and failed.phase == "Failed"
    assert failed.escalate == "no conclusive evaluation within the validation window 3m"


def test_each_lifecycle_remembers_only_what_it_saw() -> None:
    ours = Lifecycle(cluster=None, recorder=None)  # type: ignore[arg-type]
    theirs = Lifecycle(cluster=None, recorder=None)  # type: ignore[arg-type]
    key = ("ml", "fraud-1", "uid-1")
    ours.memory.remember(key, Observed(0.02, 0.02, 2, FROM))
    assert ours.memory.observed(key) == Observed(0.02, 0.02, 2, FROM)
    assert theirs.memory.observed(key) is None
    ours.memory.forget(key)
    assert ours.memory.observed(key) is None
