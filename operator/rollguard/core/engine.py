"""The evaluation engine: one evaluation step for a batch of deployments under one policy.

PURE: numpy + rollguard.api only; no I/O, no clock (``now`` is an argument, Unix seconds).
The operator calls ``step`` once per policy per cycle with every bound deployment in the
batch; ``rollguard replay`` calls it with a batch of one. ``rollguard simulate`` runs the same
two halves of a step separately: ``evaluate_rows`` scores every seed at many evaluation times
at once (scoring needs no state), then ``guard.advance`` runs once per evaluation time. Same
code, same numbers: a member's result does not depend on the other members, on padding or on
how many evaluation times were scored together (tested bit for bit).

Shapes: B = batch (deployments or seeds), S = signals (policy order), N = samples per window,
T = trigger points (policy order), C = impact categories (policy order).

One step: window statistics -> signal severities -> category severities -> impact score
(``evaluate``, stateless) -> threshold curve with dwell tracking -> hysteresis (episodes) ->
safety (cooldown, budget) (``guard.advance``, whose docstring states the rules).

Warm-up is not missing data (``warmup`` states the rule): a signal with too few samples whose
series is younger than the window is Inconclusive whatever onMissingData says, and
``warming_up`` says so. ``evaluate`` reads ``born`` and ``began`` from the ``Measurements``
(whose sample positions carry no time, so ``began`` comes from whoever knows the samples'
times); ``evaluate_rows`` reads ``began`` from its rows, which are on the time grid, and takes
``born`` with the evaluation times. Both give the same bits (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from numpy.typing import NDArray

from rollguard.api.base import duration_seconds
from rollguard.api.policy import EffectivePolicy
from rollguard.core.guard import (
    BLOCKED_BUDGET,
    BLOCKED_COOLDOWN,
    GuardArrays,
    Rules,
    action_slots,
    actions_in_window,
    advance,
    arrays_to_states,
    cooldown_active,
    initial_state,
    record_action,
    state_to_arrays,
)
from rollguard.core.scoring import ImpactModel, category_severity, impact_score, key_forced
from rollguard.core.severity import SignalLimits, severities
from rollguard.core.statistics.sample_rows import SampleRows, newest_rows_stats, rows_stats
from rollguard.core.statistics.window_sums import WindowStats
from rollguard.core.statistics.windows import newest_window_stats, window_stats
from rollguard.core.warmup import rows_began_inside, warming_up, young

__all__ = [
    "BLOCKED_BUDGET",
    "BLOCKED_COOLDOWN",
    "Evaluation",
    "GuardArrays",
    "Measurements",
    "StepResult",
    "action_slots",
    "actions_in_window",
    "acts_automatically",
    "arrays_to_states",
    "auto_approved",
    "cooldown_active",
    "evaluate",
    "evaluate_rows",
    "initial_state",
    "paired_confidence",
    "record_action",
    "state_to_arrays",
    "step",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class Measurements:
    """Samples of every signal over the window ending at ``now``.

    values[b, s, n] is the n-th sample of signal s for batch member b, oldest first; mask marks
    the samples that exist (missing data, NaN and samples outside the window are False; a
    non-finite value is ignored even where the mask is True). Statistics do not depend on
    timestamps, only on the order of the samples. ``available[b, s]`` is False when the query
    itself failed (Prometheus down): that signal is Inconclusive regardless of the mask.
    ``samples.measurements_from_samples`` builds one from recorded samples.

    Warm-up (``warmup``): ``born[b]`` is the Unix time since which member b's current
    revision can have data (its rollout start), NaN when unknown; ``began[b, s]`` says that
    signal's samples began inside the window (``warmup.began_inside`` of the window laid out
    on its time grid). Either absent: unknown, no member warming up on that ground.
    """

    values: F64  # (B, S, N)
    mask: Bool  # (B, S, N)
    available: Bool  # (B, S)
    born: F64 | None = None  # (B,) Unix seconds, NaN: unknown
    began: Bool | None = None  # (B, S)


@dataclass(frozen=True)
class Evaluation:
    """What the windows say, before any state: fields are (..., S), (..., C) or (...), where
    ... is (B,) for ``evaluate`` and (J, members...) for ``evaluate_rows``."""

    stats: WindowStats  # of the test that decided each signal
    recent: Bool  # the newest evaluation.recentSamples decided the signal, not the whole window
    inconclusive: Bool  # too few samples or query failed (and onMissingData is Inconclusive,
    #                     or the signal is warming up)
    warming_up: Bool  # too few samples, and the series is younger than the window
    severity: F64  # in [0, 1]
    category_severity: F64  # in [0, 1]
    score: F64  # impact score in [0, 1]; NaN when every signal is Inconclusive


@dataclass(frozen=True)
class StepResult:
    """What one evaluation found, per batch member."""

    value: F64  # (B, S) mean over the window, NaN when Inconclusive
    lower: F64  # (B, S) lower confidence bound
    upper: F64  # (B, S) upper confidence bound
    count: I64  # (B, S) samples used
    recent: Bool  # (B, S) decided by the newest evaluation.recentSamples, not the whole window
    inconclusive: Bool  # (B, S) too few samples or query failed (and onMissingData is
    #                     Inconclusive, or the signal is warming up)
    warming_up: Bool  # (B, S) too few samples, and the series is younger than the window
    severity: F64  # (B, S) in [0, 1]
    category_severity: F64  # (B, C) in [0, 1]
    score: F64  # (B,) impact score in [0, 1]; NaN when every signal is Inconclusive
    fired: I64  # (B,) index of the trigger point that fired (the one with the highest minScore
    #             whose dwell time is satisfied), -1 when none
    blocked: NDArray[np.str_]  # (B,) "" or why a fired trigger may not act automatically now:
    #             "cooldown" | "budget" (the decision then requires a human)
    recovered: Bool  # (B,) degraded before and now below clearBelow
    state: GuardArrays  # the state to carry into the next step


def _check_shapes(policy: EffectivePolicy, m: Measurements, state: GuardArrays) -> int:
    batch = _check_measurements(policy, m)
    expected = {
        "above_since": (batch, len(policy.triggers)),
        "degraded": (batch,),
        "episode_rank": (batch,),
        "episode_min_score": (batch,),
        "action_times": (batch, action_slots(policy)),
        "changed_at": (batch,),
        "reoffer_at": (batch,),
        "reoffer_rank": (batch,),
        "reoffer_min_score": (batch,),
    }
    for name, shape in expected.items():
        got = getattr(state, name).shape
        if got != shape:
            raise ValueError(f"state.{name} must be {shape} for this policy and batch, got {got}")
    return batch


def _check_measurements(policy: EffectivePolicy, m: Measurements) -> int:
    signals = len(policy.signals)
    if m.values.ndim != 3 or m.values.shape[1] != signals or m.mask.shape != m.values.shape:
        raise ValueError(
            f"measurements: values and mask must be (B, {signals}, N), got "
            f"{m.values.shape} and {m.mask.shape}"
        )
    batch = int(m.values.shape[0])
    if m.available.shape != (batch, signals):
        raise ValueError(f"measurements.available must be ({batch}, {signals})")
    if m.born is not None and np.shape(m.born) != (batch,):
        raise ValueError(f"measurements.born must be ({batch},)")
    if m.began is not None and np.shape(m.began) != (batch, signals):
        raise ValueError(f"measurements.began must be ({batch}, {signals})")
    return batch


def paired_confidence(policy: EffectivePolicy) -> float:
    """The confidence each signal's interval is computed at: ``evaluation.confidence``, or with
    ``recentSamples`` set 1 - (1 - confidence) / 2, so that two tests (the whole window and its
    newest samples) together false-alarm no more often than one test at ``confidence``."""
    confidence = policy.evaluation.confidence
    if policy.evaluation.recent_samples is None:
        return confidence
    return 1.0 - (1.0 - confidence) / 2.0


def _young(policy: EffectivePolicy, now: float | F64 | None, born: F64 | None) -> Bool | None:
    """``warmup.young`` over the policy's window; None when born is not given."""
    if born is None:
        return None
    if now is None:
        raise ValueError("born needs now: the evaluation time")
    return young(now, born, duration_seconds(policy.evaluation.window))


