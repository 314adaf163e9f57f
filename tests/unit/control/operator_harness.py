"""The operator's real control code over a recorded series, at simulated times, without a
cluster or Prometheus: the operator side of the differential test against
``rollguard simulate --series`` (``rollguard.simulation.recorded.run_recorded``).

``run_operator`` calls ``rollguard.control.cycle.run_cycle`` and
``rollguard.control.lifecycle.advance`` as the handlers do (``handlers/policies.py``
``evaluate_policy`` and ``_cycle``, ``handlers/decisions.py`` ``drive_decision``), at each
evaluation time of ``run_recorded``'s grid, over:

* ``fake_cluster.FakeCluster``: the API server, holding the Deployment ``ml/model`` with its
  ReplicaSet history, the ModelDeployment ``ml/model`` bound to the policy, and the
  RollbackDecisions the operator creates;
* ``SeriesSource``: Prometheus, answering each signal's query (its per-deployment and its
  batched rendering) with the recorded samples whose timestamps lie in the requested
  [start, end], missing samples left out. Recorded data does not react to a rollback: it is
  what happened without the policy, as in the simulator;
* ``MemoryAuditLog``: the audit log, in memory.

It returns the decision timeline, and for debugging the stored objects, Events, audit lines
and queries; and the fake API server, lifecycle and audit log themselves, for a test that goes
on from where the run ended. ``act`` lets a test play the people and other controllers around
the operator (approve or reject, edit the Deployment, clear an escalation) or arm one of the
fake API server's faults, at each evaluation time. Tests use ``run_operator``, ``OperatorRun``
and ``OperatorDecision``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from fake_cluster import NAME, NAMESPACE, POLICY, DeploymentPatch, FakeCluster, build_cluster

from rollguard.api import API_VERSION
from rollguard.api.labels import LABEL_MODEL_DEPLOYMENT
from rollguard.api.policy import EffectivePolicy
from rollguard.control.cycle import run_cycle
from rollguard.control.lifecycle import Lifecycle, advance
from rollguard.control.notifications import Notifier
from rollguard.control.policy_context import PolicyContext, load
from rollguard.control.records import DecisionSummary
from rollguard.control.steps import Memory
from rollguard.control.telemetry import AuditLog, Recorder
from rollguard.core.revisions import REVISION_ANNOTATION
from rollguard.files.series import Series as RecordedSeries
from rollguard.kube.client import Cluster
from rollguard.signals.prometheus import Series
from rollguard.signals.promql import Target, plan, render
from rollguard.simulation.recorded import evaluation_times

APPROVER = "alice"
NotifierFactory = Callable[[Cluster, Memory], Notifier]
OPERATOR_VERSION = "harness"


# -- Prometheus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One range query the operator sent."""

    text: str
    start: float
    end: float
    step: float


class SeriesSource:
    """A ``Source`` answering each signal's query with the recorded samples of that signal
    whose timestamps lie in [start, end] (both ends, as a range query's), at the series' own
    step whatever step is asked for, missing ones left out (no samples: no series, as
    Prometheus answers). Queries are recognised by their exact text, rendered for the
    Deployment's current revision; any other text is a harness bug and raises LookupError
    (``measure`` would turn a MonitoringError into a quiet Inconclusive)."""

    def __init__(
        self,
        *,
        series: RecordedSeries,
        policy: EffectivePolicy,
        cluster: FakeCluster,
        namespace: str = NAMESPACE,
        deployment: str = NAME,
    ) -> None:
        self.series, self.policy, self.cluster = series, policy, cluster
        self.namespace, self.deployment = namespace, deployment
        self.queries: list[Query] = []

    def _signal_of(self, text: str) -> int:
        live = self.cluster.deployment(namespace=self.namespace, name=self.deployment)
        revision = live["metadata"]["annotations"][REVISION_ANNOTATION]
        for signal in self.policy.signals:
            texts = {
                render(
                    signal.query,
                    namespace=self.namespace,
                    deployment=self.deployment,
                    revision=revision,
                )
            }
            batch = plan(signal.query)
            if batch.batched:
                texts.add(batch.render([Target(self.namespace, self.deployment, revision)]))
            if text in texts:
                return self.series.signals.index(signal.name)
        raise LookupError(f"the recorded series answers no query {text!r}")

    def query_range(self, *, query: str, start: float, end: float, step: float) -> list[Series]:
        if not (end >= start and step > 0):
            raise ValueError(f"bad range: start={start} end={end} step={step}")
        row = self._signal_of(query)
        self.queries.append(Query(query, start, end, step))
        times = self.series.times
        keep = self.series.mask[row] & (times >= start) & (times <= end)
        if not keep.any():
            return []
        return [
            Series(
                labels={"namespace": self.namespace, "deployment": self.deployment},
                timestamps=np.ascontiguousarray(times[keep], dtype=np.float64),
                values=np.ascontiguousarray(self.series.values[row, keep], dtype=np.float64),
            )
        ]


