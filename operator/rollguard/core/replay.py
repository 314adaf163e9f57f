"""Replay: re-evaluate a recorded RollbackDecision from its own evidence and compare.

``rollguard replay`` and the audit tooling call ``replay``. It rebuilds the measurements from
the recorded samples (a batch of one; warm-up from the window ending at ``evaluatedAt``, the
samples' recorded ``step`` and ``revisions.born``), the guard state from ``stateBefore``,
runs the same ``engine.step`` and ``decide`` the operator ran at ``evaluatedAt`` under the
recorded policy snapshot, and lists every difference. A decision whose evidence was not
tampered with replays to the same result bit for bit: sums are sequential and independent of
the batch (see ``stats``), floats round-trip exactly through JSON, and the operator evaluates
at whole seconds so ``evaluatedAt`` round-trips too. PURE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rollguard.api.base import duration_seconds
from rollguard.api.decision import RollbackDecisionSpec, Samples
from rollguard.api.modeldeployment import Business
from rollguard.core.decide import build_spec, decide
from rollguard.core.engine import state_to_arrays, step
from rollguard.core.samples import measurements_from_samples
from rollguard.core.tiers import spec_hash

# Fields of the spec a replay must reproduce. Signal messages are compared too: they carry
# the arithmetic a reader trusts.
_COMPARED = (
    "trigger",
    "signals",
    "impact",
    "options",
    "recommended",
    "requires_approval",
    "approval_reason",
)


@dataclass(frozen=True)
class ReplayResult:
    """``same`` when the replay reproduced the recorded decision; otherwise ``differences``
    names each field that differs, recorded vs replayed. ``recomputed`` is None when no
    trigger fired on replay."""

    same: bool
    differences: list[str] = field(default_factory=list)
    recomputed: RollbackDecisionSpec | None = None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."


def _diff(path: str, recorded: Any, replayed: Any, out: list[str]) -> None:
    """Append the leaf paths where two model dumps differ."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for key in sorted(set(recorded) | set(replayed)):
            _diff(f"{path}.{key}", recorded.get(key), replayed.get(key), out)
    elif isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            out.append(f"{path}: recorded {len(recorded)} items, replayed {len(replayed)}")
            return
        for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            _diff(f"{path}[{i}]", a, b, out)
    elif recorded != replayed:
        out.append(f"{path}: recorded {_short(recorded)}, replayed {_short(replayed)}")


def replay(spec: RollbackDecisionSpec, *, business: Business | None = None) -> ReplayResult:
    """Re-evaluate ``spec`` from its recorded evidence.

    Money at risk is recomputed from the revenuePerHour recorded with it, unless ``business``
    is given (to ask "what would it have said with these figures").
    """
    policy = spec.policy.effective
    differences: list[str] = []
    rehashed = spec_hash(policy)
    if rehashed != spec.policy.spec_hash:
        differences.append(
            f"policy.specHash: recorded {spec.policy.spec_hash}, the recorded effective "
            f"policy hashes to {rehashed}"
        )

    by_name = {s.name: s for s in spec.signals}
    missing = [s.name for s in policy.signals if s.name not in by_name]
    if missing:
        differences.append(f"signals: no recorded samples for {', '.join(missing)}")
    empty = Samples(timestamps=[], values=[])
    samples = [by_name[s.name].samples if s.name in by_name else empty for s in policy.signals]
    queries = [by_name[s.name].query if s.name in by_name else "" for s in policy.signals]

    if business is None and spec.impact.money_at_risk is not None:
        money = spec.impact.money_at_risk
        if money.revenue_per_hour is not None:
            business = Business(revenue_per_hour=money.revenue_per_hour, currency=money.currency)

    now = spec.evaluated_at.timestamp()
    since = now - duration_seconds(policy.evaluation.window)
    result = step(
        policy,
        measurements_from_samples([samples], born=[spec.revisions.born], since=since, until=now),
        state_to_arrays(policy, [spec.state_before]),
        now=now,
    )
    if int(result.fired[0]) < 0:
        differences.append(
            f"trigger: recorded point {spec.trigger.index} ({spec.trigger.action}) fired, "
            f"replayed none (score {float(result.score[0])!r})"
        )
        return ReplayResult(same=False, differences=differences)

    draft = decide(
        policy,
        result,
        0,
        samples=samples,
        queries=queries,
        revisions=spec.revisions,
        business=business,
        state_before=spec.state_before,
        now=now,
        mode=spec.mode,
    )
    recomputed = build_spec(
        draft,
        model_deployment=spec.model_deployment_ref.name,
        target=spec.target,
        policy=spec.policy,
        operator_version=spec.operator_version,
        approval=spec.approval,
    )
    recorded_dump = spec.model_dump(mode="json", by_alias=True)
    replayed_dump = recomputed.model_dump(mode="json", by_alias=True)
    for name in _COMPARED:
        alias = RollbackDecisionSpec.model_fields[name].alias or name
        _diff(alias, recorded_dump[alias], replayed_dump[alias], differences)
    return ReplayResult(same=not differences, differences=differences, recomputed=recomputed)
