"""Runs of the operator's real control code against the in-memory API server that drive it
down each branch of a decision's lifecycle and of its status reporting. ``test_reasons.py``
checks that together they make it emit every reason it has; ``test_lifecycle_branches.py``
pins what each branch does.

A run goes through ``operator_harness.run_operator`` (``run_cycle`` and ``advance`` on a
recorded series, people and faults played by ``act``), or, for what the kopf handlers do
outside a cycle, through the plain functions they call (``handler_scenarios``). Each
scenario runs once per session (cached): tests only read what it returns.

The numbers: one signal, error_rate, scored (v - 0.01) / 0.1, sampled every 15 s from T0; the
high tier evaluates every 15 s over a 2 m window and needs 8 samples, so a series bad from T0
is first judged, and a decision made, at T0 + 105 s. Validation of a rollback judges from
window + scrape interval (135 s) after it for 3 m; approval waits 2 m here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

from fake_cluster import NAME, NAMESPACE, FakeCluster
from operator_harness import ERROR_RATE as SIGNAL
from operator_harness import MemoryAuditLog, OperatorRun, run_operator

from rollguard.api.labels import CLEAR_ANNOTATION
from rollguard.files.series import Series, parse_series

T0 = 1_699_999_200  # a multiple of every interval: evaluation instants are
STEP = 15
DECIDED = 105  # seconds after T0: a series bad from T0 is first judged (its 8th sample)
ANSWERED = DECIDED + 60  # when people answer a decision that waits for approval
BAD = 0.09  # score 0.8
GOOD = 0.0  # score 0
HOTFIX = "registry.local/model:hotfix"  # an image someone else deploys


def policy(action: str = "Rollback", **fields: Any) -> dict[str, Any]:
    """A high-tier RollbackPolicy spec on error_rate: ``action`` at score 0.5 at once."""
    return {
        "riskTier": "high",
        "signals": [SIGNAL],
        "impact": {"categories": [{"name": "revenue", "weight": 1, "signals": {"error_rate": 1}}]},
        "triggers": [{"action": action, "minScore": 0.5, "sustainedFor": "0s"}],
        **fields,
    }


def _auto(action: str) -> dict[str, Any]:
    return {"autoApprove": {"maxScore": 1.0, "actions": [action], "maxRevisionsBack": 1}}


AUTO_ROLLBACK = policy(authorization=_auto("Rollback"))
AUTO_PAUSE = policy("Pause", authorization=_auto("Pause"))


def needs_approval(on_timeout: str = "Reject") -> dict[str, Any]:
    """A Rollback outside the boundary: alice may approve it within 2 m."""
    authorization = {**_auto("Pause"), "approvers": ["alice"], "approvalTimeout": "2m"}
    return policy(authorization={**authorization, "onTimeout": on_timeout})


def series(*segments: tuple[float, int]) -> Series:
    """error_rate every STEP seconds from T0: ``count`` samples at ``value`` per segment."""
    values = [value for value, count in segments for _ in range(count)]
    rows = [f"{T0 + k * STEP},error_rate,{v!r}" for k, v in enumerate(values)]
    text = "timestamp,signal,value\n" + "\n".join(rows) + "\n"
    return parse_series(text, source="series.csv", json_format=False, signals=["error_rate"])


def times(first: int, last: int) -> list[float]:
    """The evaluation instants from T0 + first to T0 + last seconds."""
    return [float(T0 + t) for t in range(first, last + 1, STEP)]


def iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).isoformat().replace("+00:00", "Z")


# -- what a run left behind ------------------------------------------------------------------


class Observed(Protocol):
    """A run's fake API server and audit log (an ``OperatorRun``, or a
    ``handler_scenarios.World``)."""

    @property
    def cluster(self) -> FakeCluster: ...

    @property
    def audit_log(self) -> MemoryAuditLog: ...


def conditions(observed: Observed) -> list[tuple[str, str, str]]:
    """(kind, name, reason) of every status condition the stored objects carry."""
    return [
        (kind, name, str(c.get("reason")))
        for (kind, _, name), obj in sorted(observed.cluster.objects.items())
        for c in (obj.get("status") or {}).get("conditions") or []
    ]


def emitted(observed: Observed) -> set[str]:
    """Every reason the run gave: of its Events, its audit lines, its status conditions."""
    return (
        {e["reason"] for e in observed.cluster.events}
        | {str(r.get("event")) for r in observed.audit_log.records}
        | {reason for _, _, reason in conditions(observed)}
    )


def events_of(observed: Observed, name: str = NAME) -> list[tuple[float, str]]:
    """(seconds after T0, reason) of the Events about the object ``name``."""
    return [(e["time"] - T0, e["reason"]) for e in observed.cluster.events if e["name"] == name]


# -- people and faults (for ``run_operator(act=...)``) ---------------------------------------


def at(
    when: int, *steps: Callable[[float, FakeCluster], None]
) -> Callable[[float, FakeCluster], None]:
    """An ``act`` that does ``steps`` at T0 + ``when`` seconds only."""

    def act(now: float, fake: FakeCluster) -> None:
        if now == T0 + when:
            for step in steps:
                step(now, fake)

    return act


def answer(by: str, decision: str) -> Callable[[float, FakeCluster], None]:
    """``by`` writes spec.approval on the decision that waits (as ``rollguard approve``)."""

    def step(now: float, fake: FakeCluster) -> None:
        [item] = fake.list_objects("RollbackDecision", namespace=NAMESPACE)
        body = {"spec": {"approval": {"decision": decision, "by": by, "reason": "test"}}}
        fake.patch(
            "RollbackDecision", namespace=NAMESPACE, name=item["metadata"]["name"], body=body
        )

    return step


def _hotfix(fake: FakeCluster) -> list[dict[str, Any]]:
    """A JSON Patch that deploys the image HOTFIX (a new revision)."""
    template = fake.deployment(namespace=NAMESPACE, name=NAME)["spec"]["template"]
    template["spec"]["containers"][0]["image"] = HOTFIX
    return [{"op": "replace", "path": "/spec/template", "value": template}]


def deploy_hotfix(now: float, fake: FakeCluster) -> None:
    """Someone else deploys a new image."""
    fake.edit_deployment(namespace=NAMESPACE, name=NAME, operations=_hotfix(fake))


def undo_to_revision_1(now: float, fake: FakeCluster) -> None:
    """A human runs ``kubectl rollout undo --to-revision 1`` first."""
    template = fake.revision_template(namespace=NAMESPACE, name=NAME, revision=1)
    fake.edit_deployment(
        namespace=NAMESPACE,
        name=NAME,
        operations=[{"op": "replace", "path": "/spec/template", "value": template}],
    )


def prune_revision_1(now: float, fake: FakeCluster) -> None:
    fake.prune_revision(namespace=NAMESPACE, name=NAME, revision=1)


def clear_escalation(now: float, fake: FakeCluster) -> None:
    """``rollguard clear``: the annotation a human sets to let automatic actions resume."""
    body = {"metadata": {"annotations": {CLEAR_ANNOTATION: iso(now)}}}
    fake.patch("ModelDeployment", namespace=NAMESPACE, name=NAME, body=body)


def conflict_on_patch(now: float, fake: FakeCluster) -> None:
    fake.conflict_next_deployment_patch(namespace=NAMESPACE, name=NAME)


def hotfix_before_patch(now: float, fake: FakeCluster) -> None:
    """Someone else deploys a new image between the operator's read and its next patch."""
    fake.edit_before_next_deployment_patch(namespace=NAMESPACE, name=NAME, operations=_hotfix(fake))


