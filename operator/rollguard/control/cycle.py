"""One evaluation cycle of one policy over every ModelDeployment bound to it.

One PromQL query per signal for the whole batch (see ``signals.measure``), one call of the
decision core for the whole batch, then per ModelDeployment: its status, and a
RollbackDecision when a trigger fired. Synchronous; the handler runs it in a worker thread.

Measure, decide, write: ``members`` reads what is evaluated, ``plan`` decides (the decision
core's step, each member's decision, status and Events) and ``writes`` performs the writes.
This module runs them in order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rollguard.api.base import duration_seconds
from rollguard.api.modeldeployment import AuditHead
from rollguard.control import plan
from rollguard.control.members import Member, Reads, confirmed_member, read_member
from rollguard.control.policy_context import PolicyContext
from rollguard.control.records import DecisionSummary, confirmed_history
from rollguard.control.telemetry import Recorder
from rollguard.control.writes import GoneError, Writer
from rollguard.core.times import to_datetime
from rollguard.kube.client import ApiError, Cluster
from rollguard.kube.targets import LiveReads
from rollguard.signals.measure import Target, measure
from rollguard.signals.prometheus import Source


@dataclass
class CycleReport:
    evaluated: int = 0
    queries: int = 0
    created: list[dict[str, Any]] = field(default_factory=list)
    metrics_error: str | None = None
    unwritten: int = 0  # evaluations whose status write was skipped: nothing material changed
    gone: list[Mapping[str, Any]] = field(default_factory=list)  # bound, but deleted (404)
    refused: str | None = None  # why the API server refused to create a decision (403)


def run_cycle(
    *,
    cluster: Cluster,
    source: Source,
    recorder: Recorder,
    policy: PolicyContext,
    bound: Sequence[Mapping[str, Any]],
    decisions: Mapping[tuple[str, str], Sequence[DecisionSummary]],
    scrape_interval: float,
    operator_version: str,
    now: float,
    reads: Reads | None = None,
) -> CycleReport:
    """Evaluate every ModelDeployment in ``bound`` once at ``now`` (whole Unix seconds),
    reading workloads and their revisions from ``reads`` (default: the API)."""
    started = time.monotonic()
    report = CycleReport()
    out = Writer(cluster=cluster, recorder=recorder, owner=f"{policy.namespace}/{policy.name}")
    members: list[Member] = []
    now_dt = to_datetime(now)
    for obj in bound:
        member = read_member(cluster, reads or LiveReads(cluster), obj, policy)
        if isinstance(member, Member):
            members.append(member)
            continue
        try:
            out.not_ready(member, now=now_dt)
        except GoneError:
            report.gone.append(obj)
    out.bound(members)
    if not members:
        return report
    measured = measure(
        source=source,
        policy=policy.effective,
        plans=policy.plans,
        targets=[Target(m.namespace, m.spec.target.name, str(m.current)) for m in members],
        now=now,
        step=scrape_interval,
    )
    report.queries = measured.queries_issued
    failures = [run.error for run in measured.runs if run.error]
    report.metrics_error = failures[0] if failures else None
    escalations = [plan.escalation_now(m) for m in members]
    out.post(e.cleared for e in escalations if e.cleared is not None)
    batch = plan.judge_batch(
        policy,
        members,
        decisions,
        measured,
        escalations,
        operator_version=operator_version,
        now=now,
    )
    cycle = _Cycle(cluster, reads, decisions, out, report)
    for b in range(len(members)):
        cycle.evaluate(batch, b)
    report.gone += out.flush()
    out.counted(evaluated=report.evaluated, queries=report.queries, started=started)
    return report


@dataclass
class _Cycle:
    """One run of ``run_cycle``: where it reads and writes, the decisions it knows of, and
    what it reports."""

    cluster: Cluster
    reads: Reads | None
    decisions: Mapping[tuple[str, str], Sequence[DecisionSummary]]
    out: Writer
    report: CycleReport

    def evaluate(self, batch: plan.Batch, b: int) -> None:
        """Member ``b``: judge it, create the decision it makes (if any), plan and write the
        rest."""
        confirmed = self._confirmed(batch, b)
        if confirmed is None:
            self.report.gone.append(batch.members[b].obj)
            return
        judged = plan.judge(batch, b, *confirmed)
        self.out.score(judged.member, judged.evaluation.score)
        made: dict[str, Any] | plan.Refused | None = None
        if judged.decision is not None:
            made = self.out.create(
                judged.decision, member_obj=judged.member.obj, policy_key=batch.policy.key
            )
            if isinstance(made, plan.Refused):
                self.report.refused = made.message
            else:
                self.report.created.append(made)
        interval = duration_seconds(batch.policy.effective.evaluation.interval)
        planned = plan.plan_member(batch, b, judged, made, refresh=4 * interval)
        self.out.apply(planned)
        if not planned.write:
            self.report.unwritten += 1
        self.report.evaluated += 1

    def _confirmed(
        self, batch: plan.Batch, b: int
    ) -> tuple[Member, Sequence[DecisionSummary], AuditHead] | None:
        """Member ``b``, its decisions and its chain head to judge it with: as the cycle read
        them, or from the API server when a decision is about to be made; None when the
        ModelDeployment was deleted."""
        m = batch.members[b]
        known = self.decisions.get((m.namespace, m.name), ())
        if not batch.wants_decision(b, next((d for d in known if not d.final), None)):
            return m, known, m.status.audit
        # A decision is made on the API server's word, not on watch caches that may lag (for
        # a while after a peering pause they miss the other replica's decisions and the
        # Deployment's latest revisions): a duplicate of a decision still open, a stale chain
        # head (a forked chain) or a stale history (a wrong target) is worse than four reads.
        try:
            known, head = confirmed_history(self.cluster, m.obj)
        except ApiError as err:
            if err.status != 404:
                raise
            return None
        if self.reads is not None and all(d.final for d in known):
            m = confirmed_member(self.cluster, m)
        return m, known, head
