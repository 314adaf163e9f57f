"""One decision machine, proven: ``rollguard simulate --series`` (``run_recorded``) and the
operator's own control code (``run_cycle`` and the decision lifecycle over an in-memory API
server, ``operator_harness``) make the same decisions at the same evaluation times on the
same data: time, trigger point, recommended action, approval required, executed, final phase,
the moments the ModelDeployment escalated to humans, and the messages a receiver subscribed
to every transition is told of, in order.

Generated policies (within the schema) x generated series (steps, drifts, spikes, gaps,
noise) x what humans and the Deployment do (approval after a delay or never, a rollout in
progress, how many approved revisions there are). ROLLGUARD_DIFFERENTIAL_EXAMPLES raises the
number of generated cases (``make differential`` runs thousands).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from fake_cluster import NAMESPACE, POLICY, FakeCluster
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from operator_harness import OperatorRun, run_operator
from pydantic import ValidationError

from rollguard.api.policy import EffectivePolicy, Notify, RollbackPolicySpec
from rollguard.control.notifications import Notifier
from rollguard.control.receivers import ReceiversSource
from rollguard.control.steps import Memory
from rollguard.core.notices import NOTIFY_ON
from rollguard.core.tiers import resolve
from rollguard.files.series import Series, SeriesError, parse_series
from rollguard.kube.client import Cluster
from rollguard.simulation.recorded import RecordedResult, run_recorded
from rollguard.simulation.virtual import Setting

T0 = 1_699_999_200  # a multiple of every interval: evaluation instants are
STEP = 15
EXAMPLES = int(os.environ.get("ROLLGUARD_DIFFERENTIAL_EXAMPLES", "150"))

Row = tuple[float, int, str, bool, bool, str, tuple[str, ...]]
EVERYTHING = [{"transitions": list(NOTIFY_ON), "receiver": "all"}]


@dataclass(frozen=True)
class Case:
    policy: dict[str, Any]
    values: dict[str, list[float]]  # per signal, NaN = no sample
    approve_after: float | None
    rollout_in_progress: bool
    revisions: int


def _signal(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "query": f'sig_{name.replace("-", "_")}{{namespace="$namespace", deployment="$deployment"}}',
        "objective": {"max": 1.0},
        "margin": {"absolute": 0.0},
        "critical": 2.0,
    }


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.sampled_from([["error-rate"], ["error-rate", "p99-latency"]]))
    interval = draw(st.sampled_from([15, 30]))
    window = draw(st.sampled_from([30, 60, 120]))
    clear = draw(st.sampled_from([0.1, 0.2]))
    points = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["Rollback", "Pause", "Hold"]),
                st.sampled_from([0.3, 0.5, 0.7, 0.9]),
                st.sampled_from(["0s", "15s", "30s", "1m", "2m"]),
            ),
            min_size=1,
            max_size=3,
        )
    )
    signals = [_signal(n) for n in names]
    if len(names) == 2 and draw(st.booleans()):
        signals[1]["key"] = True
    policy: dict[str, Any] = {
        "riskTier": draw(st.sampled_from(["low", "medium", "high", "critical"])),
        "mode": draw(st.sampled_from(["Enforce", "Enforce", "DryRun"])),
        "evaluation": {
            "interval": f"{interval}s",
            "window": f"{window}s",
            "minSamples": draw(st.integers(2, max(2, window // STEP))),
        },
        "signals": signals,
        "impact": {
            "categories": [
                {
                    "name": "revenue",
                    "weight": 1,
                    "signals": {n: draw(st.sampled_from([0.5, 1.0])) for n in names},
                },
                {
                    "name": "customer-experience",
                    "weight": draw(st.sampled_from([0.5, 1, 2])),
                    "signals": {names[-1]: 1.0},
                },
            ]
        },
        "triggers": [{"action": a, "minScore": m, "sustainedFor": d} for a, m, d in points],
        "clearBelow": clear,
        "safety": {
            "cooldown": draw(st.sampled_from(["0s", "1m", "5m", "20m"])),
            "maxActionsPerWindow": {
                "count": draw(st.integers(0, 3)),
                "window": draw(st.sampled_from(["10m", "1h"])),
            },
        },
        "authorization": {
            "autoApprove": {
                "maxScore": draw(st.sampled_from([0.6, 1.0])),
                "actions": draw(
                    st.sampled_from([["Rollback", "Pause"], ["Pause"], ["Rollback"], []])
                ),
                "maxRevisionsBack": draw(st.integers(1, 2)),
            },
            "approvalTimeout": draw(st.sampled_from(["1m", "3m", "10m"])),
            "onTimeout": draw(st.sampled_from(["Reject", "Execute"])),
        },
        "validation": {"window": draw(st.sampled_from(["1m", "3m"]))},
    }
    return policy


@st.composite
def series_values(draw: st.DrawFn, n: int) -> list[float]:
    """Segments of steady levels, drifts and spikes on noise, with gaps."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    out: list[float] = []
    while len(out) < n:
        length = draw(st.integers(3, 30))
        kind = draw(st.sampled_from(["level", "level", "drift", "spike", "gap"]))
        level = draw(st.sampled_from([0.0, 0.5, 1.2, 1.6, 2.5]))
        noise = draw(st.sampled_from([0.0, 0.05, 0.3]))
        base = np.full(length, level)
        if kind == "drift":
            base = np.linspace(level, draw(st.sampled_from([0.0, 1.5, 3.0])), length)
        elif kind == "spike":
            base[length // 2] = 5.0
        values = base + rng.normal(0.0, noise, length) if noise else base
        if kind == "gap":
            values[:] = math.nan
        out += [round(float(v), 6) for v in values]
    return out[:n]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    policy = draw(policies())
    n = draw(st.integers(20, 90))
    names = [s["name"] for s in policy["signals"]]
    return Case(
        policy=policy,
        values={name: draw(series_values(n)) for name in names},
        approve_after=draw(st.sampled_from([None, 30.0, 90.0, 600.0])),
        rollout_in_progress=draw(st.booleans()),
        revisions=draw(st.integers(2, 3)),
    )


def _series(values: dict[str, list[float]]) -> Series:
    rows = [
        f"{T0 + k * STEP},{name},{v!r}"
        for name, vs in values.items()
        for k, v in enumerate(vs)
        if not math.isnan(v)
    ]
    text = "timestamp,signal,value\n" + "\n".join(rows) + "\n"
    return parse_series(text, source="case.csv", json_format=False, signals=list(values))


def _effective(policy: dict[str, Any]) -> EffectivePolicy | None:
    try:
        return resolve(RollbackPolicySpec.model_validate(policy))
    except (ValidationError, ValueError):
        return None


def _simulated(result: RecordedResult, start: float) -> tuple[list[Row], list[float]]:
    def t(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - start

    rows = [
        (
            t(a.time), a.trigger, a.action, a.requires_approval, a.executed, a.phase,
            tuple(n.event for n in a.notifications),
        )
        for a in result.actions
    ]  # fmt: skip
    stops = [t(e.time) for e in result.escalations if e.reason != "cooldown"]
    return rows, stops


def _operated(run: OperatorRun, start: float) -> tuple[list[Row], list[float]]:
    told = {
        obj["metadata"]["name"]: tuple(
            n["transition"] for n in (obj.get("status") or {}).get("notifications") or ()
        )
        for obj in run.stored_decisions
    }
    rows = [
        (
            d.time - start, d.trigger, d.action, d.requires_approval, d.executed, d.phase,
            told[d.name],
        )
        for d in run.decisions
    ]  # fmt: skip
    return rows, [time - start for time, _ in run.escalations]


def _subscribed(policy: dict[str, Any]) -> Callable[[float, FakeCluster], None]:
    """The RollbackPolicy as stored, its notify list subscribing ``all`` to everything: the
    notifier reads it there."""

    def act(now: float, fake: FakeCluster) -> None:
        if ("RollbackPolicy", NAMESPACE, POLICY) not in fake.objects:
            meta = {"namespace": NAMESPACE, "name": POLICY}
            fake.add_object(
                "RollbackPolicy", {"metadata": meta, "spec": {**policy, "notify": EVERYTHING}}
            )

    return act


def _notifier(cluster: Cluster, memory: Memory) -> Notifier:
    return Notifier(cluster=cluster, receivers=ReceiversSource(None), serialised=memory.serialised)


def compare(case: Case) -> tuple[tuple[list[Row], list[float]], tuple[list[Row], list[float]]]:
    effective = _effective(case.policy)
    assume(effective is not None)
    assert effective is not None
    try:
        series = _series(case.values)
    except SeriesError:
        assume(False)  # a case that is nearly all gap: not a series anyone records
        raise
    assume(series.values.shape[1] > 4)
    operator = run_operator(
        case.policy,
        series,
        approve_after=case.approve_after,
        rollout_in_progress=case.rollout_in_progress,
        revisions=case.revisions,
        act=_subscribed(case.policy),
        notifier=_notifier,
    )
    simulated = run_recorded(
        effective,
        series,
        setting=Setting(
            revisions=case.revisions,
            rollout_in_progress=case.rollout_in_progress,
            approve_after=case.approve_after,
            scrape_interval=series.step,
        ),
        notify=[Notify.model_validate(n) for n in EVERYTHING],
    )
    return _operated(operator, series.start), _simulated(simulated, series.start)


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(cases())
def test_simulate_series_decides_exactly_as_the_operators_control_code(case: Case) -> None:
    operated, simulated = compare(case)
    assert simulated == operated