def stall_rollouts(now: float, fake: FakeCluster) -> None:
    fake.stall_rollouts(namespace=NAMESPACE, name=NAME)


# -- decision lifecycles -----------------------------------------------------------------------


@cache
def rollback_that_recovers() -> OperatorRun:
    """Auto-approved rollback at T0+105; the series recovers, validation passes at T0+420."""
    return run_operator(AUTO_ROLLBACK, series((BAD, 8), (GOOD, 21)), eval_times=times(DECIDED, 420))


@cache
def rollback_that_stays_bad() -> OperatorRun:
    """Auto-approved rollback at T0+105; the score stays 0.8, validation fails at T0+240 and
    escalates; a human clears the escalation at T0+300."""
    return run_operator(
        AUTO_ROLLBACK,
        series((BAD, 21)),
        eval_times=times(DECIDED, 300),
        act=at(300, clear_escalation),
    )


@cache
def rollback_never_judged() -> OperatorRun:
    """Auto-approved rollback at T0+105, after which the series has no samples at all."""
    return run_operator(AUTO_ROLLBACK, series((BAD, 8)), eval_times=times(DECIDED, 420))


@cache
def stalled_rollback() -> OperatorRun:
    """Auto-approved rollback at T0+105 whose rollout never completes (rolloutTimeout 1m)."""
    spec = {**AUTO_ROLLBACK, "validation": {"rolloutTimeout": "1m"}}
    return run_operator(
        spec, series((BAD, 14)), eval_times=times(DECIDED, 195), act=at(DECIDED, stall_rollouts)
    )


