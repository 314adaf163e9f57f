"""The live verdict on each ModelDeployment, served read-only as JSON at ``/verdicts`` on the
metrics port (``health``), so that a deployment tool can gate on it: an Argo Rollouts
``AnalysisTemplate`` with the ``web`` provider fails a canary step when ``healthy`` is false.

What a verdict says is what this replica last evaluated and wrote into the ModelDeployment's
status (``writes`` records it in ``VERDICTS``; a status write skipped because nothing material
changed records the evaluation all the same, so ``evaluatedAt`` is never older than the last
cycle). ``verdict`` and ``answer`` are pure (the time, the replica's state and what its
policy loops bind are arguments); ``Verdicts`` is thread-safe: status writes happen in worker
threads, requests in the server's. Called by ``writes`` and ``health``; docs:
docs/operating/verdict-endpoint.md.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rollguard.api.modeldeployment import LastEvaluation, ModelDeploymentStatus, Phase
from rollguard.core.times import format_time, to_seconds

HEALTHY_PHASES: tuple[Phase, ...] = ("Healthy", "Cooldown")
"""The phases in which a canary step may pass: the score is known and below the policy's
``clearBelow`` (Cooldown: the same, shortly after an automatic action). Degraded,
Inconclusive (no signal had enough data), AwaitingApproval, RollingBack, Validating and
Escalated fail it."""

STALE_INTERVALS = 3
"""A verdict older than this many evaluation intervals is ``stale``, and not healthy."""

SERVING_STATES = ("ready", "refused")
"""Replica states (``health.Health``) in which this replica evaluates, so its verdicts are
live; a refused replica cannot create decisions but still evaluates."""

Key = tuple[str, str]


@dataclass(frozen=True)
class Record:
    """A ModelDeployment's status as this replica last evaluated or wrote it."""

    status: ModelDeploymentStatus
    owner: str = ""  # the policy, "namespace/name", whose cycle recorded it ("": not known)
    interval: float | None = None  # seconds between its last two evaluations


def _evaluated(status: ModelDeploymentStatus) -> float | None:
    evaluation = status.last_evaluation
    return to_seconds(evaluation.time) if evaluation is not None else None


def _interval(before: Record | None, status: ModelDeploymentStatus) -> float | None:
    """The gap between the previous evaluation and this one: the policy's interval (cycles
    run at its whole multiples); the previous gap when this is no new evaluation."""
    if before is None:
        return None
    old, new = _evaluated(before.status), _evaluated(status)
    if old is not None and new is not None and new > old:
        return new - old
    return before.interval


class Verdicts:
    """The latest Record per ModelDeployment."""

    def __init__(self) -> None:
        self._records: dict[Key, Record] = {}
        self._lock = threading.Lock()

    def record(
        self,
        namespace: str,
        name: str,
        status: ModelDeploymentStatus,
        *,
        owner: str = "",
        phase: str | None = None,
    ) -> None:
        """Remember ``status`` (with ``phase``, the one written, when a write changed it)."""
        if phase is not None and phase != status.phase:
            status = status.model_copy(update={"phase": phase})
        with self._lock:
            before = self._records.get((namespace, name))
            keep = before.owner if before is not None else ""
            self._records[(namespace, name)] = Record(
                status, owner or keep, _interval(before, status)
            )

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._records.pop((namespace, name), None)

    def keep(self, owner: str, bound: Iterable[Key]) -> None:
        """Forget what ``owner`` recorded about ModelDeployments no longer ``bound`` to it."""
        still = set(bound)
        with self._lock:
            for key in [k for k, r in self._records.items() if r.owner == owner]:
                if key not in still:
                    del self._records[key]

    def snapshot(self) -> dict[Key, Record]:
        with self._lock:
            return dict(self._records)


