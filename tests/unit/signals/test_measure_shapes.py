"""``measure`` over a range, batched, gives every target what its own query gives it through the
same client: the samples, no series, or "returned 2 series". Checked on every real-world shape
and on ``X or vector(c)``, whose batch is X's and whose default the split fills in: for a
target with no data (c at every step), one whose data starts inside the window (c until then,
in the same series, as Prometheus merges them) and ratios that are NaN at zero traffic (left
out, not filled)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from promql_eval import Data, EvalSource
from test_promql_shapes import FLEET, SHAPES, T_END, fleet_series

from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.core.tiers import resolve
from rollguard.signals.measure import SignalSamples, measure
from rollguard.signals.prometheus import Series
from rollguard.signals.promql import Target, plan, render

ERRORS = (
    'sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment",'
    'code="500"}[30s]))'
)
ISTIO_RATIO = SHAPES["istio error ratio"]
DEFAULTS = {
    "errors or on () vector(0)": f"{ERRORS} or on () vector(0)",
    "errors or vector(-1)": f"({ERRORS}) or vector(-1)",
    "ratio or on () vector(0)": f"({ISTIO_RATIO}) or on () vector(0)",
    "p99 or vector(0)": f"{SHAPES['pod-name p99']} or vector(0)",
}
LATE = Target("ns-l", "late", "1")  # its series begin 20 s before the end of the window
SILENT = Target("ns-a", "silent", "3")  # no series at all
IDLE = Target("ns-i", "idle", "1")  # counters that stand still: every ratio is NaN


def _data() -> Data:
    data = fleet_series(FLEET)
    for labels, samples in fleet_series([LATE], seed=11).items():
        data[labels] = [(t, v) for t, v in samples if t >= T_END - 20]
    for labels, samples in fleet_series([IDLE], seed=12).items():
        data[labels] = [(t, 1.0) for t, _ in samples]
    return data


DATA = _data()
TARGETS = [*FLEET, LATE, SILENT, IDLE]


def _policy(queries: dict[str, str]) -> EffectivePolicy:
    names = {shape: f"s{i}" for i, shape in enumerate(queries)}
    spec = {
        "riskTier": "medium",
        "evaluation": {"window": "60s"},
        "signals": [
            {"name": names[s], "query": q, "objective": {"max": 1e9}, "critical": 1e10}
            for s, q in queries.items()
        ],
        "impact": {"categories": [{"name": "all", "weight": 1, "signals": {"s0": 1}}]},
    }
    return resolve(RollbackPolicySpec.model_validate(spec))


def _alone(source: EvalSource, query: str, target: Target, batch: Any) -> tuple[str, Any]:
    """What the target's own query gives, read as ``measure`` reads one result."""
    own = render(
        query, namespace=target.namespace, deployment=target.deployment, revision=target.revision
    )
    series = source.query_range(query=own, start=batch.start, end=batch.end, step=batch.step)
    if len(series) > 1:
        return "refused", len(series)
    if not series:
        return "empty", None
    return "samples", series[0]


def _compare(got: SignalSamples, alone: tuple[str, Any], where: str) -> None:
    kind, value = alone
    if kind == "refused":
        assert not got.available and f"returned {value} series" in got.message, where
        return
    assert got.available, f"{where}: {got.message}"
    if kind == "empty":
        assert got.values.size == 0, where
        return
    mine: Series = value
    np.testing.assert_array_equal(got.timestamps, mine.timestamps, err_msg=where)
    np.testing.assert_allclose(got.values, mine.values, rtol=1e-9, atol=0, err_msg=where)


@pytest.mark.parametrize("shapes", [SHAPES, DEFAULTS], ids=["shapes", "defaults"])
def test_measure_batched_equals_each_targets_own_query(shapes: dict[str, str]) -> None:
    policy = _policy(shapes)
    source = EvalSource(DATA)
    batch = measure(source=source, policy=policy, targets=TARGETS, now=T_END, step=5.0)
    assert all(run.mode == "Batched" and run.ok for run in batch.runs), batch.runs
    assert batch.queries_issued < len(TARGETS) * len(shapes) / 3
    seen: set[str] = set()
    for s, (shape, query) in enumerate(shapes.items()):
        for b, target in enumerate(TARGETS):
            alone = _alone(EvalSource(DATA), query, target, batch)
            _compare(batch.samples[b][s], alone, f"{shape} {target}")
            seen.add(alone[0])
    # a default leaves no target without samples; the shapes meet all three outcomes
    assert seen == ({"samples"} if shapes is DEFAULTS else {"samples", "empty", "refused"})


def test_the_default_fills_a_silent_target_and_leaves_nan_steps_out() -> None:
    policy = _policy(DEFAULTS)
    batch = measure(source=EvalSource(DATA), policy=policy, targets=TARGETS, now=T_END, step=5.0)
    silent = batch.samples[TARGETS.index(SILENT)][0]
    assert silent.available and silent.values.size == 13 and not silent.values.any()
    assert set(batch.samples[TARGETS.index(SILENT)][1].values.tolist()) == {-1.0}
    idle = batch.samples[TARGETS.index(IDLE)][2]  # 0/0 at every step: no value, and no 0
    assert idle.available and idle.values.size == 0
    late = batch.samples[TARGETS.index(LATE)][0]  # 0 until its series begins: one series
    assert late.available and late.values.size == 13
    assert not late.values[:8].any() and late.values[-1] > 0


def test_which_defaults_batch() -> None:
    assert plan(f"{ERRORS} or on () vector(0)").fill == 0.0
    assert plan(f"({ERRORS}) or vector(-1)").fill == -1.0
    by_code = ERRORS.replace("sum(", "sum by (code) (")
    assert "batched only after a sum without 'by'" in plan(f"{by_code} or vector(0)").reason
    assert not plan(f"{by_code} or on () vector(0)").batched
    assert plan(f"{ERRORS} or on () vector(0)").fill == 0.0
    assert not plan(f"{ERRORS} or ignoring (code) vector(0)").batched
    assert not plan(f"{ERRORS} or vector(time())").batched
    assert not plan(f"vector(0) or {ERRORS}").batched
    assert plan(ERRORS).fill is None
