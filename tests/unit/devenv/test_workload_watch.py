"""Unit tests for the workload simulator's watches, driven by fake list functions in place of
the API server: each kind's events, re-listing after a 410, an Argo Rollouts CRD that is not
installed (looked for again, said once), and the stable ReplicaSet read for a Rollout."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from devenv.workload.fleet import Simulator
from devenv.workload.kinds import (
    DEPLOYMENT,
    ROLLOUT,
    STATEFUL_SET,
    WorkloadInfo,
    extract_deployment,
    extract_stateful_set,
)
from devenv.workload.watch import Source, Watcher, handle_event, rollout_extractor

NS = "ml"


def _workload(name: str, profile: str = "healthy", **status: Any) -> dict[str, Any]:
    container = {"name": "model", "env": [{"name": "SIM_PROFILE", "value": profile}]}
    return {
        "metadata": {"namespace": NS, "name": name, "resourceVersion": "5", "generation": 1},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [container]}}},
        "status": status,
    }


class FakeList:
    """A list function: each call without ``watch`` takes the next of ``lists`` (a listing,
    or an exception to raise); a watch fails with 410 Gone. Sets ``stop`` after the last."""

    def __init__(self, lists: list[Any], stop: threading.Event) -> None:
        self.lists = lists
        self.stop = stop
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if kwargs.get("watch"):
            raise ApiException(status=410, reason="Gone")
        listing = self.lists.pop(0)
        if not self.lists:
            self.stop.set()
        if isinstance(listing, Exception):
            raise listing
        return listing

    @property
    def lists_made(self) -> int:
        return sum(1 for c in self.calls if not c.get("watch"))


def _listing(*items: dict[str, Any], version: str = "10") -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "items": list(items)}


def _watcher(
    kind: str,
    lists: list[Any],
    extract: Callable[[Any], Any],
    sim: Simulator,
    *,
    optional: bool = False,
) -> tuple[Watcher, FakeList]:
    stop = threading.Event()
    fake = FakeList(lists, stop)
    source = Source(kind, fake, (), extract, lambda listing: listing, optional=optional)
    return Watcher(source, sim, stop, absent_retry_s=0.01), fake


def test_stateful_set_events_drive_only_stateful_sets() -> None:
    sim = Simulator(seed=1)
    sim.apply(WorkloadInfo(NS, "fraud", {"SIM_PROFILE": "healthy"}, 2))
    obj = _workload("fraud", "errors")
    added = {"type": "ADDED", "raw_object": obj}
    assert handle_event(sim, added, "1", extract=extract_stateful_set) == "5"
    stateful = sim.get(NS, "fraud", STATEFUL_SET)
    assert stateful is not None
    assert stateful.profile.name == "errors"
    handle_event(sim, {"type": "DELETED", "raw_object": obj}, "5", extract=extract_stateful_set)
    assert sim.get(NS, "fraud", STATEFUL_SET) is None
    assert sim.get(NS, "fraud", DEPLOYMENT) is not None


def test_a_watch_that_expires_relists_at_once(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(seed=1)
    watcher, fake = _watcher(
        STATEFUL_SET,
        [_listing(_workload("a"), _workload("b")), _listing(_workload("b"), version="20")],
        extract_stateful_set,
        sim,
    )
    with caplog.at_level(logging.INFO, logger="devenv.workload.server"):
        watcher.run()
    assert fake.lists_made == 2
    assert fake.calls[1]["resource_version"] == "10"  # watched from the first list
    assert sorted(sim.state()[NS]) == ["StatefulSet/b"]
    assert "Watch of StatefulSets expired (410 Gone); re-listing them" in caplog.messages


def test_a_missing_rollouts_crd_is_looked_for_again_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = Simulator(seed=1)
    rollout = _workload("fraud")
    sim.apply(WorkloadInfo(NS, "fraud", {"SIM_PROFILE": "healthy"}, 2))
    missing = ApiException(status=404, reason="Not Found")
    watcher, fake = _watcher(
        ROLLOUT,
        [_listing(rollout), missing, missing, missing, _listing(rollout)],
        rollout_extractor(None),
        sim,
        optional=True,
    )
    with caplog.at_level(logging.INFO, logger="devenv.workload.server"):
        watcher.run()
    assert fake.lists_made == 5
    assert sim.get(NS, "fraud", ROLLOUT) is not None
    assert sim.get(NS, "fraud", DEPLOYMENT) is not None  # other kinds never touched
    absent = [m for m in caplog.messages if "serves no Rollouts" in m]
    assert absent == [
        "The cluster serves no Rollouts (is its CRD installed?); looking again every 0s"
    ]
    assert caplog.messages.count("The cluster serves Rollouts now; following them") == 1


def test_a_rollouts_crd_that_goes_away_takes_its_rollouts_with_it() -> None:
    sim = Simulator(seed=1)
    missing = ApiException(status=404, reason="Not Found")
    watcher, _ = _watcher(
        ROLLOUT,
        [_listing(_workload("fraud")), missing],
        rollout_extractor(None),
        sim,
        optional=True,
    )
    watcher.run()
    assert sim.state() == {}


def test_a_required_kind_that_is_not_served_is_an_error() -> None:
    watcher, _ = _watcher(
        DEPLOYMENT, [ApiException(status=404, reason="Not Found")], extract_deployment, Simulator(1)
    )
    with pytest.raises(ApiException):
        watcher.relist()


class FakeApps:
    """AppsV1Api's ReplicaSet list, over ``sets``."""

    def __init__(self, sets: list[dict[str, Any]]) -> None:
        self.sets = sets
        self.selectors: list[str] = []
        self.api_client = self

    def sanitize_for_serialization(self, obj: Any) -> Any:
        return obj

    def list_namespaced_replica_set(self, namespace: str, **kwargs: Any) -> dict[str, Any]:
        self.selectors.append(f"{namespace}:{kwargs['label_selector']}")
        return {"items": self.sets}


def test_the_stable_replica_set_is_read_only_mid_update() -> None:
    stable = _workload("fraud-s1", "healthy")
    stable["metadata"]["labels"] = {"rollouts-pod-template-hash": "s1"}
    stable["metadata"]["ownerReferences"] = [{"kind": "Rollout", "name": "fraud"}]
    apps = FakeApps([stable])
    extract = rollout_extractor(apps)
    healthy = _workload("fraud", "errors", stableRS="s1", currentPodHash="s1")
    info = extract(healthy)
    assert info is not None
    assert apps.selectors == []
    assert info.shares() == (({"SIM_PROFILE": "errors"}, 1.0),)

    paused = _workload("fraud", "errors", stableRS="s1", currentPodHash="c2", updatedReplicas=1)
    info = extract(paused)
    assert info is not None
    assert apps.selectors == ["ml:rollouts-pod-template-hash=s1"]
    assert info.shares() == (({"SIM_PROFILE": "healthy"}, 0.5), ({"SIM_PROFILE": "errors"}, 0.5))