# -- audit ----------------------------------------------------------------------------------


class MemoryAuditLog(AuditLog):
    """Audit lines kept in memory, each serialised as ``AuditLog`` serialises it."""

    def __init__(self) -> None:  # no stream: nothing of AuditLog's own state is used
        self.records: list[dict[str, Any]] = []

    def write(self, record: Mapping[str, Any]) -> None:
        self.records.append(json.loads(json.dumps(dict(record), sort_keys=True, default=str)))


# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorDecision:
    """One RollbackDecision the operator made, and where it ended."""

    time: float  # the evaluation time (Unix seconds) of the cycle that created it
    trigger: int  # spec.trigger.index
    action: str  # spec.recommended.action (after the Pause/Rollback -> Hold fallback)
    requires_approval: bool
    executed: bool  # the lifecycle changed the Deployment (status.execution.patched)
    phase: str  # status.phase at the end of the run
    name: str = ""
    score: float | None = None  # spec.impact.score


@dataclass(frozen=True)
class OperatorRun:
    """The decision timeline of a run, and what the fake API server holds at its end."""

    decisions: list[OperatorDecision]  # by creation
    escalations: list[tuple[float, str]]  # (time, reason) each time it became Escalated
    evaluations: int  # ModelDeployment evaluations the cycles reported
    eval_times: list[float]
    metrics_errors: list[tuple[float, str]]  # cycles whose measuring failed
    stored_decisions: list[dict[str, Any]]  # the last copy seen of each decision, by creation
    model_deployment: dict[str, Any]
    deployment: dict[str, Any]
    deployment_patches: list[DeploymentPatch]
    events: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    queries: list[Query]
    cluster: FakeCluster  # the fake API server as the run left it
    lifecycle: Lifecycle  # posting to ``cluster`` and ``audit_log``
    audit_log: MemoryAuditLog  # ``audit`` and any line written after the run


# One signal scored (v - 0.01) / 0.1 from the series column error_rate: the hand-built cases
# of the decision-rule and reason tests.
ERROR_RATE: dict[str, Any] = {
    "name": "error_rate",
    "query": 'sig_error_rate{namespace="$namespace", deployment="$deployment"}',
    "objective": {"max": 0.01},
    "margin": {"absolute": 0.0},
    "critical": 0.11,
}


def recorded_eval_times(policy: EffectivePolicy, series: RecordedSeries) -> list[float]:
    """The evaluation times of ``run_recorded``: the operator's instants the series covers."""
    return [float(t) for t in evaluation_times(policy, series)]


def policy_context(
    policy_spec: Mapping[str, Any], *, name: str = POLICY, generation: int = 1
) -> PolicyContext:
    """The policy as the policy handler loads it (``rollguard.control.policy_context.load``)."""
    obj = {
        "apiVersion": API_VERSION,
        "kind": "RollbackPolicy",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "generation": generation,
            "uid": "policy-uid",
        },
        "spec": dict(policy_spec),
    }
    return load(obj)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return (obj["metadata"]["namespace"], obj["metadata"]["name"])


def _created_at(obj: Mapping[str, Any]) -> float:
    raw = str(obj["metadata"]["creationTimestamp"]).replace("Z", "+00:00")
    return datetime.fromisoformat(raw).timestamp()


