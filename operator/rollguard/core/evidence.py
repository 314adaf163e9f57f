"""Evidence for one batch member: per-signal and per-category numbers with their explanations.

Callers: ``decide`` (a decision's ``signals`` and ``impact``), the ModelDeployment handler
(``last_evaluation`` for ``status.lastEvaluation``), and ``replay``. PURE and scalar: it reads
one row of a ``StepResult``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rollguard.api.decision import CategoryImpact, ImpactEvidence, Samples, SignalEvidence
from rollguard.api.modeldeployment import (
    Business,
    CategoryEvaluation,
    LastEvaluation,
    SignalEvaluation,
    SignalStatus,
)
from rollguard.api.policy import EffectivePolicy
from rollguard.core.display import score_text
from rollguard.core.engine import StepResult, paired_confidence
from rollguard.core.scoring import ImpactModel, key_breaches, money_at_risk
from rollguard.core.severity import explain
from rollguard.core.times import to_datetime

_EMPTY = Samples(timestamps=[], values=[])


def optional(x: float) -> float | None:
    """A float for the API: None for NaN (unknown)."""
    return None if math.isnan(x) else float(x)


def signal_status(result: StepResult, b: int, s: int) -> SignalStatus:
    """Inconclusive (warming up included: ``warming_up`` says which), Breach (severity above
    0, including missing data under onMissingData Breach) or Ok."""
    if result.inconclusive[b, s]:
        return "Inconclusive"
    return "Breach" if result.severity[b, s] > 0 else "Ok"


def explain_signal(policy: EffectivePolicy, result: StepResult, b: int, s: int) -> str:
    """The explanation of one signal's severity for member ``b``."""
    return explain(
        policy.signals[s],
        value=float(result.value[b, s]),
        lower=float(result.lower[b, s]),
        upper=float(result.upper[b, s]),
        count=int(result.count[b, s]),
        # The newest samples are tested on their own count (evaluation.recentSamples).
        min_samples=(
            policy.evaluation.recent_samples or policy.evaluation.min_samples
            if bool(result.recent[b, s])
            else policy.evaluation.min_samples
        ),
        confidence=paired_confidence(policy),
        severity=float(result.severity[b, s]),
        newest=bool(result.recent[b, s]),
        warming_up=bool(result.warming_up[b, s]),
    )


def signal_evidence(
    policy: EffectivePolicy,
    result: StepResult,
    b: int,
    *,
    samples: Sequence[Samples | None],
    queries: Sequence[str],
) -> list[SignalEvidence]:
    """Per signal: the rendered query, the samples used (None: the query failed), the numbers
    and how the severity was reached."""
    if len(samples) != len(policy.signals) or len(queries) != len(policy.signals):
        raise ValueError("samples and queries need one entry per policy signal")
    out: list[SignalEvidence] = []
    for s, signal in enumerate(policy.signals):
        out.append(
            SignalEvidence(
                name=signal.name,
                query=queries[s],
                window=policy.evaluation.window,
                samples=samples[s] or _EMPTY,
                status=signal_status(result, b, s),
                value=optional(float(result.value[b, s])),
                lower=optional(float(result.lower[b, s])),
                upper=optional(float(result.upper[b, s])),
                objective=signal.objective,
                margin=signal.margin,
                critical=signal.critical,
                on_missing_data=signal.on_missing_data,
                severity=float(result.severity[b, s]),
                message=explain_signal(policy, result, b, s),
                warming_up=bool(result.warming_up[b, s]),
            )
        )
    return out


def impact_evidence(
    policy: EffectivePolicy, result: StepResult, b: int, *, business: Business | None
) -> ImpactEvidence:
    """The score, its categories, the key signals that forced it to 1 (if any) and, when the
    business figures allow, the money at risk."""
    score = float(result.score[b])
    if math.isnan(score):
        raise ValueError("impact evidence needs a known score; every signal was Inconclusive")
    categories = [float(v) for v in result.category_severity[b]]
    model = ImpactModel.of(policy)
    breached = key_breaches(model, result.severity[b], result.inconclusive[b])
    return ImpactEvidence(
        score=score,
        categories=[
            CategoryImpact(name=c.name, weight=c.weight, severity=categories[i])
            for i, c in enumerate(policy.impact.categories)
        ],
        money_at_risk=money_at_risk(model, categories, business),
        forced_by=[s.name for i, s in enumerate(policy.signals) if breached[i]],
    )


def last_evaluation(
    policy: EffectivePolicy, result: StepResult, b: int, *, now: float
) -> LastEvaluation:
    """``status.lastEvaluation`` of member ``b``."""
    score = optional(float(result.score[b]))
    return LastEvaluation(
        time=to_datetime(now),
        score=score,
        score_text=score_text(score),
        signals=[
            SignalEvaluation(
                name=signal.name,
                status=signal_status(result, b, s),
                value=optional(float(result.value[b, s])),
                lower=optional(float(result.lower[b, s])),
                upper=optional(float(result.upper[b, s])),
                samples=int(result.count[b, s]),
                severity=float(result.severity[b, s]),
                message=explain_signal(policy, result, b, s),
                warming_up=bool(result.warming_up[b, s]),
            )
            for s, signal in enumerate(policy.signals)
        ],
        categories=[
            CategoryEvaluation(name=c.name, severity=float(result.category_severity[b, i]))
            for i, c in enumerate(policy.impact.categories)
        ],
    )
