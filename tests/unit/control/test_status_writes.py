"""When an evaluation's ModelDeployment status is written: on a material change at once, a
steady service only every ``refresh`` seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollguard.api.modeldeployment import ModelDeploymentStatus
from rollguard.control.status import SCORE_STEP, worth_writing

NOW = 1_800_000_000.0


def _status(at: float, score: float | None, **extra: Any) -> ModelDeploymentStatus:
    fields: dict[str, Any] = {
        "phase": "Healthy",
        "message": f"impact score {score}",
        "lastEvaluation": {"time": datetime.fromtimestamp(at, tz=UTC), "score": score},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Evaluated",
             "message": f"impact score {score}", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
        **extra,
    }  # fmt: skip
    return ModelDeploymentStatus.model_validate(fields)


def test_a_steady_service_is_written_only_when_its_evaluation_is_refresh_old() -> None:
    stored = _status(NOW - 30, 0.01)
    assert not worth_writing(stored, _status(NOW, 0.02), refresh=60, now=NOW)
    assert worth_writing(stored, _status(NOW + 30, 0.02), refresh=60, now=NOW + 30)


def test_material_changes_are_written_at_once() -> None:
    stored = _status(NOW - 1, 0.01)
    for new in (
        _status(NOW, 0.01, phase="Degraded"),
        _status(NOW, 0.01, guard={"aboveSince": {"0": NOW}}),
        _status(NOW, 0.01, lastDecision="fraud-1"),
        _status(NOW, 0.01 + SCORE_STEP),
        _status(NOW, None),
    ):
        assert worth_writing(stored, new, refresh=60, now=NOW), new
    assert worth_writing(ModelDeploymentStatus(), _status(NOW, 0.0), refresh=60, now=NOW)