def _decision(obj: Mapping[str, Any], time: float) -> OperatorDecision:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return OperatorDecision(
        time=time,
        trigger=int(spec["trigger"]["index"]),
        action=str(spec["recommended"]["action"]),
        requires_approval=bool(spec.get("requiresApproval")),
        executed=bool((status.get("execution") or {}).get("patched")),
        phase=str(status.get("phase") or ""),
        name=str(obj["metadata"]["name"]),
        score=(spec.get("impact") or {}).get("score"),
    )


class _Driver:
    """The handlers' calls at one simulated time after another, and what they left."""

    def __init__(
        self,
        context: PolicyContext,
        series: RecordedSeries,
        fake: FakeCluster,
        *,
        keep: int,
        notifier: NotifierFactory | None = None,
    ) -> None:
        self.context, self.series, self.fake = context, series, fake
        self.cluster = cast(Cluster, fake)  # duck-typed: the Cluster calls control code makes
        self.audit = MemoryAuditLog()
        self.recorder = Recorder(cluster=self.cluster, audit=self.audit)
        memory = Memory()
        self.life = Lifecycle(
            cluster=self.cluster, recorder=self.recorder, keep_decisions=keep,
            scrape_interval=series.step, memory=memory,
            notifier=notifier(self.cluster, memory) if notifier is not None else None,
        )  # fmt: skip
        self.source = SeriesSource(series=series, policy=context.effective, cluster=fake)
        self.made: dict[tuple[str, str], float] = {}  # decision -> time of its creation
        self.seen: dict[tuple[str, str], dict[str, Any]] = {}  # its last copy (GC deletes)
        self.escalations: list[tuple[float, str]] = []
        self.metrics_errors: list[tuple[float, str]] = []
        self.evaluations = 0
        self._escalated_at: str | None = None

    def edit_policy(self, policy_spec: Mapping[str, Any]) -> None:
        """A user edits the RollbackPolicy: the policy handler loads the next generation, which
        the following cycles use (decisions already made keep their own snapshot)."""
        self.context = policy_context(policy_spec, generation=self.context.generation + 1)
        self.source.policy = self.context.effective

    def decisions(self) -> list[dict[str, Any]]:
        items = self.fake.list_objects(
            "RollbackDecision",
            namespace=NAMESPACE,
            label_selector=f"{LABEL_MODEL_DEPLOYMENT}={NAME}",
        )
        for item in items:
            self.seen[_key(item)] = item
        return items

    def cycle(self, now: float) -> None:
        """The policy loop's cycle (``_cycle``): evaluate, then advance what it created."""
        bound = [self.fake.get("ModelDeployment", namespace=NAMESPACE, name=NAME)]
        index = {(NAMESPACE, NAME): [DecisionSummary.of(d) for d in self.decisions()]}
        report = run_cycle(
            cluster=self.cluster, source=self.source, recorder=self.recorder,
            policy=self.context, bound=bound, decisions=index,
            scrape_interval=self.series.step, operator_version=OPERATOR_VERSION, now=now,
        )  # fmt: skip
        self.evaluations += report.evaluated
        if report.metrics_error:
            self.metrics_errors.append((now, report.metrics_error))
        for created in report.created:
            self.made.setdefault(_key(created), now)
            advance(self.life, created, now=now)

    def approve_due(self, now: float, after: float) -> None:
        """Alice approves each decision that has waited for approval ``after`` seconds."""
        approval = {"decision": "Approve", "by": APPROVER, "reason": "test"}
        for item in self.decisions():
            pending = (item.get("status") or {}).get("phase") == "PendingApproval"
            if pending and not item["spec"].get("approval") and now - _created_at(item) >= after:
                self.fake.patch(
                    "RollbackDecision", namespace=NAMESPACE, name=item["metadata"]["name"],
                    body={"spec": {"approval": approval}},
                )  # fmt: skip

    def advance_all(self, now: float) -> None:
        """The decision daemons: every decision with lifecycle work left moves once."""
        for item in self.decisions():
            if DecisionSummary.of(item).unfinished:
                advance(self.life, item, now=now)
        self.decisions()

    def watch_escalation(self, now: float) -> None:
        obj = self.fake.get("ModelDeployment", namespace=NAMESPACE, name=NAME)
        status = obj.get("status") or {}
        escalated_at = status.get("escalatedAt")
        if escalated_at and escalated_at != self._escalated_at:
            self.escalations.append((now, str(status.get("escalationReason") or "")))
        self._escalated_at = escalated_at

    def result(self, times: list[float]) -> OperatorRun:
        ordered = sorted(self.seen.items(), key=lambda kv: (self.made.get(kv[0], math.inf), kv[0]))
        return OperatorRun(
            decisions=[_decision(obj, self.made.get(key, math.nan)) for key, obj in ordered],
            escalations=self.escalations,
            evaluations=self.evaluations,
            eval_times=times,
            metrics_errors=self.metrics_errors,
            stored_decisions=[obj for _, obj in ordered],
            model_deployment=self.fake.get("ModelDeployment", namespace=NAMESPACE, name=NAME),
            deployment=self.fake.deployment(namespace=NAMESPACE, name=NAME),
            deployment_patches=list(self.fake.deployment_patches),
            events=list(self.fake.events),
            audit=list(self.audit.records),
            queries=list(self.source.queries),
            cluster=self.fake,
            lifecycle=self.life,
            audit_log=self.audit,
        )


