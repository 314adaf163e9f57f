"""Unit tests for the workload simulator's other kinds: StatefulSets and Argo Rollouts read
from their API objects, and a Rollout's traffic split between its stable and canary templates
in each state of an update, down to the requests the fleet draws (blends and kinds sharing a
name: test_workload_blend.py)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devenv.workload.fleet import Simulator
from devenv.workload.kinds import (
    ROLLOUT,
    STATEFUL_SET,
    WorkloadInfo,
    extract_rollout,
    extract_stateful_set,
    rollout_split,
)

NS = "ml"
STABLE, CANARY = "5d8f7c9b4", "7f6c5b8d9"


# --- API objects, shaped as the API server and the Argo Rollouts controller write them -------


def _template(profile: str | None) -> dict[str, Any]:
    env = [] if profile is None else [{"name": "SIM_PROFILE", "value": profile}]
    return {
        "metadata": {"labels": {"app": "fraud"}},
        "spec": {"containers": [{"name": "model", "image": "x", "env": env}]},
    }


def _stateful_set(profile: str = "healthy", replicas: int | None = 3) -> dict[str, Any]:
    spec: dict[str, Any] = {"serviceName": "fraud", "template": _template(profile)}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"namespace": NS, "name": "fraud"}, "spec": spec}


def _rollout(
    status: dict[str, Any] | None,
    *,
    profile: str = "errors",
    generation: int = 2,
    strategy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"namespace": NS, "name": "fraud", "generation": generation},
        "spec": {
            "replicas": 2,
            "strategy": strategy or {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
            "template": _template(profile),
        },
    }
    if status is not None:
        obj["status"] = {"observedGeneration": str(generation), **status}
    return obj


HEALTHY = {"phase": "Healthy", "stableRS": STABLE, "currentPodHash": STABLE, "updatedReplicas": 2}
PAUSED_AT_HALF = {
    "phase": "Paused",
    "stableRS": STABLE,
    "currentPodHash": CANARY,
    "currentStepIndex": 1,
    "updatedReplicas": 1,
    "pauseConditions": [{"reason": "CanaryPauseStep"}],
}
ABORTED = {**PAUSED_AT_HALF, "phase": "Degraded", "abort": True, "updatedReplicas": 0}
PROMOTED = {"phase": "Healthy", "stableRS": CANARY, "currentPodHash": CANARY, "updatedReplicas": 2}


def _routed(canary: int, stable: int) -> dict[str, Any]:
    """Paused at a step, with traffic routing: the weights the controller set."""
    weights = {"canary": {"weight": canary}, "stable": {"weight": stable}}
    return {**PAUSED_AT_HALF, "canary": {"weights": weights}}


def _replica_set(
    pod_hash: str, profile: str | None, *, owner: str = "fraud", kind: str = ROLLOUT
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": f"{owner}-{pod_hash}",
            "labels": {"app": "fraud", "rollouts-pod-template-hash": pod_hash},
            "ownerReferences": [
                {"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "name": owner}
            ],
        },
        "spec": {"replicas": 1, "template": _template(profile)},
    }


SETS = [_replica_set(STABLE, "healthy"), _replica_set(CANARY, "errors")]


# --- StatefulSets ----------------------------------------------------------------------------


def test_a_stateful_set_is_read_like_a_deployment() -> None:
    assert extract_stateful_set(_stateful_set("latency")) == WorkloadInfo(
        NS, "fraud", {"SIM_PROFILE": "latency"}, 3, STATEFUL_SET
    )
    assert extract_stateful_set(_stateful_set(replicas=None)) == WorkloadInfo(
        NS, "fraud", {"SIM_PROFILE": "healthy"}, 1, STATEFUL_SET
    )
    unsimulated = extract_stateful_set({**_stateful_set(), "spec": {"template": _template(None)}})
    assert unsimulated is not None
    assert unsimulated.env is None
    assert extract_stateful_set({"spec": {}}) is None


# --- a Rollout's traffic split ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, None),  # just created: nothing but the live template exists
        (HEALTHY, None),
        (PAUSED_AT_HALF, (STABLE, 0.5)),
        ({**PAUSED_AT_HALF, "updatedReplicas": 0}, (STABLE, 1.0)),  # canary not scaled up yet
        (ABORTED, (STABLE, 1.0)),
        ({**ABORTED, "updatedReplicas": 2}, (STABLE, 1.0)),  # abort wins over the replicas
        (PROMOTED, None),
        (_routed(20, 80), (STABLE, 0.8)),
        (_routed(100, 0), None),
    ],
    ids=[
        "new",
        "healthy",
        "paused-at-50",
        "canary-starting",
        "aborted",
        "aborted-scaled",
        "promoted",
        "traffic-routed-20",
        "traffic-routed-100",
    ],
)
def test_the_split_follows_the_state_of_the_update(
    status: dict[str, Any] | None, expected: tuple[str, float] | None
) -> None:
    assert rollout_split(_rollout(status)) == expected


def test_a_template_change_the_controller_has_not_seen_keeps_traffic_on_stable() -> None:
    behind = _rollout(HEALTHY, generation=3)
    behind["status"]["observedGeneration"] = "2"
    assert rollout_split(behind) == (STABLE, 1.0)


def test_a_blue_green_rollout_serves_what_the_active_service_selects() -> None:
    blue_green = {"blueGreen": {"activeService": "fraud", "previewService": "fraud-preview"}}
    preview = {**PAUSED_AT_HALF, "blueGreen": {"activeSelector": STABLE, "previewSelector": CANARY}}
    assert rollout_split(_rollout(preview, strategy=blue_green)) == (STABLE, 1.0)
    switched = {**preview, "blueGreen": {"activeSelector": CANARY}}
    assert rollout_split(_rollout(switched, strategy=blue_green)) is None


_statuses = st.fixed_dictionaries(
    {},
    optional={
        "stableRS": st.sampled_from([STABLE, CANARY, ""]),
        "currentPodHash": st.sampled_from([STABLE, CANARY]),
        "abort": st.booleans(),
        "updatedReplicas": st.integers(-1, 12),
        "observedGeneration": st.sampled_from(["1", "2"]),
        "canary": st.fixed_dictionaries(
            {
                "weights": st.fixed_dictionaries(
                    {
                        "canary": st.fixed_dictionaries({"weight": st.integers(0, 100)}),
                        "stable": st.fixed_dictionaries({"weight": st.integers(0, 100)}),
                    }
                )
            }
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(status=_statuses, replicas=st.one_of(st.none(), st.integers(0, 10)))
def test_any_split_names_the_stable_hash_and_a_share_in_range(
    status: dict[str, Any], replicas: int | None
) -> None:
    obj = _rollout(None)
    obj["status"] = status
    obj["spec"]["replicas"] = replicas
    split = rollout_split(obj)
    if not status.get("stableRS"):
        assert split is None
        return
    in_generation = status.get("observedGeneration", "2") == "2"
    if status.get("abort") or not in_generation:
        assert split == (status["stableRS"], 1.0)
    elif status.get("currentPodHash") == status["stableRS"]:
        assert split is None
    if split is not None:
        assert split[0] == status["stableRS"]
        assert 0.0 < split[1] <= 1.0


@given(updated=st.lists(st.integers(0, 4), min_size=2, max_size=6))
def test_the_stable_share_falls_as_canary_replicas_come_up(updated: list[int]) -> None:
    shares = []
    for count in sorted(updated):
        split = rollout_split(_rollout({**PAUSED_AT_HALF, "updatedReplicas": count}))
        shares.append(0.0 if split is None else split[1])
    assert shares == sorted(shares, reverse=True)


# --- reading a Rollout with its ReplicaSets --------------------------------------------------


def test_a_paused_canary_serves_both_templates_by_half() -> None:
    info = extract_rollout(_rollout(PAUSED_AT_HALF), SETS)
    assert info == WorkloadInfo(
        NS, "fraud", {"SIM_PROFILE": "errors"}, 2, ROLLOUT, {"SIM_PROFILE": "healthy"}, 0.5
    )
    assert info.shares() == (({"SIM_PROFILE": "healthy"}, 0.5), ({"SIM_PROFILE": "errors"}, 0.5))


@pytest.mark.parametrize(
    ("status", "shares"),
    [
        (HEALTHY, [("errors", 1.0)]),
        (PAUSED_AT_HALF, [("healthy", 0.5), ("errors", 0.5)]),
        (ABORTED, [("healthy", 1.0)]),
        (PROMOTED, [("errors", 1.0)]),
    ],
)
def test_each_state_serves_its_templates(
    status: dict[str, Any], shares: list[tuple[str, float]]
) -> None:
    info = extract_rollout(_rollout(status), SETS)
    assert info is not None
    assert [(env["SIM_PROFILE"], share) for env, share in info.shares()] == shares


def test_only_the_rollouts_own_stable_replica_set_counts() -> None:
    strangers = [
        _replica_set(STABLE, "latency", owner="other"),
        _replica_set(STABLE, "latency", kind="Deployment"),
        {
            **_replica_set(STABLE, "latency"),
            "metadata": {**_replica_set(STABLE, "x")["metadata"], "namespace": "elsewhere"},
        },
        _replica_set(CANARY, "latency"),
    ]
    alone = extract_rollout(_rollout(PAUSED_AT_HALF), strangers)
    assert alone == extract_rollout(_rollout(PAUSED_AT_HALF))
    assert alone is not None
    assert alone.shares() == (({"SIM_PROFILE": "errors"}, 1.0),)  # stable unknown: live only
    found = extract_rollout(_rollout(PAUSED_AT_HALF), [*strangers, SETS[0]])
    assert found is not None
    assert found.stable_env == {"SIM_PROFILE": "healthy"}


def test_a_stable_template_without_a_profile_or_like_the_live_one_is_no_split() -> None:
    unsimulated = extract_rollout(_rollout(PAUSED_AT_HALF), [_replica_set(STABLE, None)])
    same = extract_rollout(_rollout(PAUSED_AT_HALF), [_replica_set(STABLE, "errors")])
    for info in (unsimulated, same):
        assert info is not None
        assert info.stable_env is None
        assert len(info.shares()) == 1


def test_a_rollout_with_a_workload_ref_is_not_simulated() -> None:
    obj = _rollout(HEALTHY)
    del obj["spec"]["template"]
    obj["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud"}
    info = extract_rollout(obj, SETS)
    assert info is not None
    assert info.env is None
    assert info.shares() == ()


@pytest.mark.parametrize("share", [-0.5, 0.0, 1.0, 1.5])
def test_shares_outside_the_open_interval_serve_one_template(share: float) -> None:
    info = WorkloadInfo(NS, "f", {"SIM_PROFILE": "errors"}, 1, ROLLOUT, {"SIM_PROFILE": "x"}, share)
    assert info.shares() == (
        (({"SIM_PROFILE": "x"}, 1.0),) if share >= 1 else (({"SIM_PROFILE": "errors"}, 1.0),)
    )


# --- kinds in the fleet ----------------------------------------------------------------------


def _five_xx(sim: Simulator, kind: str, ticks: int) -> float:
    dep = sim.get(NS, "fraud", kind)
    assert dep is not None
    before = dep.codes.copy()
    sim.tick(ticks)
    served = dep.codes - before
    return float(served[2:].sum() / served.sum())


def test_a_rollout_mid_update_serves_both_profiles_and_follows_the_update() -> None:
    sim = Simulator(seed=4)
    for status, low, high in [
        (HEALTHY, 0.10, 0.14),  # the live template: errors (12%)
        (PAUSED_AT_HALF, 0.05, 0.075),  # half healthy (0.2%), half errors
        (ABORTED, 0.0, 0.006),  # all back to stable
        (PROMOTED, 0.10, 0.14),
    ]:
        info = extract_rollout(_rollout(status), SETS)
        assert info is not None
        sim.apply(info)
        assert low < _five_xx(sim, ROLLOUT, 3000) < high, status["phase"]


def test_a_rollout_mid_update_says_so_in_its_logs_and_info_series(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = Simulator(seed=4)
    with caplog.at_level(logging.INFO, logger="devenv.workload.server"):
        for status in (HEALTHY, PAUSED_AT_HALF, PAUSED_AT_HALF, ABORTED):
            info = extract_rollout(_rollout(status), SETS)
            assert info is not None
            sim.apply(info)
    assert [r.getMessage() for r in caplog.records] == [
        "Rollout ml/fraud added, serves profile errors (replicas=2)",
        "Rollout ml/fraud now serves profiles healthy 50% + errors 50% (replicas=2)",
        "Rollout ml/fraud now serves profile healthy (replicas=2)",
    ]
    info = extract_rollout(_rollout(PAUSED_AT_HALF), SETS)
    assert info is not None
    sim.apply(info)
    profiles = re.findall(r'sim_profile_info\{.*profile="([a-z-]+)"\} 1', sim.render())
    assert profiles == ["healthy", "errors"]
    assert sim.state()[NS]["Rollout/fraud"]["profiles"] == [["healthy", 0.5], ["errors", 0.5]]
