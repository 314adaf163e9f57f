"""What a policy would have done on recorded data (``rollguard simulate --series FILE`` and
``rollguard backtest``).

PURE: numpy + rollguard.api and rollguard.core. The recorded series (``rollguard.files.series``) is run
through ``virtual.VirtualMember``, the operator's cycle and decision lifecycle in memory, at
every policy interval from the first sample on. Each evaluation sees the samples in
[t - window, t], both ends included (window / step + 1 samples on the series' grid), exactly
what the operator's range query over the same Prometheus data returns. Recorded data cannot
be changed by an action, so the series is what happened *without* the policy: a rollback
does not end a regression in it, and its validation then fails and escalates, as it would
in the operator on that data. What a human does is part of the simulation (``Setting``).
Warm-up is judged as in the operator: each window is laid out on the series' grid, so a series
that began inside it shows (``warmup.began_inside``), and the member knows when its revision
rolled out (``virtual``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from rollguard.api.base import Model, duration_seconds
from rollguard.api.decision import Samples
from rollguard.api.policy import EffectivePolicy, Notify
from rollguard.core import engine, notices, schedule
from rollguard.core.times import format_seconds
from rollguard.core.warmup import began_inside
from rollguard.files.series import Series, SeriesError
from rollguard.simulation.virtual import Setting, VirtualDecision, VirtualMember

# A year of evaluations every 30 s; a longer run is a mistake in the series' timestamps.
MAX_EVALUATIONS = 1_000_000


class Told(Model):
    """One message the operator would have sent."""

    receiver: str = Field(description="Receiver name.")
    event: str = Field(description="What it would have been told of.")


class RecordedAction(Model):
    """A decision the operator would have made."""

    time: str = Field(description="RFC 3339 time of the evaluation that fired.")
    trigger: int = Field(description="Index of the trigger point that fired.")
    wanted: str = Field(description="The fired point's action: Rollback, Pause or Hold.")
    action: str = Field(
        description="The recommended action: the wanted one, or Hold when it could not be "
        "taken (no approved older revision, no rollout in progress)."
    )
    score: float | None = Field(description="Impact score at that evaluation.")
    requires_approval: bool = Field(description="Outside the auto-approval boundary.")
    blocked: str | None = Field(
        default=None, description="cooldown or budget when safety made it need a human."
    )
    executed: bool = Field(description="The Deployment was changed (Rollback or Pause).")
    executed_at: str | None = Field(default=None, description="When it executed, RFC 3339.")
    phase: str = Field(description="The decision's phase at the end of the series.")
    false_rollback: bool | None = Field(
        description="An executed Rollback with no regression labelled at or before it; null "
        "without ground truth or for other actions."
    )
    notifications: list[Told] = Field(
        default_factory=list,
        description="Whom the policy's notify list would have told, of what, in order.",
    )


class Escalation(Model):
    """A moment humans had to take over: a decision blocked by cooldown (it waits for an
    approval), the action budget spent (automatic actions stop), or a rollback whose
    validation failed (automatic actions stop)."""

    time: str
    action: str
    score: float | None
    reason: str = Field(description="cooldown, budget or validation.")


class RecordedResult(Model):
    """The result of running a policy over a recorded series (binding JSON shape)."""

    actions: list[RecordedAction]
    detection_delay_seconds: float | None = Field(
        description="First Rollback or Pause decision at or after the first labelled "
        "regression, minus its start; null without ground truth or when not detected."
    )
    false_rollbacks: int | None = Field(
        description="Executed Rollbacks with no regression labelled at or before them."
    )
    regression_start: str | None = Field(description="First labelled regression, RFC 3339.")
    escalations: list[Escalation]
    evaluations: int = Field(description="Evaluations run.")
    start: str = Field(description="First grid point, RFC 3339.")
    end: str = Field(description="Last grid point, RFC 3339.")
    step_seconds: float = Field(description="Grid step: the median sample spacing.")
    approve_after_seconds: float | None = Field(
        default=None, description="When a simulated human approves; null: nobody does."
    )
    signals: list[str]
    warnings: list[str]


def _score(x: float) -> float | None:
    return None if math.isnan(x) else float(f"{x:.6g}")


def window_samples(window_seconds: float, step: float) -> int:
    """Samples in [t - window, t] on a grid of ``step``: both ends included."""
    return max(1, math.floor(window_seconds / step + 1e-9) + 1)


def run_recorded(
    policy: EffectivePolicy,
    series: Series,
    *,
    setting: Setting | None = None,
    eval_times: np.ndarray | None = None,
    notify: Sequence[Notify] = (),
) -> RecordedResult:
    """Every decision ``policy`` would have made on ``series``, evaluated at the operator's
    instants (``evaluation_times``) or at ``eval_times`` (Unix seconds on the series' grid),
    and whom the policy's ``notify`` list would have told of each."""
    names = [s.name for s in policy.signals]
    if series.signals != names:
        raise ValueError(f"series signals {series.signals} are not the policy's {names}")
    step_s = series.step
    setting = setting or Setting(scrape_interval=step_s)
    window = window_samples(duration_seconds(policy.evaluation.window), step_s)
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
    if eval_times is None:
        eval_times = evaluation_times(policy, series)
    times = series.start + (np.arange(n_k + pad) - pad) * step_s
    member = VirtualMember(policy, setting)
    queries = [s.query for s in policy.signals]
    escalations: list[Escalation] = []
    for now in eval_times:
        k = math.floor((float(now) - series.start) / step_s + 1e-9)
        v, m = values[:, :, k : k + window], mask[:, :, k : k + window]
        samples: list[Samples | None] = [
            Samples(
                timestamps=[float(t) for t in times[k : k + window][m[0, s]]],
                values=[float(x) for x in v[0, s][m[0, s]]],
            )
            for s in range(len(names))
        ]
        before = len(member.decisions), len(member.escalations)
        measured = engine.Measurements(v, m, available, began=began_inside(m))
        member.evaluate(measured, now=float(now), samples=samples, queries=queries)
        escalations += _escalations(member, before)
    return _result(policy, series, member, escalations, evaluations=len(eval_times), notify=notify)


def evaluation_times(policy: EffectivePolicy, series: Series) -> NDArray[np.float64]:
    """The instants the operator evaluates ``policy`` at (``schedule``: the multiples of its
    interval) that ``series`` covers after its first sample. A sample lies at each of them
    when the series' grid is aligned to its step (as a backtest's is) and the step divides
    the interval; otherwise each evaluation takes the newest sample before its instant."""
    last = series.start + (series.values.shape[1] - 1) * series.step
    interval = duration_seconds(policy.evaluation.interval)
    at = schedule.instants(start=series.start + series.step, end=last, interval=interval)
    return np.array(at, dtype=np.float64)


def _escalations(member: VirtualMember, before: tuple[int, int]) -> list[Escalation]:
    """The escalations of one evaluation: decisions blocked by cooldown (each waits for a
    human), and each time automatic actions stopped (budget spent, rollback failed)."""
    decisions, escalations = before
    out = [
        Escalation(
            time=format_seconds(d.time), action=d.wanted, score=_score(d.score), reason="cooldown"
        )
        for d in member.decisions[decisions:]
        if d.blocked == "cooldown" and d.requires_approval
    ]
    newest = member.decisions[-1] if member.decisions else None
    for e in member.escalations[escalations:]:
        out.append(
            Escalation(
                time=format_seconds(e.time),
                action=newest.wanted if newest else "Hold",
                score=_score(newest.score) if newest else None,
                reason="budget" if e.reason == "budget" else "validation",
            )
        )
    return out


def _false(d: VirtualDecision, truth: np.ndarray | None, series: Series) -> bool | None:
    if truth is None or d.action != "Rollback" or d.executed_at is None:
        return None
    k = math.floor((d.time - series.start) / series.step + 1e-9)
    return not bool(truth[: k + 1].any())


def _result(
    policy: EffectivePolicy,
    series: Series,
    member: VirtualMember,
    escalations: list[Escalation],
    *,
    evaluations: int,
    notify: Sequence[Notify],
) -> RecordedResult:
    truth = series.regression
    actions = [
        RecordedAction(
            time=format_seconds(d.time),
            trigger=d.trigger,
            wanted=d.wanted,
            action=d.action,
            score=_score(d.score),
            requires_approval=d.requires_approval,
            blocked=d.blocked or None,
            executed=d.executed_at is not None,
            executed_at=format_seconds(d.executed_at) if d.executed_at is not None else None,
            phase=d.phase,
            false_rollback=_false(d, truth, series),
            notifications=[
                Told(receiver=receiver, event=event)
                for raised in d.raised
                for receiver, event in notices.subscribed(notify, raised)
            ],
        )
        for d in member.decisions
    ]
    start = delay = None
    if truth is not None and truth.any():
        start = series.start + int(np.argmax(truth)) * series.step
        responses = [d.time for d in member.decisions if d.action != "Hold" and d.time >= start]
        delay = responses[0] - start if responses else None
    last = series.start + (series.values.shape[1] - 1) * series.step
    return RecordedResult(
        actions=actions,
        detection_delay_seconds=delay,
        false_rollbacks=None if truth is None else sum(bool(a.false_rollback) for a in actions),
        regression_start=None if start is None else format_seconds(start),
        escalations=sorted(escalations, key=lambda e: e.time),
        evaluations=evaluations,
        start=format_seconds(series.start),
        end=format_seconds(last),
        step_seconds=series.step,
        approve_after_seconds=member.setting.approve_after,
        signals=[s.name for s in policy.signals],
        warnings=list(series.warnings),
    )
