"""Warm-up is not missing data: a signal with too few samples whose series is younger than the
window (the revision rolled out less than a window ago, or its samples began inside the window)
is Inconclusive even under onMissingData Breach, in every layout, in the evidence and in replay."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from factory import ONE_SIGNAL, T0, bits, policy_of

from rollguard.api.base import TargetRef
from rollguard.api.decision import Samples
from rollguard.api.modeldeployment import GuardState
from rollguard.core.decide import build_spec, decide, policy_snapshot
from rollguard.core.engine import (
    Evaluation,
    Measurements,
    evaluate,
    evaluate_rows,
    initial_state,
    state_to_arrays,
    step,
)
from rollguard.core.evidence import last_evaluation, signal_evidence
from rollguard.core.replay import replay
from rollguard.core.revisions import RevisionRecord, revision_born, revision_context
from rollguard.core.samples import measurements_from_samples
from rollguard.core.statistics.sample_rows import SampleRows
from rollguard.core.statistics.window_sums import WindowStats
from rollguard.core.warmup import began_inside, rows_began_inside

WINDOW = 120.0  # the high tier's window; minSamples 8, interval 15 s
BREACH: dict[str, Any] = {
    **ONE_SIGNAL,
    "signals": [{**ONE_SIGNAL["signals"][0], "onMissingData": "Breach"}],
}
# error_rate judged on data; accuracy (onMissingData Breach) is the $revision-scoped series.
PAIR: dict[str, Any] = {
    **ONE_SIGNAL,
    "signals": [
        ONE_SIGNAL["signals"][0],
        {
            "name": "accuracy",
            "query": 'avg(accuracy{deployment="$deployment",revision="$revision"})',
            "objective": {"min": 0.9},
            "margin": {"absolute": 0.0},
            "critical": 0.8,
            "onMissingData": "Breach",
        },
    ],
    "impact": {
        "categories": [
            {"name": "revenue", "weight": 1, "signals": {"error_rate": 1}},
            {"name": "market", "weight": 1, "signals": {"accuracy": 1}},
        ]
    },
    "triggers": [{"action": "Rollback", "minScore": 0.3, "sustainedFor": "0s"}],
}


def _empty(batch: int = 1, **extra: Any) -> Measurements:
    return Measurements(
        values=np.zeros((batch, 1, 9)),
        mask=np.zeros((batch, 1, 9), dtype=np.bool_),
        available=np.ones((batch, 1), dtype=np.bool_),
        **extra,
    )


def test_breach_without_samples_less_than_a_window_after_the_rollout_is_warming_up() -> None:
    policy = policy_of(BREACH)
    m = _empty(born=np.array([T0 - 60.0]))
    r = step(policy, m, initial_state(policy, 1), now=T0)
    assert bool(r.warming_up[0, 0]) and bool(r.inconclusive[0, 0])
    assert float(r.severity[0, 0]) == 0.0 and np.isnan(r.score[0]) and int(r.fired[0]) == -1
    [status] = last_evaluation(policy, r, 0, now=T0).signals
    assert (status.status, status.warming_up) == ("Inconclusive", True)
    assert "warming up" in status.message and "Breach does not apply" in status.message
    assert status.wire()["warmingUp"] is True


@pytest.mark.parametrize("born", [T0 - WINDOW, T0 - 3600.0, np.nan])
def test_breach_without_samples_once_a_window_has_passed_or_born_unknown_is_a_breach(
    born: float,
) -> None:
    policy = policy_of(BREACH)
    m = _empty(born=np.array([born]))
    r = step(policy, m, initial_state(policy, 1), now=T0)
    assert not bool(r.warming_up[0, 0]) and not bool(r.inconclusive[0, 0])
    assert float(r.severity[0, 0]) == 1.0 and float(r.score[0]) == 1.0
    assert int(r.fired[0]) == 0  # Rollback at minScore 0.7, no dwell
    [status] = last_evaluation(policy, r, 0, now=T0).signals
    assert (status.status, status.warming_up) == ("Breach", False)
    assert "warmingUp" not in status.wire()


def test_born_needs_the_evaluation_time() -> None:
    with pytest.raises(ValueError, match="born needs now"):
        evaluate(policy_of(BREACH), _empty(born=np.array([T0])))


def test_a_young_series_with_enough_samples_is_judged_on_them() -> None:
    policy = policy_of(BREACH)
    m = Measurements(
        values=np.full((1, 1, 8), 0.11),
        mask=np.ones((1, 1, 8), dtype=np.bool_),
        available=np.ones((1, 1), dtype=np.bool_),
        born=np.array([T0 - 10.0]),
    )
    ev = evaluate(policy, m, now=T0)
    assert not bool(ev.warming_up[0, 0]) and float(ev.severity[0, 0]) == 1.0


@pytest.mark.parametrize(
    ("slots", "began"),
    [
        ("....xxx", True),  # began inside the window, none missing since
        ("......x", True),
        ("x..xxxx", False),  # a sample at the window's start: the series is older
        ("...xx.x", False),  # one missing after the first: a gap, not a beginning
        ("...xxx.", False),  # the newest slot missing
        (".......", False),  # no samples at all: born decides
        ("xxxxxxx", False),
    ],
)
def test_a_series_began_inside_the_window_when_its_samples_fill_a_suffix(
    slots: str, began: bool
) -> None:
    valid = np.array([c == "x" for c in slots])
    assert bool(began_inside(valid)) is began
    rows = SampleRows.of(np.zeros((valid.size, 1)), valid[:, None])
    assert bool(rows_began_inside(rows, np.array([0]), valid.size)[0, 0]) is began


def test_breach_with_samples_only_in_a_suffix_is_warming_up_and_with_a_gap_a_breach() -> None:
    policy = policy_of(BREACH)
    suffix = np.array([[[False] * 6 + [True] * 3]])
    gap = np.array([[[False] * 5 + [True, False, True, True]]])
    for mask, warming in ((suffix, True), (gap, False)):
        m = Measurements(
            values=np.where(mask, 0.0, 0.0),
            mask=mask,
            available=np.ones((1, 1), dtype=np.bool_),
            began=began_inside(mask),
        )
        ev = evaluate(policy, m)  # no born: the samples alone say it
        assert bool(ev.warming_up[0, 0]) is warming
        assert float(ev.severity[0, 0]) == (0.0 if warming else 1.0)


def test_samples_on_a_range_querys_grid_say_where_a_series_began() -> None:
    since, until, step_s = T0 - WINDOW, T0, 15.0

    def at(*slots: int, step: float | None = step_s) -> Samples:
        return Samples(
            timestamps=[since + k * step_s for k in slots], values=[0.0] * len(slots), step=step
        )

    rows: list[list[Samples | None]] = [
        [at(5, 6, 7, 8)],  # the last four of nine slots
        [at(0, 7, 8)],  # one at the window's start
        [at(5, 6, 8)],  # a gap after the first
        [at(5, 6, 7, 8, step=None)],  # no step recorded: unknown
        [None],  # the query failed
    ]
    m = measurements_from_samples(rows, since=since, until=until)
    assert m.began is not None
    assert m.began[:, 0].tolist() == [True, False, False, False, False]
    unplaced = measurements_from_samples(rows)
    assert unplaced.began is not None and not unplaced.began.any()


def test_revision_born_is_the_replica_sets_creation_or_the_later_rollback() -> None:
    records = [
        RevisionRecord("rs-a", 3, "a", None, {}, created=T0 - 500.0),
        RevisionRecord("rs-b", 2, "b", None, {}, created=T0 - 9000.0),
    ]
    assert revision_born(records, current=3, changed_at=None) == T0 - 500.0
    # A rollback makes an old ReplicaSet current again: it is as young as the rollback.
    assert revision_born(records, current=2, changed_at=T0 - 60.0) == T0 - 60.0
    assert revision_born(records, current=3, changed_at=T0 - 9000.0) == T0 - 500.0
    assert revision_born([], current=1, changed_at=None) is None
    parsed = RevisionRecord.from_object(
        {
            "metadata": {
                "name": "rs",
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "annotations": {"deployment.kubernetes.io/revision": "3"},
            }
        }
    )
    assert parsed is not None and parsed.created == T0


def _evaluation_bits(ev: Evaluation, index: tuple[Any, ...]) -> dict[str, bytes]:
    out = {
        name: bits(np.asarray(getattr(ev, name))[index])
        for name in ("recent", "inconclusive", "warming_up", "severity", "category_severity")
    }
    out["score"] = bits(np.asarray(ev.score)[index[:-1]])
    for f in fields(WindowStats):
        out[f"stats.{f.name}"] = bits(np.asarray(getattr(ev.stats, f.name))[index])
    return out


@pytest.mark.parametrize("per_window", [False, True])
def test_many_evaluation_times_with_born_give_the_bits_of_each_evaluation_alone(
    per_window: bool,
) -> None:
    policy = policy_of(PAIR)
    rng = np.random.default_rng(7)
    n_t, width, members = 90, 9, 6
    values = np.stack(
        [rng.normal(0.02, 0.01, (n_t, members)), rng.normal(0.9, 0.05, (n_t, members))], axis=-1
    )
    mask = rng.random(values.shape) > 0.15
    # Series that begin inside windows: members 0-2 start late, member 3 has long gaps.
    for b, first in enumerate((30, 44, 61)):
        mask[:first, b, 1] = False
    mask[20:40, 3] = False
    mask[50:70, 3, 1] = False
    starts = np.arange(0, n_t - width, 3)
    now = T0 + 15.0 * (starts + width - 1)
    born_member = T0 + 15.0 * np.array([25.0, 40.0, np.nan, 10.0, 80.0, np.nan])
    born = (
        np.where(rng.random((starts.size, members)) < 0.5, born_member, now[:, None] - 30.0)
        if per_window
        else born_member
    )
    many = evaluate_rows(policy, SampleRows.of(values, mask), starts, width, now=now, born=born)
    assert many.warming_up.any() and (many.severity == 1.0).any()
    for j, start in enumerate(starts):
        window = slice(start, start + width)
        laid = np.moveaxis(mask[window], 0, -1)  # (members, S, width)
        alone = evaluate(
            policy,
            Measurements(
                values=np.moveaxis(values[window], 0, -1),
                mask=laid,
                available=np.ones((members, 2), np.bool_),
                born=born[j] if per_window else born,
                began=began_inside(laid),
            ),
            now=float(now[j]),
        )
        for b in range(members):
            got = _evaluation_bits(many, (j, b, slice(None)))
            want = _evaluation_bits(alone, (b, slice(None)))
            assert got == want, (j, b)


def _warm_up_decision(born: float | None, samples: list[Samples | None]) -> Any:
    """A decision made while accuracy (onMissingData Breach) warms up: error_rate fires."""
    policy = policy_of(PAIR)
    state = GuardState()
    m = measurements_from_samples([samples], born=[born], since=T0 - WINDOW, until=T0)
    r = step(policy, m, state_to_arrays(policy, [state]), now=T0)
    assert int(r.fired[0]) >= 0 and bool(r.warming_up[0, 1])
    revisions = revision_context(
        records=[RevisionRecord("rs", 2, "h2", None, {}, created=born)],
        approved=[],
        current=2,
        rollout_in_progress=False,
        born=born,
    )
    draft = decide(
        policy,
        r,
        0,
        samples=samples,
        queries=["q1", "q2"],
        revisions=revisions,
        business=None,
        state_before=state,
        now=T0,
    )
    return build_spec(
        draft,
        model_deployment="fraud",
        target=TargetRef.deployment("fraud"),
        policy=policy_snapshot(name="p", namespace="ml", generation=1, effective=policy),
        operator_version="test",
    )


def _grid(*slots: int, value: float) -> Samples:
    since = T0 - WINDOW
    return Samples(
        timestamps=[since + 15.0 * k for k in slots], values=[value] * len(slots), step=15.0
    )


@pytest.mark.parametrize("why", ["born", "began"])
def test_a_decision_made_during_warm_up_replays_bit_for_bit(why: str) -> None:
    errors = _grid(*range(9), value=0.2)  # error_rate far beyond critical
    if why == "born":
        spec = _warm_up_decision(T0 - 30.0, [errors, _grid(value=0.95)])
    else:
        spec = _warm_up_decision(None, [errors, _grid(7, 8, value=0.95)])
    [_, accuracy] = spec.signals
    assert (accuracy.status, accuracy.warming_up, accuracy.severity) == ("Inconclusive", True, 0.0)
    assert "warming up" in accuracy.message
    assert spec.impact.score == pytest.approx(0.5)  # error_rate's category alone, not 1
    result = replay(spec)
    assert result.same, result.differences
    # What the decision recorded is what made it warm-up: without it replay sees a breach.
    if why == "born":
        tampered = spec.model_copy(
            update={"revisions": spec.revisions.model_copy(update={"born": None})}
        )
    else:
        samples = accuracy.samples.model_copy(update={"step": None})
        tampered = spec.model_copy(
            update={"signals": [spec.signals[0], accuracy.model_copy(update={"samples": samples})]}
        )
    differences = replay(tampered).differences
    assert any("warmingUp" in d or "impact.score" in d for d in differences), differences


def test_signal_evidence_says_warming_up_and_leaves_it_out_otherwise() -> None:
    policy = policy_of(PAIR)
    samples: list[Samples | None] = [_grid(*range(9), value=0.0), _grid(value=0.95)]
    m = measurements_from_samples([samples], born=[T0 - 30.0], since=T0 - WINDOW, until=T0)
    r = step(policy, m, initial_state(policy, 1), now=T0)
    ok, warming = signal_evidence(policy, r, 0, samples=samples, queries=["q1", "q2"])
    assert warming.warming_up and warming.wire()["warmingUp"] is True
    assert not ok.warming_up and "warmingUp" not in ok.wire()
