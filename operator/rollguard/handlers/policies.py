"""RollbackPolicy glue: one evaluation loop per policy, every ``evaluation.interval``, over
the ModelDeployments bound to it. They, their Deployments and ReplicaSets come from watch
caches (Kopf indexes): in the steady state a cycle reads nothing from the API server."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import kopf

from rollguard.api.base import duration_seconds
from rollguard.control import reasons
from rollguard.control.cycle import run_cycle
from rollguard.control.health import HEALTH, WATCHED, PolicyView
from rollguard.control.lifecycle import advance
from rollguard.control.policy_context import PolicyContext, PolicyInvalid, load, status_for
from rollguard.control.records import DecisionSummary
from rollguard.control.telemetry import ERRORS
from rollguard.control.writes import mark_not_ready
from rollguard.core import schedule
from rollguard.core.revisions import RevisionRecord
from rollguard.handlers.caches import IndexedReads
from rollguard.handlers.runtime import current, now
from rollguard.kube.client import ApiError
from rollguard.signals.prometheus import MonitoringError

log = logging.getLogger("rollguard")
INVALID_RETRY = 30.0


class Ghosts:
    """Index entries of objects the API server answered 404 for. Kopf keeps the entry of an
    object deleted while the operator was paused by peering (no watch event reports it, and
    the re-listing after the pause adds but never removes), so without this a deleted
    ModelDeployment would be evaluated, and a deleted open decision would block new ones,
    until a restart. An entry is a ghost only as the exact version that got the 404: an
    object of the same name created later is not."""

    def __init__(self) -> None:
        self._model_deployments: set[tuple[str, str, str]] = set()
        self._decisions: set[DecisionSummary] = set()

    @staticmethod
    def _version(obj: Mapping[str, Any]) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return (meta["namespace"], meta["name"], str(meta.get("resourceVersion", "")))

    def model_deployment_gone(self, obj: Mapping[str, Any]) -> None:
        self._model_deployments.add(self._version(obj))

    def decision_gone(self, summary: DecisionSummary) -> None:
        self._decisions.add(summary)

    def live_model_deployments(self, objs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [obj for obj in objs if self._version(obj) not in self._model_deployments]

    def live_decisions(self, summaries: Sequence[DecisionSummary]) -> list[DecisionSummary]:
        return [d for d in summaries if d not in self._decisions]


GHOSTS = Ghosts()


@kopf.index("modeldeployments")  # type: ignore[arg-type]
def model_deployments_by_policy(
    namespace: str, body: kopf.Body, spec: Mapping[str, Any], **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each ModelDeployment as last seen, under its policy's key. A cycle's status write is
    conditional on this copy's resourceVersion, so a stale copy costs a re-read, never a
    lost write."""
    snapshot = copy.deepcopy(dict(body))
    snapshot.get("metadata", {}).pop("managedFields", None)
    return {_policy_key(namespace, spec): snapshot}


@kopf.index("rollbackpolicies")  # type: ignore[arg-type]
def policies_by_key(namespace: str, name: str, **_: Any) -> dict[tuple[str, str], bool]:
    return {(namespace, name): True}


def _policy_key(namespace: str, spec: Mapping[str, Any]) -> tuple[str, str]:
    ref = spec.get("policyRef") or {}
    return (ref.get("namespace") or namespace, ref.get("name", ""))


def _mark(objs: Sequence[Mapping[str, Any]], reason: str, message: str, *, invalid: bool) -> None:
    for obj in objs:
        try:
            mark_not_ready(
                current().cluster,
                obj,
                reason=reason,
                message=message,
                now=datetime.now(tz=UTC),
                invalid=invalid,
            )
        except Exception as err:  # noqa: BLE001 - one object must not stop the others
            ERRORS.labels(kind="api").inc()
            log.warning("Could not mark ModelDeployment %s: %s", obj["metadata"]["name"], err)


def _policy_missing(
    body: kopf.Body,
    namespace: str,
    spec: Mapping[str, Any],
    policies_by_key: kopf.Index[tuple[str, str], bool],
    **_: Any,
) -> bool:
    deleting = bool(body.get("metadata", {}).get("deletionTimestamp"))
    return not deleting and _policy_key(namespace, spec) not in policies_by_key


@kopf.on.event("modeldeployments", when=_policy_missing)  # type: ignore[arg-type]
async def policy_missing(
    body: kopf.Body, namespace: str, spec: Mapping[str, Any], **_: Any
) -> None:
    """A ModelDeployment whose policy does not exist says so in its status (the policy's own
    loop evaluates every other one); decided from the in-memory index, no API read."""
    key = _policy_key(namespace, spec)
    message = f"RollbackPolicy {key[0]}/{key[1]} does not exist"
    await asyncio.to_thread(_mark, [dict(body)], reasons.POLICY_NOT_FOUND, message, invalid=False)


@kopf.index("rollbackdecisions")  # type: ignore[arg-type]
def decisions_by_model_deployment(
    body: kopf.Body, namespace: str, spec: Mapping[str, Any], **_: Any
) -> dict[tuple[str, str], DecisionSummary]:
    return {
        (namespace, (spec.get("modelDeploymentRef") or {}).get("name", "")): DecisionSummary.of(
            body
        )
    }


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return (obj["metadata"]["namespace"], obj["metadata"]["name"])


def _target(obj: Mapping[str, Any]) -> tuple[str, str]:
    spec = obj.get("spec") or {}
    ref = spec.get("targetRef") or {"kind": "Deployment", **(spec.get("deploymentRef") or {})}
    kind = "" if ref.get("kind") == "Deployment" else f"{ref.get('kind')}/"
    return (obj["metadata"]["namespace"], f"{kind}{ref.get('name', '')}")