@cache
def hold_episodes() -> OperatorRun:
    """A Pause trigger without a rollout in progress: two degraded episodes, each a Hold; the
    ModelDeployment recovers after each, then its data stops. One decision is kept."""
    data = series((GOOD, 9), (BAD, 9), (GOOD, 12), (BAD, 9), (GOOD, 12))
    return run_operator(AUTO_PAUSE, data, eval_times=times(120, 900), keep_decisions=1)


@cache
def pause_during_rollout() -> OperatorRun:
    return run_operator(
        AUTO_PAUSE, series((BAD, 9)), rollout_in_progress=True, eval_times=times(DECIDED, 120)
    )


def run_dry_run() -> OperatorRun:
    """A Rollback decided at T0+105 under a DryRun policy (not cached: a fresh run)."""
    spec = {**AUTO_ROLLBACK, "mode": "DryRun"}
    return run_operator(spec, series((BAD, 9)), eval_times=times(DECIDED, 120))


dry_run = cache(run_dry_run)


@cache
def approval(by: str | None, decision: str = "Approve", on_timeout: str = "Reject") -> OperatorRun:
    """A Rollback decided at T0+105 that waits for approval (approvers: alice; 2 m), answered
    by ``by`` at T0+165 or (None) never."""
    act = at(ANSWERED, answer(by, decision)) if by is not None else None
    return run_operator(
        needs_approval(on_timeout), series((BAD, 17)), eval_times=times(DECIDED, 240), act=act
    )


@cache
def interfered(first: str) -> OperatorRun:
    """A Rollback decided at T0+105 that waits for approval; at T0+165, just before alice
    approves it, ``first`` happens: "hotfix", "undo" or "prune" (see the functions above)."""
    step = {"hotfix": deploy_hotfix, "undo": undo_to_revision_1, "prune": prune_revision_1}[first]
    act = at(ANSWERED, step, answer("alice", "Approve"))
    return run_operator(
        needs_approval(), series((BAD, 13)), eval_times=times(DECIDED, ANSWERED), act=act
    )


@cache
def raced(action: str, race: str) -> OperatorRun:
    """An auto-approved ``action`` (Rollback, or Pause during a rollout) at T0+105 whose
    Deployment PATCH loses a race: "409" refused, or "422" another writer's edit first."""
    fault = {"409": conflict_on_patch, "422": hotfix_before_patch}[race]
    return run_operator(
        AUTO_ROLLBACK if action == "Rollback" else AUTO_PAUSE,
        series((BAD, 9)),
        rollout_in_progress=action == "Pause",
        eval_times=times(DECIDED, 120),
        act=at(DECIDED, fault),
    )
