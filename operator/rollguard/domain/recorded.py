"""What a policy would have done on recorded data (``rollguard simulate --series FILE``).

PURE: numpy + rollguard.api/domain. The recorded series (``rollguard.domain.series``) is
evaluated by the operator's own ``engine.step`` as a batch of one, every policy interval from
the first sample on, each evaluation seeing the samples in (t - window, t]. Recorded data
cannot be changed by an action, so the series is what happened *without* the policy; an
action still starts the cooldown and spends budget (``engine.record_action``) as it would
in the operator, so later decisions are the ones the operator would have made.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
from pydantic import Field

from rollguard.api.base import Model, duration_seconds
from rollguard.api.policy import EffectivePolicy
from rollguard.domain import engine
from rollguard.domain.series import Series, SeriesError

# A year of evaluations every 30 s; a longer run is a mistake in the series' timestamps.
MAX_EVALUATIONS = 1_000_000


class RecordedAction(Model):
    """An action the policy would have taken."""

    time: str = Field(description="RFC 3339 time of the evaluation that fired.")
    action: str = Field(description="Rollback, Pause or Hold.")
    score: float | None = Field(description="Impact score at that evaluation.")
    false_rollback: bool | None = Field(
        description="A Rollback while no regression was labelled; null without ground truth."
    )


class Escalation(Model):
    """A trigger that fired but could not act automatically (cooldown or budget)."""

    time: str
    action: str
    score: float | None
    reason: str = Field(description="cooldown or budget.")


class RecordedResult(Model):
    """The result of running a policy over a recorded series (binding JSON shape)."""

    actions: list[RecordedAction]
    detection_delay_seconds: float | None = Field(
        description="First Rollback or Pause at or after the first labelled regression, minus "
        "its start; null without ground truth or when not detected."
    )
    false_rollbacks: int | None = Field(description="Rollbacks with no labelled regression.")
    regression_start: str | None = Field(description="First labelled regression, RFC 3339.")
    escalations: list[Escalation]
    evaluations: int = Field(description="Evaluations run.")
    start: str = Field(description="First grid point, RFC 3339.")
    end: str = Field(description="Last grid point, RFC 3339.")
    step_seconds: float = Field(description="Grid step: the median sample spacing.")
    signals: list[str]
    warnings: list[str]


def rfc3339(seconds: float) -> str:
    """Unix seconds as an RFC 3339 UTC time (fractions only when there are any)."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if seconds % 1 else "seconds")
    return text.replace("+00:00", "Z")


def _score(x: float) -> float | None:
    return None if math.isnan(x) else float(f"{x:.6g}")


def run_recorded(policy: EffectivePolicy, series: Series) -> RecordedResult:
    """Every action ``policy`` would have taken on ``series``."""
    names = [s.name for s in policy.signals]
    if series.signals != names:
        raise ValueError(f"series signals {series.signals} are not the policy's {names}")
    step_s = series.step
    window = max(1, math.floor(duration_seconds(policy.evaluation.window) / step_s + 1e-9))
    interval = duration_seconds(policy.evaluation.interval)
    n_k = series.values.shape[1]
    pad = window - 1
    values = np.concatenate([np.full((len(names), pad), np.nan), series.values], axis=1)[None]
    mask = np.concatenate([np.zeros((len(names), pad), np.bool_), series.mask], axis=1)[None]
    available = np.ones((1, len(names)), dtype=np.bool_)
    last = series.start + (n_k - 1) * step_s
    evaluations = math.floor((last - series.start) / interval + 1e-9)
    if evaluations > MAX_EVALUATIONS:
        raise SeriesError(
            f"the series spans {last - series.start:g}s: {evaluations} evaluations every "
            f"{policy.evaluation.interval} is more than {MAX_EVALUATIONS}; check its timestamps"
        )
    eval_times = series.start + np.arange(interval, last - series.start + 1e-9, interval)
    truth = series.regression
    state = engine.initial_state(policy, 1)
    actions: list[RecordedAction] = []
    escalations: list[Escalation] = []
    response_times: list[float] = []
    for now in eval_times:
        k = math.floor((now - series.start) / step_s + 1e-9)
        measured = engine.Measurements(
            values[:, :, k : k + window], mask[:, :, k : k + window], available
        )
        result = engine.step(policy, measured, state, now=float(now))
        state = result.state
        fired = int(result.fired[0])
        if fired < 0:
            continue
        action = policy.triggers[fired].action
        score = _score(float(result.score[0]))
        if result.blocked[0]:
            escalations.append(
                Escalation(
                    time=rfc3339(now), action=action, score=score, reason=str(result.blocked[0])
                )
            )
            continue
        false_rollback = None if truth is None else bool(action == "Rollback" and not truth[k])
        actions.append(
            RecordedAction(
                time=rfc3339(now), action=action, score=score, false_rollback=false_rollback
            )
        )
        if action != "Hold":
            response_times.append(float(now))
            if policy.mode == "Enforce":
                state = engine.record_action(state, np.ones(1, dtype=np.bool_), now=float(now))
    start = None
    delay = None
    if truth is not None and truth.any():
        start = series.start + int(np.argmax(truth)) * step_s
        after = [t for t in response_times if t >= start]
        delay = after[0] - start if after else None
    return RecordedResult(
        actions=actions,
        detection_delay_seconds=delay,
        false_rollbacks=None if truth is None else sum(bool(a.false_rollback) for a in actions),
        regression_start=None if start is None else rfc3339(start),
        escalations=escalations,
        evaluations=int(eval_times.size),
        start=rfc3339(series.start),
        end=rfc3339(last),
        step_seconds=step_s,
        signals=names,
        warnings=list(series.warnings),
    )
