"""The one place an evaluation cycle writes: ModelDeployment statuses, RollbackDecisions,
Events and metrics, as ``plan`` decided them.

A status write keeps what decision lifecycles wrote since the cycle read the object (see
``write_status``); a 404 on the ModelDeployment means it was deleted (``GoneError``). Each
status, written or (nothing material changed) only evaluated, is also this replica's live
verdict (``verdicts.VERDICTS``). Called by ``cycle`` (``Writer``) and by the handlers
(``mark_not_ready``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, get_args

from rollguard.api.modeldeployment import ModelDeploymentStatus, Phase
from rollguard.control import telemetry as observe
from rollguard.control.members import Member, NotReady
from rollguard.control.plan import Event, MemberPlan, NewDecision, Refused
from rollguard.control.records import create_decision
from rollguard.control.status import not_ready_status
from rollguard.control.verdicts import VERDICTS
from rollguard.kube.client import ApiError, Cluster, api_message

PHASES: tuple[str, ...] = get_args(Phase)
STATUS_WRITERS = 4  # status writes of one cycle in flight at once

log = logging.getLogger("rollguard")


class GoneError(Exception):
    """The ModelDeployment no longer exists on the API server (a watch cache still had it)."""


@contextlib.contextmanager
def gone_on_404(namespace: str, name: str) -> Iterator[None]:
    """A 404 for the ModelDeployment means it was deleted: GoneError, not an API failure."""
    try:
        yield
    except ApiError as err:
        if err.status == 404:
            raise GoneError(f"{namespace}/{name}") from err
        raise


def write_not_ready(cluster: Cluster, n: NotReady, *, now: datetime, owner: str = "") -> None:
    """Say in the status why the ModelDeployment is not evaluated (no write if it says so
    already); ``owner``: the policy whose cycle says it, when known."""
    status = not_ready_status(n, now=now)
    meta = n.obj["metadata"]
    if status is not None:
        with gone_on_404(meta["namespace"], meta["name"]):
            cluster.replace_status(
                "ModelDeployment",
                namespace=meta["namespace"],
                name=meta["name"],
                status=status.wire(),
            )
    VERDICTS.record(meta["namespace"], meta["name"], status or n.status, owner=owner)


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
        write_not_ready(cluster, NotReady(obj, status, reason, message, invalid), now=now)


def merged(
    status: ModelDeploymentStatus,
    stored: ModelDeploymentStatus,
    *,
    stale: bool,
    owns_escalation: bool,
) -> ModelDeploymentStatus:
    """``status`` with what others wrote into ``stored`` since the cycle read it: the actions
    recorded since (when the cycle's copy was ``stale``), the escalation (unless the cycle
    set or cleared it itself) and the audit chain's head and pruned start."""
    out = status
    if stale:
        # The cycle's copy was stale (another writer, or a cache refilling after a peering
        # pause): actions recorded since are facts the cooldown and the budget count.
        ours, theirs = out.guard.action_times, stored.guard.action_times
        if set(theirs) - set(ours):
            keep = max(len(ours), len(theirs))
            times = sorted(set(ours) | set(theirs))[-keep:]
            out = out.model_copy(
                update={"guard": out.guard.model_copy(update={"action_times": times})}
            )
    if not owns_escalation:
        out = out.model_copy(
            update={
                "escalated_at": stored.escalated_at,
                "escalation_reason": stored.escalation_reason,
                "phase": "Escalated" if stored.escalated_at else status.phase,
            }
        )
    head = out.audit
    if stored.audit.sequence > head.sequence:
        head = head.model_copy(
            update={"sequence": stored.audit.sequence, "hash": stored.audit.hash}
        )
    if stored.audit.pruned_through > head.pruned_through:
        head = head.model_copy(
            update={
                "pruned_through": stored.audit.pruned_through,
                "pruned_hash": stored.audit.pruned_hash,
            }
        )
    return out.model_copy(update={"audit": head})