def run_operator(
    policy_spec: Mapping[str, Any],
    series: RecordedSeries,
    *,
    approve_after: float | None = None,
    rollout_in_progress: bool = False,
    revisions: int = 2,
    eval_times: Sequence[float] | None = None,
    keep_decisions: int = 20,
    policy_at: Callable[[float], Mapping[str, Any]] | None = None,
    created: float | None = None,
    act: Callable[[float, FakeCluster], None] | None = None,
    notifier: NotifierFactory | None = None,
) -> OperatorRun:
    """The operator's decisions on ``series`` under the RollbackPolicy spec ``policy_spec``
    (camelCase, as a user writes it), evaluated at ``eval_times`` (default: the grid of
    ``run_recorded``) with the series' step as the scrape interval.

    The Deployment starts at revision ``revisions`` (rolling out when
    ``rollout_in_progress``; its ReplicaSet created at ``created`` when given), every older
    revision approved in the ModelDeployment's spec. At
    each time t: ``run_cycle`` (reading the API, not watch caches) with the stored decisions
    as the handler's index holds them, ``advance`` on each decision it created; with
    ``approve_after``, alice approves each decision that has waited that many seconds for
    approval; then ``advance`` on every decision with lifecycle work left (the decision
    daemons, which poll every few seconds, here once per evaluation). With ``policy_at``,
    the policy spec in force at t is ``policy_at(t)`` (``policy_spec`` before the first
    evaluation): a spec that differs from the one in force is an edit, loaded as the next
    generation before that cycle. With ``act``, ``act(t, cluster)`` runs at each t before the
    cycle: what people and other controllers do then (through the fake API server's own
    calls and knobs), seen by that cycle. With ``notifier``, the lifecycle raises messages
    through ``notifier(cluster, memory)`` (its workers are not started: a test delivers)."""
    context = policy_context(policy_spec)
    names = [s.name for s in context.effective.signals]
    if series.signals != names:
        raise ValueError(f"series signals {series.signals} are not the policy's {names}")
    times = (
        [float(t) for t in eval_times]
        if eval_times is not None
        else recorded_eval_times(context.effective, series)
    )
    fake = build_cluster(
        now=times[0] if times else series.start,
        revisions=revisions,
        rollout_in_progress=rollout_in_progress,
        created=created,
    )
    driver = _Driver(context, series, fake, keep=keep_decisions, notifier=notifier)
    in_force = dict(policy_spec)
    for now in times:
        fake.now = now
        edited = dict(policy_at(now)) if policy_at is not None else in_force
        if edited != in_force:
            in_force = edited
            driver.edit_policy(in_force)
        if act is not None:
            act(now, fake)
        driver.cycle(now)
        if approve_after is not None:
            driver.approve_due(now, approve_after)
        driver.advance_all(now)
        driver.watch_escalation(now)
    return driver.result(times)
