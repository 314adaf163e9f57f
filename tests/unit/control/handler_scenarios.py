"""What the kopf handlers do outside an evaluation cycle, run through the plain functions
they call, against the in-memory API server: the daemon of a decision the operator did not
make (``advance``), the review export (``record_review``), the statuses the policy daemon
writes (``load``, ``status_for``) and the ModelDeployments it and ``policy_missing`` mark
(``mark_not_ready``); and one cycle (``run_cycle``) over ModelDeployments it cannot evaluate.
Scenarios of ``test_reasons.py`` and ``test_status_reasons.py``, each run once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from fake_cluster import NAME, NAMESPACE, POLICY, FakeCluster, build_cluster
from operator_harness import MemoryAuditLog, OperatorRun, policy_context
from reason_scenarios import (
    AUTO_ROLLBACK,
    SIGNAL,
    STEP,
    T0,
    iso,
    rollback_that_recovers,
    run_dry_run,
)

from rollguard.api import API_VERSION
from rollguard.control import reasons
from rollguard.control.cycle import CycleReport, run_cycle
from rollguard.control.lifecycle import Lifecycle, advance, record_review
from rollguard.control.policy_context import PolicyContext, PolicyInvalid, load, status_for
from rollguard.control.telemetry import Recorder
from rollguard.control.writes import mark_not_ready
from rollguard.kube.client import Cluster
from rollguard.signals.prometheus import Series, Source, SourceUnavailable


@dataclass(frozen=True)
class World:
    """The fake API server holding the Deployment and ModelDeployment ``ml/model``, with the
    recorder and lifecycle the handlers would use on it."""

    cluster: FakeCluster
    lifecycle: Lifecycle
    audit_log: MemoryAuditLog

    @property
    def recorder(self) -> Recorder:
        return self.lifecycle.recorder


def world() -> World:
    """The fake API server with the Deployment and ModelDeployment ml/model (revision 2)."""
    fake = build_cluster(now=T0, revisions=2, rollout_in_progress=False)
    audit = MemoryAuditLog()
    cluster = cast(Cluster, fake)
    life = Lifecycle(cluster=cluster, recorder=Recorder(cluster=cluster, audit=audit))
    return World(fake, life, audit)


@cache
def forged_decision() -> World:
    """A RollbackDecision someone created without the operator's audit link (a cluster
    without the admission policy), advanced as its daemon would, twice. Its evidence is that
    of an auto-approved rollback of ml/model from revision 2 to 1: acted on, it would patch."""
    w = world()
    body = {
        "apiVersion": API_VERSION,
        "kind": "RollbackDecision",
        "metadata": {"name": "forged", "namespace": NAMESPACE},
        "spec": rollback_that_recovers().stored_decisions[0]["spec"],
    }
    forged = w.cluster.add_object("RollbackDecision", body)
    advance(w.lifecycle, forged, now=T0)
    advance(w.lifecycle, forged, now=T0 + STEP)
    return w


@cache
def reviewed_decision() -> tuple[OperatorRun, list[bool]]:
    """A final decision reviewed by bob; the review handler runs twice (two watch events).
    Returns the run and whether each call recorded anything."""
    run = run_dry_run()
    name = run.stored_decisions[0]["metadata"]["name"]
    review = {
        "verdict": "Achieved", "regression": "Real", "by": "bob", "notes": "checked",
        "reviewedAt": iso(T0 + 600),
    }  # fmt: skip
    run.cluster.patch(
        "RollbackDecision", namespace=NAMESPACE, name=name, body={"spec": {"review": review}}
    )
    calls = []
    for _ in range(2):
        obj = run.cluster.get("RollbackDecision", namespace=NAMESPACE, name=name)
        calls.append(record_review(run.lifecycle, obj) is not None)
    return run, calls


class _Unreachable:
    """Prometheus, refusing every query."""

    def __init__(self) -> None:
        self.asked = 0

    def query_range(self, *, query: str, start: float, end: float, step: float) -> list[Series]:
        self.asked += 1
        raise SourceUnavailable("connection refused")


def _add(
    w: World, kind: str, name: str, spec: dict[str, Any], namespace: str = NAMESPACE
) -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return w.cluster.add_object(kind, body)


def _model_deployment(
    w: World, name: str, spec: dict[str, Any], namespace: str = NAMESPACE
) -> dict[str, Any]:
    return _add(w, "ModelDeployment", name, spec, namespace)


def _cycle(
    w: World, context: PolicyContext, bound: list[dict[str, Any]], source: Source
) -> CycleReport:
    return run_cycle(
        cluster=w.lifecycle.cluster, source=source, recorder=w.recorder, policy=context,
        bound=bound, decisions={}, scrape_interval=STEP, operator_version="test", now=T0,
    )  # fmt: skip


@cache
def _target(kind: str, name: str) -> dict[str, str]:
    version = "argoproj.io/v1alpha1" if kind == "Rollout" else "apps/v1"
    return {"apiVersion": version, "kind": kind, "name": name}


def unusable_model_deployments() -> World:
    """One cycle of the policy ml/policy over six ModelDeployments it cannot evaluate: one
    in another namespace (the policy is not shared), one without a deploymentRef, one whose
    Deployment does not exist, one whose StatefulSet does not exist, one guarding a Rollout
    that takes its template from a Deployment (``workloadRef``), and one whose StatefulSet the
    operator may not read."""
    w = world()
    ref = {"policyRef": {"name": POLICY, "namespace": NAMESPACE}}
    bound = [
        _model_deployment(w, "elsewhere", {**ref, "deploymentRef": {"name": NAME}}, "other"),
        _model_deployment(w, "broken", ref),
        _model_deployment(w, "orphan", {**ref, "deploymentRef": {"name": "missing"}}),
        _model_deployment(w, "stateless", {**ref, "targetRef": _target("StatefulSet", "gone")}),
        _model_deployment(w, "referring", {**ref, "targetRef": _target("Rollout", "by-ref")}),
        _model_deployment(w, "locked-out", {**ref, "targetRef": _target("StatefulSet", "locked")}),
    ]
    w.cluster.forbidden.add(("StatefulSet", NAMESPACE, "locked"))
    w.cluster.add_object(
        "Rollout",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "by-ref", "namespace": NAMESPACE},
            "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}},
        },
    )
    source = _Unreachable()
    report = _cycle(w, policy_context(AUTO_ROLLBACK), bound, source)
    assert (report.evaluated, source.asked) == (0, 0)
    return w


def _policy_object(w: World, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _add(w, "RollbackPolicy", name, spec)


def _write_policy_status(
    w: World, obj: dict[str, Any], context: PolicyContext | None, *,
    error: str | None = None, metrics_error: str | None = None,
) -> None:  # fmt: skip
    """What the policy daemon writes after loading a policy and running its cycle."""
    status = status_for(
        obj, context=context, error=error, bound=1, metrics_error=metrics_error,
        now=datetime.fromtimestamp(T0, tz=UTC),
    )  # fmt: skip
    meta = obj["metadata"]
    w.cluster.replace_status(
        "RollbackPolicy", namespace=meta["namespace"], name=meta["name"], status=status.wire()
    )


@cache
def policy_statuses() -> World:
    """The status of four policies as the policy daemon writes it: a usable one, one whose
    query cannot be batched, one whose cycle finds Prometheus unreachable, one that does not
    load (an invalid query); and the ModelDeployments of a missing and of the invalid policy,
    marked as the handlers mark them."""
    w = world()
    ready = _policy_object(w, "ready", AUTO_ROLLBACK)
    _write_policy_status(w, ready, load(ready))
    topk = {
        **SIGNAL,
        "query": 'topk(1, sig_error_rate{namespace="$namespace", deployment="$deployment"})',
    }
    per_deployment = _policy_object(w, "per-deployment", {**AUTO_ROLLBACK, "signals": [topk]})
    _write_policy_status(w, per_deployment, load(per_deployment))
    unreachable = _policy_object(w, POLICY, AUTO_ROLLBACK)
    context = load(unreachable)
    model = w.cluster.get("ModelDeployment", namespace=NAMESPACE, name=NAME)
    report = _cycle(w, context, [model], _Unreachable())
    _write_policy_status(w, unreachable, context, metrics_error=report.metrics_error)
    invalid = _policy_object(
        w, "invalid", {**AUTO_ROLLBACK, "signals": [{**SIGNAL, "query": "sum("}]}
    )
    try:
        load(invalid)
    except PolicyInvalid as err:
        error = str(err)
    else:
        raise AssertionError("a policy with the query sum( loaded")
    _write_policy_status(w, invalid, None, error=error)
    # handlers/policies.py: the policy daemon marks an invalid policy's ModelDeployments, and
    # policy_missing those whose policy does not exist.
    now = datetime.fromtimestamp(T0, tz=UTC)
    ref = {"deploymentRef": {"name": NAME}}
    judged = _model_deployment(w, "judged", {**ref, "policyRef": {"name": "invalid"}})
    message = f"RollbackPolicy {NAMESPACE}/invalid is invalid: {error}"
    mark_not_ready(
        w.lifecycle.cluster, judged, reason=reasons.POLICY_INVALID, message=message, now=now
    )
    lost = _model_deployment(w, "lost", {**ref, "policyRef": {"name": "gone"}})
    message = f"RollbackPolicy {NAMESPACE}/gone does not exist"
    mark_not_ready(
        w.lifecycle.cluster, lost, reason=reasons.POLICY_NOT_FOUND, message=message, now=now
    )
    return w
