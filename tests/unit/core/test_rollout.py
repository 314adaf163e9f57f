"""A Deployment's rollout state, read from its status: in progress, complete, or neither."""

from __future__ import annotations

from typing import Any

from rollguard.core.rollout import rollout_complete, rollout_in_progress


def _deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 3,
    updated: int = 3,
    total: int = 3,
    available: int = 3,
    condition: str = "True",
) -> dict[str, Any]:
    return {
        "metadata": {"name": "fraud", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": [{"type": "Available", "status": condition}],
        },
    }


def test_a_rolled_out_deployment_is_complete_and_not_in_progress() -> None:
    done = _deployment()
    assert rollout_complete(done) and not rollout_in_progress(done)


def test_an_unobserved_spec_or_old_replicas_mean_a_rollout_in_progress() -> None:
    for rolling in (
        _deployment(observed=1),
        _deployment(updated=1),
        _deployment(total=4),
    ):
        assert rollout_in_progress(rolling) and not rollout_complete(rolling)


def test_updated_replicas_not_yet_available_are_neither_in_progress_nor_complete() -> None:
    for waiting in (_deployment(available=2), _deployment(condition="False")):
        assert not rollout_in_progress(waiting) and not rollout_complete(waiting)


def test_a_deployment_without_status_is_in_progress_until_its_controller_reports() -> None:
    bare = {"metadata": {"name": "fraud", "generation": 1}, "spec": {}}
    assert rollout_in_progress(bare) and not rollout_complete(bare)