def _cycle(
    policy: PolicyContext,
    bound: list[dict[str, Any]],
    decisions: Mapping[tuple[str, str], list[DecisionSummary]],
    reads: IndexedReads,
    at: float,
) -> str | None:
    runtime = current()
    report = run_cycle(
        cluster=runtime.cluster,
        source=runtime.source,
        recorder=runtime.recorder,
        policy=policy,
        bound=bound,
        decisions=decisions,
        scrape_interval=runtime.settings.scrape_interval,
        operator_version=runtime.settings.operator_version,
        now=at,
        reads=reads,
    )
    for obj in report.gone:
        GHOSTS.model_deployment_gone(obj)
    if report.refused is not None:
        HEALTH.decision_refused(report.refused)
    elif report.created:
        HEALTH.decision_created()
    # A new decision proceeds at once, without waiting for its own loop to notice it.
    for created in report.created:
        advance(runtime.lifecycle, created, now=now())
    # Every unfinished decision also advances from here: one whose own loop never started
    # (an operator that restarted paused by peering sees no further event for it) still
    # reaches its final phase. ``advance`` is idempotent and serialised per decision.
    started = {(c["metadata"]["namespace"], c["metadata"]["name"]) for c in report.created}
    for summary in (d for ds in decisions.values() for d in ds if d.unfinished):
        if (summary.namespace, summary.name) in started:
            continue
        ref = {"metadata": {"namespace": summary.namespace, "name": summary.name}}
        try:
            advance(runtime.lifecycle, ref, now=now())
        except ApiError as err:
            if err.status == 404:
                GHOSTS.decision_gone(summary)
            else:
                ERRORS.labels(kind="api").inc()
                log.warning(
                    "Could not advance RollbackDecision %s/%s: %s",
                    summary.namespace,
                    summary.name,
                    err.reason,
                )
    return report.metrics_error


def _write_status(
    body: Mapping[str, Any],
    context: PolicyContext | None,
    error: str | None,
    bound: int,
    metrics_error: str | None,
) -> None:
    status = status_for(
        body,
        context=context,
        error=error,
        bound=bound,
        metrics_error=metrics_error,
        now=datetime.now(tz=UTC),
    )
    wire = status.wire()
    if wire != (body.get("status") or {}):
        meta = body["metadata"]
        current().cluster.replace_status(
            "RollbackPolicy", namespace=meta["namespace"], name=meta["name"], status=wire
        )


@kopf.daemon("rollbackpolicies", cancellation_timeout=10)  # type: ignore[arg-type]
async def evaluate_policy(
    *,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    model_deployments_by_policy: kopf.Index[tuple[str, str], dict[str, Any]],
    decisions_by_model_deployment: kopf.Index[tuple[str, str], DecisionSummary],
    deployments_by_name: kopf.Index[tuple[str, str], dict[str, Any]],
    replica_sets_by_owner: kopf.Index[tuple[str, str], RevisionRecord],
    **_: Any,
) -> None:
    """Evaluate the policy's ModelDeployments at every instant of its evaluation interval
    (``rollguard.core.schedule``) until it is deleted."""
    reads = IndexedReads(current().cluster, deployments_by_name, replica_sets_by_owner)
    offset = current().settings.query_offset
    last: float | None = None
    own = (body["metadata"]["namespace"], body["metadata"]["name"])
    try:
        while not stopped:
            snapshot = dict(body)  # the live body may change while a cycle runs
            meta = snapshot["metadata"]
            key = (meta["namespace"], meta["name"])
            bound = sorted(
                GHOSTS.live_model_deployments(list(model_deployments_by_policy.get(key, []))),
                key=_key,
            )
            keys = [_key(obj) for obj in bound]
            targets = tuple(sorted({_target(obj) for obj in bound}))
            try:
                policy = load(snapshot)
            except PolicyInvalid as err:
                WATCHED[key] = PolicyView(valid=False, bound=tuple(keys), targets=targets)
                await asyncio.to_thread(_write_status, snapshot, None, str(err), len(keys), None)
                message = f"RollbackPolicy {key[0]}/{key[1]} is invalid: {err}"
                await asyncio.to_thread(
                    _mark, bound, reasons.POLICY_INVALID, message, invalid=False
                )
                await stopped.wait(INVALID_RETRY)
                continue
            WATCHED[key] = PolicyView(valid=True, bound=tuple(keys), targets=targets)
            interval = duration_seconds(policy.effective.evaluation.interval)
            at = schedule.next_instant(
                wall=time.time(), last=last, interval=interval, offset=offset
            )
            due = at + offset - time.time()
            if due > 0:
                # Sleep until the instant is due, then read the policy and its objects afresh.
                await stopped.wait(due)
                continue
            last = at
            decisions = {
                k: GHOSTS.live_decisions(list(decisions_by_model_deployment.get(k, [])))
                for k in keys
            }
            metrics_error: str | None = None
            try:
                metrics_error = await asyncio.to_thread(_cycle, policy, bound, decisions, reads, at)
            except MonitoringError as err:
                metrics_error = str(err)
            except Exception as err:
                ERRORS.labels(kind="cycle").inc()
                log.exception("Evaluation cycle of RollbackPolicy %s/%s failed: %s", *key, err)
            await asyncio.to_thread(_write_status, snapshot, policy, None, len(keys), metrics_error)
    finally:
        WATCHED.pop(own, None)  # the policy is deleted (or the operator stops)
