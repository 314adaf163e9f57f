"""Unit tests for the workload simulator's blends of profiles (the traffic of a Rollout
mid-update) and for workloads of different kinds in one fleet: series that add up when kinds
share a name, pods named after their kind, re-lists that touch one kind only."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devenv.workload.families import pod_names, pod_template_hash
from devenv.workload.fleet import Simulator
from devenv.workload.kinds import DEPLOYMENT, ROLLOUT, STATEFUL_SET, WorkloadInfo
from devenv.workload.profile import PROFILES, Profile, blend

NS = "ml"
POD = re.compile(r"^(?P<name>.+)-(?P<hash>[bcdfghjklmnpqrstvwxz2456789]{9,10})-[a-z0-9]{5}$")


# --- blends of profiles ----------------------------------------------------------------------


def _mean_latency(lat: tuple[Any, Any]) -> float:
    probs, means = lat
    return float(probs @ means)


@settings(max_examples=200, deadline=None)
@given(
    first=st.sampled_from(sorted(PROFILES)),
    second=st.sampled_from(sorted(PROFILES)),
    share=st.floats(0.01, 0.99),
)
def test_a_blend_mixes_codes_latency_and_revenue_by_the_share_of_requests(
    first: str, second: str, share: float
) -> None:
    a, b = PROFILES[first], PROFILES[second]
    mixed = blend([(a, share), (b, 1.0 - share)])
    one, other = blend([(a, 1.0)]), blend([(b, 1.0)])
    # Every profile has the same rate, so the share of requests is the share of replicas.
    assert mixed.rps_per_replica == pytest.approx(a.rps_per_replica)
    assert mixed.code_p.sum() == pytest.approx(1.0)
    assert mixed.code_p == pytest.approx(share * one.code_p + (1 - share) * other.code_p)
    assert mixed.code_p_burst == pytest.approx(
        share * one.code_p_burst + (1 - share) * other.code_p_burst
    )
    for lat, lats in (
        (mixed.lat, (one.lat, other.lat)),
        (mixed.lat_burst, (one.lat_burst, other.lat_burst)),
    ):
        assert lat[0].sum() == pytest.approx(1.0)
        assert _mean_latency(lat) == pytest.approx(
            share * _mean_latency(lats[0]) + (1 - share) * _mean_latency(lats[1])
        )
    low, high = sorted([a.revenue_per_success, b.revenue_per_success])
    assert low - 1e-12 <= mixed.revenue_per_success <= high + 1e-12
    assert mixed.bursty == (a.bursty or b.bursty)
    swapped = blend([(b, 1.0 - share), (a, share)])
    assert swapped.code_p == pytest.approx(mixed.code_p)


def test_a_blend_of_one_part_is_that_profile_exactly() -> None:
    alone = blend([(PROFILES["latency"], 1.0)])
    with_empty_part = blend([(PROFILES["latency"], 1.0), (PROFILES["errors"], 0.0)])
    assert alone.code_p.tolist() == with_empty_part.code_p.tolist()
    assert alone.lat[1].tolist() == with_empty_part.lat[1].tolist()
    with pytest.raises(ValueError, match="positive share"):
        blend([(PROFILES["errors"], 0.0)])


def test_a_blend_weighs_parts_by_their_rates() -> None:
    fast = Profile("errors", rps_per_replica=30.0, server_error_rate=0.1)
    slow = Profile("healthy", rps_per_replica=10.0, server_error_rate=0.0)
    mixed = blend([(fast, 0.5), (slow, 0.5)])
    assert mixed.rps_per_replica == pytest.approx(20.0)
    assert mixed.code_p[2:].sum() == pytest.approx(0.75 * 0.1)  # 3 of 4 requests are fast's


# --- kinds in the fleet ----------------------------------------------------------------------


def test_a_silent_canary_silences_the_series() -> None:
    sim = Simulator(seed=4)
    sim.apply(
        WorkloadInfo(
            NS, "fraud", {"SIM_PROFILE": "silent"}, 2, ROLLOUT, {"SIM_PROFILE": "healthy"}, 0.5
        )
    )
    sim.tick(10)
    assert 'deployment="fraud"' not in sim.render()


def _by_name(text: str, metric: str) -> dict[str, float]:
    """``metric``'s samples by their labels, as text."""
    return {
        labels: float(value)
        for labels, value in re.findall(rf"^{metric}\{{(.*)\}} (\S+)$", text, flags=re.M)
    }