VERDICTS = Verdicts()


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: an unknown number is null."""
    return value if value is not None and math.isfinite(value) else None


def _ready(status: ModelDeploymentStatus) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions)


def _breached(evaluation: LastEvaluation | None) -> bool:
    """Whether a signal is outside its margin-adjusted objective. The phase turns Degraded only
    once a trigger point's dwell time has passed (so that rollguard does not act on a blip);
    a canary step must not pass a revision that already breaches."""
    return evaluation is not None and any(s.status == "Breach" for s in evaluation.signals)


def verdict(namespace: str, name: str, record: Record, *, now: float) -> dict[str, Any]:
    """The JSON answer for one ModelDeployment at ``now`` (Unix seconds). ``healthy``: ready
    (evaluated, not left out for a missing target or policy), a phase in HEALTHY_PHASES, a
    known score, no signal in Breach, and not stale. ``stale`` only once the interval is known
    (two evaluations)."""
    status = record.status
    evaluation = status.last_evaluation
    at = _evaluated(status)
    stale: bool | None = None
    if at is not None and record.interval:
        stale = now - at > STALE_INTERVALS * record.interval
    score = _finite(evaluation.score) if evaluation is not None else None
    ready = _ready(status)
    out: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "phase": status.phase,
        "healthy": ready
        and status.phase in HEALTHY_PHASES
        and score is not None
        and not _breached(evaluation)
        and not stale,
        "ready": ready,
        "score": score,
        "scoreText": evaluation.score_text if evaluation is not None else None,
        "signals": [
            {
                "name": s.name,
                "status": s.status,
                "value": _finite(s.value),
                "upper": _finite(s.upper),
                "lower": _finite(s.lower),
                "severity": _finite(s.severity),
            }
            for s in (evaluation.signals if evaluation is not None else [])
        ],
        "policyHash": status.policy_hash,
        "evaluatedAt": format_time(evaluation.time) if evaluation is not None else None,
        "ageSeconds": round(max(now - at, 0.0), 1) if at is not None else None,
        "target": status.target,
        "currentRevision": status.current_revision,
        "lastDecision": status.last_decision,
        "message": status.message,
    }
    if stale is not None:
        out["stale"] = stale
    return out


# -- the answers of the endpoint --------------------------------------------------------------


@dataclass(frozen=True)
class Replica:
    """What a request is answered from: this replica's state (and why, when not ready), the
    ModelDeployments each of its policy loops binds, its Records, and the time."""

    state: str
    why: str
    bound: Mapping[Key, tuple[Key, ...]]  # policy -> its ModelDeployments
    records: Mapping[Key, Record]
    now: float


def _not_serving(replica: Replica) -> tuple[int, dict[str, Any]] | None:
    if replica.state in SERVING_STATES:
        return None
    if replica.state == "standby":
        error = (
            "this replica is on standby: another replica evaluates, and its verdicts are "
            "served by that one; ask again (through the Service, another request may reach it)"
        )
    else:
        error = f"this replica does not evaluate now: {replica.why}"
    return 503, {"error": error, "state": replica.state}


def _policy_of(replica: Replica, key: Key) -> Key | None:
    return next((p for p, keys in replica.bound.items() if key in keys), None)


def answer_one(replica: Replica, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
    """``GET /verdicts/NAMESPACE/NAME``: 200 and the verdict; 404 when no policy loop of this
    replica binds it (no such ModelDeployment, or its RollbackPolicy is missing); 503 while
    this replica is not evaluating, or has not evaluated it yet."""
    refused = _not_serving(replica)
    if refused is not None:
        return refused
    key = (namespace, name)
    policy = _policy_of(replica, key)
    if policy is None:
        if not replica.bound:
            error = "this replica evaluates no RollbackPolicy yet (it may have just started)"
            return 503, {"error": error, "state": replica.state}
        error = (
            f"no ModelDeployment {namespace}/{name} is bound to a RollbackPolicy this operator "
            "evaluates (it does not exist, or its policy does not)"
        )
        return 404, {"error": error}
    record = replica.records.get(key)
    if record is None:
        error = (
            f"ModelDeployment {namespace}/{name} (RollbackPolicy {policy[0]}/{policy[1]}) "
            "has not been evaluated yet by this replica; ask again after one evaluation "
            "interval"
        )
        return 503, {"error": error, "state": replica.state}
    return 200, verdict(namespace, name, record, now=replica.now)


def answer_from_status(
    namespace: str, name: str, status: ModelDeploymentStatus | None, *, now: float
) -> tuple[int, dict[str, Any]]:
    """A standby's answer to ``GET /verdicts/NAMESPACE/NAME``: the verdict the acting replica
    last wrote into the ModelDeployment's status (``status``, read from the API server; None:
    there is no such ModelDeployment), marked ``"source": "status"``. Its phase and signals
    are those of the last material change (a breach, a phase, a score step is written at once);
    ``ageSeconds`` says how old its evaluation is."""
    if status is None:
        return 404, {"error": f"no ModelDeployment {namespace}/{name}"}
    if status.last_evaluation is None:
        error = (
            f"ModelDeployment {namespace}/{name} has not been evaluated yet; ask again after "
            "one evaluation interval"
        )
        return 503, {"error": error, "state": "standby"}
    return 200, {**verdict(namespace, name, Record(status), now=now), "source": "status"}


def answer_all(replica: Replica) -> tuple[int, dict[str, Any]]:
    """``GET /verdicts``: every bound ModelDeployment this replica has evaluated, by namespace
    and name, and how many bound ones it has not evaluated yet."""
    refused = _not_serving(replica)
    if refused is not None:
        return refused
    bound = sorted({k for keys in replica.bound.values() for k in keys})
    known = [k for k in bound if k in replica.records]
    return 200, {
        "verdicts": [verdict(ns, n, replica.records[(ns, n)], now=replica.now) for ns, n in known],
        "notEvaluatedYet": len(bound) - len(known),
    }


def answer(replica: Replica, path: str) -> tuple[int, dict[str, Any]]:
    """The answer to a GET of ``path`` (``/verdicts...``)."""
    parts = [p for p in path.split("/") if p][1:]
    if not parts:
        return answer_all(replica)
    if len(parts) == 2:
        return answer_one(replica, parts[0], parts[1])
    return 404, {"error": f"no such path {path}: ask /verdicts or /verdicts/NAMESPACE/NAME"}