def _judge(
    policy: EffectivePolicy, whole: WindowStats, newest: WindowStats | None, warming: Bool
) -> Evaluation:
    """Window statistics (..., S) -> severities, category severities and the impact score.

    With ``newest`` (the newest recentSamples of each window), a signal is judged by whichever
    of the two conclusive tests finds it more severe: a step change shows in the newest samples
    long before it moves the whole window's bound. Missing data is judged on the whole window
    only (onMissingData never applies to the newest samples), and a signal ``warming`` up is
    never a breach. A key signal at severity 1 sets the score to 1 whatever the weights
    (``scoring.key_forced``)."""
    limits = SignalLimits.of(policy)
    severity, inconclusive = severities(
        limits, whole.lower, whole.upper, ~whole.conclusive, warming
    )
    recent: Bool = np.zeros(severity.shape, dtype=np.bool_)
    stats = whole
    if newest is not None:
        strict = replace(limits, breach_on_missing=np.zeros_like(limits.breach_on_missing))
        later, unknown = severities(strict, newest.lower, newest.upper, ~newest.conclusive)
        recent = ~inconclusive & ~unknown & (later > severity)
        if recent.any():
            severity = np.where(recent, later, severity)
            stats = WindowStats(
                *(
                    np.where(recent, getattr(newest, f.name), getattr(whole, f.name))
                    for f in fields(WindowStats)
                )
            )
    model = ImpactModel.of(policy)
    categories = category_severity(model, severity)
    # Every signal Inconclusive. One vectorised AND per signal: a reduction over the short
    # signal axis would run one tiny loop per member.
    unknown_all: Bool = inconclusive[..., 0].copy()
    for s in range(1, inconclusive.shape[-1]):
        unknown_all &= inconclusive[..., s]
    return Evaluation(
        stats=stats,
        recent=recent,
        inconclusive=inconclusive,
        warming_up=warming,
        severity=severity,
        category_severity=categories,
        score=impact_score(
            model, categories, unknown_all, key_forced(model, severity, inconclusive)
        ),
    )