def write_status(
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
            with gone_on_404(m.namespace, m.name):
                fresh = cluster.get("ModelDeployment", namespace=m.namespace, name=m.name)
        stored = ModelDeploymentStatus.model_validate(fresh.get("status") or {})
        out = merged(status, stored, stale=attempt > 0, owns_escalation=owns_escalation)
        try:
            with gone_on_404(m.namespace, m.name):
                cluster.replace_status(
                    "ModelDeployment",
                    namespace=m.namespace,
                    name=m.name,
                    status=out.wire(),
                    resource_version=fresh["metadata"]["resourceVersion"],
                )
            return str(out.phase)
        except ApiError as err:
            if err.status not in (409, 422):
                raise
    log.warning(
        "Gave up writing the status of ModelDeployment %s/%s this cycle", m.namespace, m.name
    )
    return str(m.status.phase or status.phase)


class Writer:
    """One cycle's writes, in the order the cycle makes them; the status writes wait for
    ``flush``, which makes a few at once (they wait on the API server, not on each other)."""

    def __init__(self, *, cluster: Cluster, recorder: observe.Recorder, owner: str) -> None:
        self.cluster = cluster
        self.recorder = recorder
        self.owner = owner  # the policy whose cycle this is, "namespace/name"
        self._statuses: list[MemberPlan] = []
        self._not_ready: set[tuple[str, str]] = set()

    def not_ready(self, n: NotReady, *, now: datetime) -> None:
        write_not_ready(self.cluster, n, now=now, owner=self.owner)
        self._not_ready.add((n.obj["metadata"]["namespace"], n.obj["metadata"]["name"]))

    def post(self, events: Iterable[Event]) -> None:
        for e in events:
            self.recorder.transition(
                obj=e.obj, reason=e.reason, message=e.message, warning=e.warning, **e.extra
            )

    def create(
        self, decision: NewDecision, *, member_obj: Mapping[str, Any], policy_key: tuple[str, str]
    ) -> dict[str, Any] | Refused:
        """Create the decision; Refused when RBAC or the admission policy refuses it (403)."""
        try:
            return create_decision(
                cluster=self.cluster,
                recorder=self.recorder,
                member_obj=member_obj,
                name=decision.name,
                spec=decision.spec,
                audit_head=decision.audit_head,
                known=decision.known,
                policy_key=policy_key,
            )
        except ApiError as err:
            if err.status != 403:
                raise
            # The other ModelDeployments are still evaluated, and the caller says so once
            # (control.health).
            observe.ERRORS.labels(kind="refused").inc()
            return Refused(api_message(err))

    def bound(self, members: Sequence[Member]) -> None:
        """Stop reporting the phases of ModelDeployments no longer among ``members``, and the
        verdicts of those no longer bound at all."""
        observe.keep_phases(self.owner, {(m.namespace, m.name) for m in members})
        VERDICTS.keep(self.owner, {(m.namespace, m.name) for m in members} | self._not_ready)

    def score(self, m: Member, score: float | None) -> None:
        observe.SCORE.labels(namespace=m.namespace, model_deployment=m.name).set(
            score if score is not None else float("nan")
        )

    def apply(self, plan: MemberPlan) -> None:
        """Post the plan's Events; its status is written at ``flush``, or when nothing
        material changed, only its phase reported."""
        self.post(plan.events)
        if plan.write:
            self._statuses.append(plan)
        else:
            m = plan.member
            observe.set_phase(m.namespace, m.name, str(plan.status.phase), PHASES, owner=self.owner)
            VERDICTS.record(m.namespace, m.name, plan.status, owner=self.owner)

    def flush(self) -> list[Mapping[str, Any]]:
        """Write the statuses; returns the ModelDeployments found deleted meanwhile."""
        futures: list[tuple[MemberPlan, Future[str]]] = []
        with ThreadPoolExecutor(max_workers=STATUS_WRITERS, thread_name_prefix="status") as pool:
            for plan in self._statuses:
                future = pool.submit(
                    write_status,
                    self.cluster,
                    plan.member,
                    plan.status,
                    owns_escalation=plan.owns_escalation,
                )
                futures.append((plan, future))
        self._statuses = []
        gone: list[Mapping[str, Any]] = []
        for plan, future in futures:
            m = plan.member
            try:
                phase = future.result()
            except GoneError:
                gone.append(m.obj)
                VERDICTS.forget(m.namespace, m.name)
                continue
            observe.set_phase(m.namespace, m.name, phase, PHASES, owner=self.owner)
            VERDICTS.record(m.namespace, m.name, plan.status, owner=self.owner, phase=phase)
        return gone

    def counted(self, *, evaluated: int, queries: int, started: float) -> None:
        """The cycle's metrics: evaluations, queries, and its duration since ``started``."""
        observe.EVALUATIONS.labels(policy=self.owner).inc(evaluated)
        observe.QUERIES.labels(policy=self.owner).inc(queries)
        observe.CYCLE_SECONDS.labels(policy=self.owner).observe(time.monotonic() - started)
