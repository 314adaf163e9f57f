"""One evaluation cycle of one policy over every ModelDeployment bound to it.

One PromQL query per signal for the whole batch (see ``monitoring.measure``), one call of the
decision core for the whole batch, then per ModelDeployment: its status, and a
RollbackDecision when a trigger fired. Synchronous; the handler runs it in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, get_args

import numpy as np
from pydantic import ValidationError

from rollguard.api.base import duration_seconds
from rollguard.api.labels import CLEAR_ANNOTATION
from rollguard.api.modeldeployment import (
    GuardState,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Phase,
)
from rollguard.control import reasons
from rollguard.control import telemetry as observe
from rollguard.control.policy_context import PolicyContext
from rollguard.control.records import (
    DecisionSummary,
    confirmed_history,
    create_decision,
    next_link,
)
from rollguard.core import engine, machine
from rollguard.core.conditions import set_ready
from rollguard.core.decide import build_spec, decide, policy_snapshot
from rollguard.core.evidence import last_evaluation
from rollguard.core.revisions import (
    ReplicaSetRecord,
    approved_revisions,
    current_revision,
    parse_human_hashes,
    revision_born,
    revision_context,
)
from rollguard.core.tiers import default_bake_time
from rollguard.files.loading import validation_summary
from rollguard.kube.client import ApiError, Cluster, api_message
from rollguard.signals.measure import Target, measure, to_measurements
from rollguard.signals.prometheus import Source

PHASES: tuple[str, ...] = get_args(Phase)

log = logging.getLogger("rollguard")
ACTIVE_TO_PHASE: dict[str, Phase] = {
    "PendingApproval": "AwaitingApproval",
    "Approved": "RollingBack",
    "Executing": "RollingBack",
    "Validating": "Validating",
}


class Reads(Protocol):
    """Where a cycle reads Deployments and their ReplicaSets: the API (a ``Cluster``) or the
    operator's watch caches. A missing Deployment raises the API's 404."""

    def deployment(self, *, namespace: str, name: str) -> Mapping[str, Any]: ...

    def replica_sets(
        self, *, namespace: str, deployment: Mapping[str, Any]
    ) -> list[ReplicaSetRecord]: ...


@dataclass
class Member:
    """One bound ModelDeployment, with what was read about its Deployment."""

    obj: Mapping[str, Any]
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    deployment: Mapping[str, Any]
    records: list[ReplicaSetRecord]
    current: int

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def rollout_in_progress(self) -> bool:
        d, status = self.deployment, self.deployment.get("status") or {}
        replicas = (d.get("spec") or {}).get("replicas", 1)
        return bool(
            status.get("observedGeneration", 0) < d["metadata"].get("generation", 0)
            or status.get("updatedReplicas", 0) < replicas
            or status.get("replicas", 0) > replicas
        )


@dataclass
class CycleReport:
    evaluated: int = 0
    queries: int = 0
    created: list[dict[str, Any]] = field(default_factory=list)
    metrics_error: str | None = None
    unwritten: int = 0  # evaluations whose status write was skipped: nothing material changed
    gone: list[Mapping[str, Any]] = field(default_factory=list)  # bound, but deleted (404)
    refused: str | None = None  # why the API server refused to create a decision (403)


class GoneError(Exception):
    """The ModelDeployment no longer exists on the API server (a watch cache still had it)."""


def _now_dt(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=UTC)


def _prepare(
    cluster: Cluster, reads: Reads, obj: Mapping[str, Any], policy: PolicyContext, now: datetime
) -> Member | None:
    """Read the ModelDeployment's Deployment and history; on a problem, say so in its status
    and leave it out of this cycle."""
    meta = obj["metadata"]
    status = ModelDeploymentStatus.model_validate(obj.get("status") or {})
    if not policy.usable_from(meta["namespace"]):
        _not_ready(
            cluster,
            obj,
            status=status,
            reason=reasons.POLICY_NOT_SHARED,
            message=f"RollbackPolicy {policy.namespace}/{policy.name} may not be used from "
            f"namespace {meta['namespace']} (it is not in the policy's allowedNamespaces)",
            now=now,
            invalid=True,
        )
        return None
    try:
        spec = ModelDeploymentSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        _not_ready(
            cluster,
            obj,
            status=status,
            reason=reasons.SPEC_INVALID,
            message=validation_summary(err, prefix="spec"),
            now=now,
            invalid=True,
        )
        return None
    try:
        deployment = reads.deployment(namespace=meta["namespace"], name=spec.deployment_ref.name)
    except ApiError as err:
        if err.status != 404:
            raise
        _not_ready(
            cluster,
            obj,
            status=status,
            reason=reasons.DEPLOYMENT_NOT_FOUND,
            message=f"Deployment {meta['namespace']}/{spec.deployment_ref.name} does not exist",
            now=now,
        )
        return None
    records = reads.replica_sets(namespace=meta["namespace"], deployment=deployment)
    current = current_revision(deployment)
    if reads is not cluster and _cache_suspect(status, records, current):
        # A watch cache lags behind the API server for a while after a peering pause or a
        # burst of changes. What the cycle derives from the history (approvals dropped with
        # their ReplicaSet, the rollback target) is decided on the API server's word only.
        observe.CACHE_READS.labels(kind="ReplicaSet", result="recheck").inc()
        deployment, records, current = _live_history(
            cluster, meta["namespace"], spec.deployment_ref.name
        )
    if current is None:
        _not_ready(
            cluster,
            obj,
            status=status,
            reason=reasons.DEPLOYMENT_NOT_FOUND,
            message="the Deployment has no revision yet",
            now=now,
        )
        return None
    return Member(obj, spec, status, deployment, records, current)


def _live_history(
    cluster: Cluster, namespace: str, name: str
) -> tuple[Mapping[str, Any], list[ReplicaSetRecord], int | None]:
    """The Deployment, its ReplicaSet history and current revision, read from the API server."""
    deployment = cluster.deployment(namespace=namespace, name=name)
    records = cluster.replica_sets(namespace=namespace, deployment=deployment)
    return deployment, records, current_revision(deployment)


def _confirmed_member(cluster: Cluster, m: Member) -> Member:
    """``m`` with its Deployment and ReplicaSet history as the API server has them now."""
    try:
        deployment, records, current = _live_history(
            cluster, m.namespace, m.spec.deployment_ref.name
        )
    except ApiError as err:
        if err.status != 404:
            raise
        return m  # deleted meanwhile: the decision's execution finds and records that
    if current is None:
        return m
    return replace(m, deployment=deployment, records=records, current=current)


@contextlib.contextmanager
def _gone_on_404(namespace: str, name: str) -> Iterator[None]:
    """A 404 for the ModelDeployment means it was deleted: GoneError, not an API failure."""
    try:
        yield
    except ApiError as err:
        if err.status == 404:
            raise GoneError(f"{namespace}/{name}") from err
        raise


def _cache_suspect(
    status: ModelDeploymentStatus, records: Sequence[ReplicaSetRecord], current: int | None
) -> bool:
    """Whether cached history may be behind: the current revision has no ReplicaSet in it, it
    is older than the revision already recorded, or an approved revision's ReplicaSet is
    missing (pruned, or not delivered yet: only the API server can tell)."""
    hashes = {r.template_hash for r in records}
    return (
        current is None
        or current not in {r.revision for r in records}
        or (status.current_revision is not None and status.current_revision > current)
        or any(a.template_hash not in hashes for a in status.approved_revisions)
    )


def mark_not_ready(
    cluster: Cluster,
    obj: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    now: datetime,
    invalid: bool = False,
) -> None:
    """Say in a ModelDeployment's status why it is not evaluated (no write if it says so
    already): its policy is missing or invalid."""
    status = ModelDeploymentStatus.model_validate(obj.get("status") or {})
    with contextlib.suppress(GoneError):  # deleted since it was read: nothing to say it on
        _not_ready(
            cluster, obj, status=status, reason=reason, message=message, now=now, invalid=invalid
        )


def _not_ready(
    cluster: Cluster,
    obj: Mapping[str, Any],
    *,
    status: ModelDeploymentStatus,
    reason: str,
    message: str,
    now: datetime,
    invalid: bool = False,
) -> None:
    generation = obj["metadata"].get("generation")
    conditions = set_ready(
        status.conditions, ready="False", reason=reason, message=message, invalid=invalid,
        now=now, generation=generation,
    )  # fmt: skip
    if status.conditions == conditions:
        return
    update = status.model_copy(
        update={"conditions": conditions, "message": message, "observed_generation": generation}
    )
    meta = obj["metadata"]
    with _gone_on_404(meta["namespace"], meta["name"]):
        cluster.replace_status(
            "ModelDeployment", namespace=meta["namespace"], name=meta["name"], status=update.wire()
        )


def decision_name(member: Member, trigger_index: int, since: float, sequence: int) -> str:
    """Deterministic per episode, trigger point and place in the chain: a crash between
    creating a decision and recording it makes the next cycle find the same name, not create
    a second decision; a point offered again (after a cooldown) gets a name of its own."""
    uid = member.obj["metadata"].get("uid", "")
    seed = f"{uid}|{trigger_index}|{since:.0f}|{sequence}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:10]
    return f"{member.name[:200]}-{digest}"


def _escalation_now(m: Member, recorder: observe.Recorder) -> tuple[bool, dict[str, Any]]:
    """Whether the member is escalated to humans now, and the status update when a human has
    cleared it (``rollguard clear``) since it escalated."""
    escalated_at = m.status.escalated_at
    cleared = _cleared_at(m)
    if escalated_at is None or cleared is None or cleared <= escalated_at:
        return escalated_at is not None, {}
    recorder.transition(
        obj=m.obj,
        reason=reasons.ESCALATION_CLEARED,
        message=f"ModelDeployment {m.namespace}/{m.name}: escalation cleared by a human; "
        "automatic actions resume",
    )
    return False, {"escalated_at": None, "escalation_reason": None}


def run_cycle(
    *,
    cluster: Cluster,
    source: Source,
    recorder: observe.Recorder,
    policy: PolicyContext,
    bound: Sequence[Mapping[str, Any]],
    decisions: Mapping[tuple[str, str], Sequence[DecisionSummary]],
    scrape_interval: float,
    operator_version: str,
    now: float,
    reads: Reads | None = None,
) -> CycleReport:
    """Evaluate every ModelDeployment in ``bound`` once at ``now`` (whole Unix seconds),
    reading Deployments and ReplicaSets from ``reads`` (default: the API)."""
    started = time.monotonic()
    report = CycleReport()
    now_dt = _now_dt(now)
    source_of = reads or cluster
    members: list[Member] = []
    for obj in bound:
        try:
            prepared = _prepare(cluster, source_of, obj, policy, now_dt)
        except GoneError:
            report.gone.append(obj)
            continue
        if prepared is not None:
            members.append(prepared)
    owner = f"{policy.namespace}/{policy.name}"
    observe.keep_phases(owner, {(m.namespace, m.name) for m in members})
    if not members:
        return report
    eff = policy.effective
    interval = duration_seconds(eff.evaluation.interval)
    targets = [Target(m.namespace, m.spec.deployment_ref.name, str(m.current)) for m in members]
    batch = measure(
        source=source,
        policy=eff,
        plans=policy.plans,
        targets=targets,
        now=now,
        step=scrape_interval,
    )
    report.queries = batch.queries_issued
    failures = [run.error for run in batch.runs if run.error]
    report.metrics_error = failures[0] if failures else None

    judging = machine.judging_hash(eff)
    states: list[GuardState] = []
    open_now: list[bool] = []
    escalations: list[tuple[bool, dict[str, Any]]] = []
    for m in members:
        guard = machine.carried_state(
            m.status.guard, stored_hash=m.status.policy_hash, policy_hash=judging
        )
        mine = decisions.get((m.namespace, m.name), ())
        executed = [(d.executed_at, d.action) for d in mine if d.executed_at is not None]
        states.append(machine.absorb_executions(guard, executed))
        open_now.append(any(not d.final for d in mine))
        escalations.append(_escalation_now(m, recorder))
    # Since when each current revision can have data: a younger series is warming up.
    born = [
        revision_born(m.records, current=m.current, changed_at=st.changed_at)
        for m, st in zip(members, states, strict=True)
    ]
    measurements, samples = to_measurements(batch, born=born)
    can_fire = np.array(
        [
            machine.may_fire(open_decision=o, escalated=e)
            for o, (e, _) in zip(open_now, escalations, strict=True)
        ],
        dtype=np.bool_,
    )
    result = engine.step(
        eff, measurements, engine.state_to_arrays(eff, states), now=now, can_fire=can_fire
    )
    after = engine.arrays_to_states(eff, result.state)

    writes: list[tuple[Member, ModelDeploymentStatus, bool]] = []
    for b, member in enumerate(members):
        m = member  # replaced by what the API server has when a decision is about to be made
        mine = decisions.get((m.namespace, m.name), ())
        active = next((d for d in mine if not d.final), None)
        escalated, escalated_update = escalations[b]
        fired = int(result.fired[b])
        audit_head = m.status.audit
        if fired >= 0 and active is None and not escalated:
            # A decision is made on the API server's word, not on watch caches that may lag
            # (for a while after a peering pause they miss the other replica's decisions and
            # the Deployment's latest revisions): a duplicate of a decision still open, a
            # stale chain head (a forked chain) or a stale history (a wrong target) is worse
            # than four reads.
            try:
                mine, audit_head = confirmed_history(cluster, m.obj)
            except ApiError as err:
                if err.status != 404:
                    raise
                report.gone.append(m.obj)
                continue
            active = next((d for d in mine if not d.final), None)
            if reads is not None and active is None:
                m = _confirmed_member(cluster, m)
        evaluation = last_evaluation(eff, result, b, now=now)
        score = evaluation.score
        observe.SCORE.labels(namespace=m.namespace, model_deployment=m.name).set(
            score if score is not None else float("nan")
        )
        healthy_since = machine.healthy_since(
            previous=m.status.healthy_since, same_revision=m.status.current_revision == m.current,
            score=score, degraded=bool(result.state.degraded[b]), clear_below=eff.clear_below,
            now=now,
        )  # fmt: skip
        bake = m.spec.bake_time or default_bake_time(eff.risk_tier)
        approved = approved_revisions(
            records=m.records, previous=m.status.approved_revisions, spec_refs=m.spec.approved_revisions or [],
            human_hashes=parse_human_hashes(m.obj["metadata"].get("annotations")), current=m.current,
            healthy_since=healthy_since, bake_time=bake, now=now,
        )  # fmt: skip
        last_decision = m.status.last_decision
        refused_message: str | None = None
        if fired >= 0 and active is None and not escalated:
            context = revision_context(
                records=m.records,
                approved=approved,
                current=m.current,
                rollout_in_progress=m.rollout_in_progress,
                born=born[b],
            )
            draft = decide(
                eff, result, b, samples=samples[b], queries=[s.query for s in batch.samples[b]],
                revisions=context, business=m.spec.business, state_before=states[b], now=now,
                mode=m.spec.mode,
            )  # fmt: skip
            spec = build_spec(
                draft, model_deployment=m.name, deployment=m.spec.deployment_ref.name,
                policy=policy_snapshot(name=policy.name, namespace=policy.namespace, generation=policy.generation, effective=eff),
                operator_version=operator_version,
            )  # fmt: skip
            since = draft.trigger.above_since.timestamp()
            sequence, _ = next_link(mine, audit_head)
            try:
                created = create_decision(
                    cluster=cluster, recorder=recorder, member_obj=m.obj, name=decision_name(m, fired, since, sequence),
                    spec=spec, audit_head=audit_head, known=mine, policy_key=policy.key,
                )  # fmt: skip
            except ApiError as err:
                if err.status != 403:
                    raise
                # Refused by RBAC or the admission policy: the other ModelDeployments are
                # still evaluated, and the caller says so once (control.health).
                report.refused = api_message(err)
                observe.ERRORS.labels(kind="refused").inc()
                after[b] = states[b]  # not fired yet: the next cycle tries again
                refused_message = f"the API server refused its RollbackDecision: {report.refused}"
            else:
                report.created.append(created)
                last_decision = created["metadata"]["name"]
                active = DecisionSummary.of(created)
                blocked, action = str(result.blocked[b]), spec.recommended.action
                after[b] = machine.after_decision(after[b], blocked=blocked, action=action)
                if machine.escalation(blocked, action) == machine.ESCALATION_BUDGET:
                    # Beyond the action budget humans take over: this is what stops a fight with
                    # a GitOps tool that keeps re-applying the bad revision.
                    budget = eff.safety.max_actions_per_window
                    escalation = (
                        f"action budget spent ({budget.count} executed action(s) per {budget.window}); "
                        f"decision {last_decision} waits for a human"
                    )
                    escalated_update = {"escalated_at": now_dt, "escalation_reason": escalation}
                    escalated = True
                    recorder.transition(
                        obj=m.obj, reason=reasons.ESCALATED, warning=True,
                        message=f"ModelDeployment {m.namespace}/{m.name} escalated to humans: {escalation}",
                    )  # fmt: skip
        phase, message = _phase(
            m, result, b, active=active, escalated=escalated, score=score,
            clear_below=eff.clear_below, cooldown_seconds=duration_seconds(eff.safety.cooldown),
            now=now,
        )  # fmt: skip
        if refused_message is not None:
            message, refused_message = f"{message}; {refused_message}", None
        if phase != m.status.phase and phase in ("Degraded", "Healthy", "Inconclusive"):
            reason = {
                "Degraded": reasons.BECAME_DEGRADED,
                "Healthy": reasons.RECOVERED,
                "Inconclusive": reasons.BECAME_INCONCLUSIVE,
            }[phase]
            if m.status.phase is not None or phase != "Healthy":
                recorder.transition(
                    obj=m.obj,
                    reason=reason,
                    message=f"ModelDeployment {m.namespace}/{m.name}: {message}",
                    warning=phase == "Degraded",
                    score=score,
                )
        generation = m.obj["metadata"].get("generation")
        conditions = set_ready(
            m.status.conditions, ready="True", reason=reasons.EVALUATED, message=message,
            invalid=False, now=now_dt, generation=generation,
        )  # fmt: skip
        stable = next((a.revision for a in approved if a.revision <= m.current), None)
        status = m.status.model_copy(
            update={
                "phase": phase, "message": message, "current_revision": m.current, "stable_revision": stable,
                "approved_revisions": approved, "last_evaluation": evaluation, "last_decision": last_decision,
                "guard": after[b], "policy_hash": judging, "healthy_since": healthy_since,
                "conditions": conditions, "observed_generation": generation,
                **escalated_update,
            }
        )  # fmt: skip
        if report.created and report.created[-1]["metadata"]["name"] == last_decision:
            audit = report.created[-1].get("status", {}).get("audit") or {}
            head = {"sequence": audit.get("sequence", 0), "hash": audit.get("hash", "")}
            status = status.model_copy(update={"audit": m.status.audit.model_copy(update=head)})
        if active is not None or _worth_writing(m.status, status, refresh=4 * interval, now=now):
            writes.append((m, status, bool(escalated_update)))
        else:
            observe.set_phase(m.namespace, m.name, str(status.phase), PHASES, owner=owner)
            report.unwritten += 1
        report.evaluated += 1
    # The status writes of a cycle wait on the API server, not on each other: a few at once.
    with ThreadPoolExecutor(max_workers=STATUS_WRITERS, thread_name_prefix="status") as pool:
        futures = [
            (m, pool.submit(_write_status, cluster, m, status, owns_escalation=owns))
            for m, status, owns in writes
        ]
    for m, future in futures:
        try:
            observe.set_phase(m.namespace, m.name, future.result(), PHASES, owner=owner)
        except GoneError:
            report.gone.append(m.obj)
    observe.EVALUATIONS.labels(policy=f"{policy.namespace}/{policy.name}").inc(report.evaluated)
    observe.QUERIES.labels(policy=f"{policy.namespace}/{policy.name}").inc(report.queries)
    observe.CYCLE_SECONDS.labels(policy=f"{policy.namespace}/{policy.name}").observe(
        time.monotonic() - started
    )
    return report


def _phase(
    m: Member, result: engine.StepResult, b: int, *, active: DecisionSummary | None,
    escalated: bool, score: float | None, clear_below: float, cooldown_seconds: float, now: float,
) -> tuple[Phase, str]:  # fmt: skip
    if escalated:
        return (
            "Escalated",
            m.status.escalation_reason or "automatic actions stopped; a human must clear it",
        )
    if active is not None and active.phase in ACTIVE_TO_PHASE:
        return ACTIVE_TO_PHASE[active.phase], f"decision {active.name} is {active.phase}"
    if active is not None and not active.phase and active.acts:
        # Just created; its first lifecycle step follows at once.
        phase: Phase = "AwaitingApproval" if active.requires_approval else "RollingBack"
        return phase, f"decision {active.name} was just made"
    cooldown = _in_cooldown(m, cooldown_seconds, now)
    if score is None:
        return "Inconclusive", "no signal had enough data to judge"
    if bool(result.state.degraded[b]):
        return "Degraded", f"impact score {score:.3f}; recovers below clearBelow {clear_below}"
    if cooldown:
        return "Cooldown", f"impact score {score:.3f}; cooling down after an automatic action"
    return "Healthy", f"impact score {score:.3f}"


STATUS_WRITERS = 4  # status writes of one cycle in flight at once
SCORE_STEP = 0.05  # a change of the impact score this large is written at once


def _material(status: ModelDeploymentStatus) -> dict[str, Any]:
    """What a human or a restart needs from the status, without what moves every evaluation:
    the last evaluation's numbers, the message quoting them, the conditions' wording."""
    wire = status.wire()
    for key in ("lastEvaluation", "message", "conditions"):
        wire.pop(key, None)
    wire["conditions"] = [(c.type, c.status, c.reason) for c in status.conditions]
    return wire


def _worth_writing(
    stored: ModelDeploymentStatus, new: ModelDeploymentStatus, *, refresh: float, now: float
) -> bool:
    """Whether an evaluation's status must be written: anything material changed (phase,
    decision-core state, revisions, chain, escalation, conditions), the score moved by
    SCORE_STEP or between known and unknown, or the stored evaluation is ``refresh`` old. A
    steady fleet writes each status every ``refresh`` seconds, not every interval."""
    before, after = stored.last_evaluation, new.last_evaluation
    if before is None or after is None or _material(stored) != _material(new):
        return True
    if (before.score is None) != (after.score is None):
        return True
    old, score = before.score, after.score
    if old is not None and score is not None and abs(score - old) >= SCORE_STEP:
        return True
    return now - before.time.timestamp() >= refresh


def _write_status(
    cluster: Cluster, m: Member, status: ModelDeploymentStatus, *, owns_escalation: bool
) -> str:
    """Replace the ModelDeployment's status, keeping what decision lifecycles wrote since the
    cycle read it (escalation, pruned chain start): re-read, merge those fields, and write
    with a resourceVersion test, a few times if someone keeps writing in between. The first
    attempt trusts the object the cycle read (usually nobody wrote since: no re-read). Returns
    the phase written."""
    fresh: Mapping[str, Any] = m.obj
    for attempt in range(5):
        if attempt or not fresh["metadata"].get("resourceVersion"):
            with _gone_on_404(m.namespace, m.name):
                fresh = cluster.get("ModelDeployment", namespace=m.namespace, name=m.name)
        now_status = ModelDeploymentStatus.model_validate(fresh.get("status") or {})
        merged = status
        if attempt:
            # The cycle's copy was stale (another writer, or a cache refilling after a peering
            # pause): actions recorded since are facts the cooldown and the budget count.
            ours, stored = merged.guard.action_times, now_status.guard.action_times
            if set(stored) - set(ours):
                keep = max(len(ours), len(stored))
                times = sorted(set(ours) | set(stored))[-keep:]
                guard = merged.guard.model_copy(update={"action_times": times})
                merged = merged.model_copy(update={"guard": guard})
        if not owns_escalation:
            merged = merged.model_copy(
                update={
                    "escalated_at": now_status.escalated_at,
                    "escalation_reason": now_status.escalation_reason,
                    "phase": "Escalated" if now_status.escalated_at else status.phase,
                }
            )
        head = merged.audit
        if now_status.audit.sequence > head.sequence:
            head = head.model_copy(
                update={"sequence": now_status.audit.sequence, "hash": now_status.audit.hash}
            )
        if now_status.audit.pruned_through > head.pruned_through:
            head = head.model_copy(
                update={
                    "pruned_through": now_status.audit.pruned_through,
                    "pruned_hash": now_status.audit.pruned_hash,
                }
            )
        merged = merged.model_copy(update={"audit": head})
        try:
            with _gone_on_404(m.namespace, m.name):
                cluster.replace_status(
                    "ModelDeployment", namespace=m.namespace, name=m.name, status=merged.wire(),
                    resource_version=fresh["metadata"]["resourceVersion"],
                )  # fmt: skip
            return str(merged.phase)
        except ApiError as err:
            if err.status not in (409, 422):
                raise
    log.warning(
        "Gave up writing the status of ModelDeployment %s/%s this cycle", m.namespace, m.name
    )
    return str(m.status.phase or status.phase)


def _cleared_at(m: Member) -> datetime | None:
    """When a human last cleared an escalation (``rollguard clear``), from the annotation."""
    raw = (m.obj["metadata"].get("annotations") or {}).get(CLEAR_ANNOTATION)
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
    except ValueError:
        return None


def _in_cooldown(m: Member, cooldown: float, now: float) -> bool:
    changed = m.status.guard.changed_at
    return changed is not None and now - changed < cooldown