def evaluate(
    policy: EffectivePolicy, measurements: Measurements, *, now: float | None = None
) -> Evaluation:
    """Score every batch member on its window ending at ``now`` (Unix seconds; needed only
    when the measurements carry ``born``): the stateless half of ``step``."""
    _check_measurements(policy, measurements)
    available = np.asarray(measurements.available, dtype=np.bool_)
    mask = np.asarray(measurements.mask, dtype=np.bool_) & available[:, :, None]
    ev = policy.evaluation
    confidence = paired_confidence(policy)
    whole = window_stats(
        measurements.values, mask, min_samples=ev.min_samples, confidence=confidence
    )
    newest = None
    if ev.recent_samples is not None:
        newest = newest_window_stats(
            measurements.values,
            mask,
            newest=ev.recent_samples,
            min_samples=ev.recent_samples,
            confidence=confidence,
        )
    began = None if measurements.began is None else np.asarray(measurements.began, np.bool_)
    warming = warming_up(whole.conclusive, _young(policy, now, measurements.born), began)
    return _judge(policy, whole, newest, warming)


def evaluate_rows(
    policy: EffectivePolicy,
    rows: SampleRows,
    starts: I64,
    window: int,
    *,
    now: F64 | None = None,
    born: F64 | None = None,
) -> Evaluation:
    """Score every member of time-major ``rows`` (T, ..., S) on the windows of ``window`` rows
    starting at each of ``starts`` (J,): fields are (J, ..., S), (J, ..., C) and (J, ...).
    Each (time, member) gets exactly the numbers ``evaluate`` gives for that window alone,
    with the measurements' ``began`` laid out from the window (``warmup.began_inside``) and
    their ``born``.

    Rows are on the time grid, so whether a series began inside a window is read from them.
    ``born`` (Unix seconds, NaN unknown) is per member, (...), or per window and member,
    (J, ...) (a member whose revision changes mid-run); it needs ``now`` (J,), each window's
    evaluation time."""
    if rows.x.shape[-1] != len(policy.signals):
        raise ValueError(f"rows must end with the policy's {len(policy.signals)} signals")
    starts = np.asarray(starts, dtype=np.int64)
    members = rows.x.shape[1:-1]
    if born is not None and np.shape(born) not in (members, (starts.size, *members)):
        raise ValueError(f"born must be {members} or {(starts.size, *members)}")
    if born is not None and (now is None or np.shape(now) != (starts.size,)):
        raise ValueError(f"born needs now, one evaluation time per window: ({starts.size},)")
    ev = policy.evaluation
    confidence = paired_confidence(policy)
    whole = rows_stats(rows, starts, window, min_samples=ev.min_samples, confidence=confidence)
    newest = None
    if ev.recent_samples is not None:
        newest = newest_rows_stats(
            rows,
            starts,
            window,
            newest=ev.recent_samples,
            min_samples=ev.recent_samples,
            confidence=confidence,
        )
    times = None if now is None else np.reshape(now, (-1, *(1,) * len(members)))
    began = None if whole.conclusive.all() else rows_began_inside(rows, starts, window)
    warming = warming_up(whole.conclusive, _young(policy, times, born), began)
    return _judge(policy, whole, newest, warming)