def test_kinds_sharing_a_name_add_up_in_one_series_and_keep_their_own_pods() -> None:
    sim = Simulator(seed=9)
    sim.apply(WorkloadInfo(NS, "fraud", {"SIM_PROFILE": "errors"}, 2))
    sim.apply(WorkloadInfo(NS, "fraud", {"SIM_PROFILE": "healthy"}, 3, STATEFUL_SET))
    sim.apply(WorkloadInfo(NS, "fraud", {"SIM_PROFILE": "healthy"}, 1, ROLLOUT))
    sim.tick(100)
    text = sim.render()
    deps = [sim.get(NS, "fraud", kind) for kind in (DEPLOYMENT, STATEFUL_SET, ROLLOUT)]
    total = np.sum([d.codes for d in deps if d is not None], axis=0)
    assert len(deps) == 3
    requests = _by_name(text, "model_requests_total")
    assert len(requests) == 4  # one series per code: no duplicates
    assert all(d is not None for d in deps)
    assert sorted(requests.values()) == sorted(map(float, total))
    istio = _by_name(text, "istio_requests_total")
    assert sorted(istio.values()) == sorted(map(float, total))
    # One info line per profile served under the name.
    assert len(_by_name(text, "sim_profile_info")) == 2
    pods = {
        labels.split('pod="')[1].rstrip('"')
        for labels in _by_name(text, "model_pod_request_duration_seconds_count")
    }
    assert {"fraud-0", "fraud-1", "fraud-2"} < pods
    assert len(pods) == 2 + 3 + 1
    rollout_pods = pod_names(NS, "fraud", [0], ROLLOUT)
    assert set(rollout_pods) < pods
    assert POD.match(rollout_pods[0])
    assert pod_template_hash(NS, "fraud", ROLLOUT) != pod_template_hash(NS, "fraud")
    # Each workload draws its own stream, even with the Deployment's profile.
    assert deps[1] is not None and deps[2] is not None
    assert not np.array_equal(deps[1].codes, deps[2].codes)

    sim.remove(NS, "fraud", DEPLOYMENT)
    assert sim.get(NS, "fraud", STATEFUL_SET) is not None
    assert sorted(sim.state()[NS]) == ["Rollout/fraud", "StatefulSet/fraud"]


def test_a_relist_of_one_kind_leaves_the_others_alone() -> None:
    sim = Simulator(seed=9)
    sim.apply(WorkloadInfo(NS, "a", {"SIM_PROFILE": "healthy"}, 1))
    sim.apply(WorkloadInfo(NS, "a", {"SIM_PROFILE": "healthy"}, 1, STATEFUL_SET))
    sim.apply(WorkloadInfo(NS, "b", {"SIM_PROFILE": "healthy"}, 1, STATEFUL_SET))
    sim.sync([WorkloadInfo(NS, "b", {"SIM_PROFILE": "healthy"}, 1, STATEFUL_SET)], STATEFUL_SET)
    assert sorted(sim.state()[NS]) == ["StatefulSet/b", "a"]
    sim.sync([], ROLLOUT)
    assert sorted(sim.state()[NS]) == ["StatefulSet/b", "a"]
    with pytest.raises(ValueError, match="given a StatefulSet"):
        sim.sync([WorkloadInfo(NS, "b", {"SIM_PROFILE": "healthy"}, 1, STATEFUL_SET)])


def test_stateful_set_pods_are_named_by_ordinal_and_return_from_zero() -> None:
    sim = Simulator(seed=2)
    sim.apply(WorkloadInfo(NS, "fraud", {"SIM_PROFILE": "healthy"}, 3, STATEFUL_SET))
    sim.tick(40)
    assert sim.state()[NS]["StatefulSet/fraud"]["pods"] == ["fraud-0", "fraud-1", "fraud-2"]
    sim.apply(WorkloadInfo(NS, "fraud", {"SIM_PROFILE": "healthy"}, 2, STATEFUL_SET))
    sim.tick(40)
    before = _by_name(sim.render(), "model_pod_request_duration_seconds_count")
    sim.apply(WorkloadInfo(NS, "fraud", {"SIM_PROFILE": "healthy"}, 3, STATEFUL_SET))
    after = _by_name(sim.render(), "model_pod_request_duration_seconds_count")
    assert sim.state()[NS]["StatefulSet/fraud"]["pods"] == ["fraud-0", "fraud-1", "fraud-2"]
    # The pods that lived on keep their counts; the one scaled back up starts from zero.
    assert {k: v for k, v in after.items() if k in before} == before
    assert after['namespace="ml",pod="fraud-2"'] == 0.0