def step(
    policy: EffectivePolicy,
    measurements: Measurements,
    state: GuardArrays,
    *,
    now: float,
    can_fire: Bool | None = None,
) -> StepResult:
    """Evaluate every batch member once at time ``now`` (Unix seconds). ``can_fire`` (B,)
    marks the members that may fire (no open decision, not escalated); default all."""
    _check_shapes(policy, measurements, state)
    judged = evaluate(policy, measurements, now=now)
    moved = advance(Rules.of(policy), judged.score, state, now=now, can_fire=can_fire)
    return StepResult(
        value=judged.stats.mean,
        lower=judged.stats.lower,
        upper=judged.stats.upper,
        count=judged.stats.count,
        recent=judged.recent,
        inconclusive=judged.inconclusive,
        warming_up=judged.warming_up,
        severity=judged.severity,
        category_severity=judged.category_severity,
        score=judged.score,
        fired=moved.fired,
        blocked=moved.blocked,
        recovered=moved.recovered,
        state=moved.state,
    )


def acts_automatically(
    policy: EffectivePolicy, result: StepResult, *, revisions_back: int | I64 = 1
) -> Bool:
    """(B,) members whose fired point is a Rollback or Pause the operator may take alone:
    not blocked, the action in autoApprove.actions, score <= autoApprove.maxScore and, for a
    Rollback, ``revisions_back`` <= autoApprove.maxRevisionsBack. For the simulator; the
    operator reads the same verdict from the decision (``decide``), which also knows whether a
    rollback target exists."""
    return auto_approved(
        policy, result.fired, result.blocked, result.score, revisions_back=revisions_back
    )


def auto_approved(
    policy: EffectivePolicy,
    fired: I64,
    blocked: NDArray[np.str_],
    score: F64,
    *,
    revisions_back: int | I64 = 1,
) -> Bool:
    """``acts_automatically`` from the fired points, blocked reasons and scores alone."""
    auto = policy.authorization.auto_approve
    actions = [t.action for t in policy.triggers]
    if not actions:
        return np.zeros(fired.shape, dtype=np.bool_)
    index = np.maximum(fired, 0)
    is_rollback = np.array([a == "Rollback" for a in actions], dtype=np.bool_)[index]
    allowed = np.array([a != "Hold" and a in auto.actions for a in actions], dtype=np.bool_)
    back_ok = ~is_rollback | (np.asarray(revisions_back) <= auto.max_revisions_back)
    ok: Bool = (fired >= 0) & allowed[index] & (blocked == "") & (score <= auto.max_score) & back_ok
    return ok
