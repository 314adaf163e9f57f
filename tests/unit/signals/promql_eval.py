"""A small PromQL evaluator over in-memory series, for the unit tests that prove a batched
query gives every deployment exactly what its own query gives. It knows the functions,
aggregations and operators those tests use, with Prometheus' label rules (the metric name
dropped by functions and arithmetic, ``by``/``without``, ``on``/``ignoring``,
``group_left``/``right``, ``label_replace`` with Go-style ``$1`` and ``${name}``)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import promql_parser as pp

from rollguard.signals.measure import range_grid
from rollguard.signals.prometheus import Series
from rollguard.signals.promql import plan, render

Labels = tuple[tuple[str, str], ...]
Vector = list[tuple[Labels, float]]
Data = dict[Labels, list[tuple[float, float]]]
LOOKBACK = 300.0
_GO_GROUP = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _matches(labels: dict[str, str], m: Any) -> bool:
    value, op = labels.get(m.name, ""), str(m.op).rsplit(".", 1)[-1]
    if op == "Equal":
        return bool(value == m.value)
    if op == "NotEqual":
        return bool(value != m.value)
    found = re.fullmatch(m.value, value) is not None
    return found if op == "Re" else not found


def _select(
    data: Data, vs: Any, t: float, window: float
) -> list[tuple[Labels, list[tuple[float, float]]]]:
    at = vs.at.at.timestamp() if vs.at is not None else t
    at -= vs.offset.total_seconds() if vs.offset is not None else 0.0
    out = []
    for labels, samples in data.items():
        d = dict(labels)
        if vs.name and d["__name__"] != vs.name:
            continue
        if all(_matches(d, m) for m in vs.matchers.matchers):
            out.append((labels, [(ts, v) for ts, v in samples if at - window < ts <= at]))
    return out


def _drop(labels: Labels, *names: str) -> Labels:
    return tuple((k, v) for k, v in labels if k not in names and k != "__name__")


def _group(labels: Labels, by: tuple[str, ...] | None, without: tuple[str, ...]) -> Labels:
    return (
        tuple((k, v) for k, v in labels if k in by) if by is not None else _drop(labels, *without)
    )


def _hq(q: float, vec: Vector) -> Vector:
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for labels, v in vec:
        le = float(dict(labels)["le"])
        groups.setdefault(_drop(labels, "le"), []).append((le, v))
    out = []
    for labels, buckets in groups.items():
        buckets.sort()
        rank, prev_le, prev_c = q * buckets[-1][1], 0.0, 0.0
        for le, c in buckets:
            if c >= rank:
                upper = buckets[-2][0] if math.isinf(le) else le
                out.append(
                    (labels, prev_le + (upper - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12))
                )
                break
            prev_le, prev_c = le, c
    return out


AGG: dict[str, Callable[[list[float]], float]] = {
    "sum": sum, "max": max, "min": min, "count": len, "avg": lambda xs: sum(xs) / len(xs),
}  # fmt: skip
OPS: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else math.nan, ">": lambda a, b: float(a > b),
    "<": lambda a, b: float(a < b),
}  # fmt: skip


def evaluate(data: Data, e: Any, t: float) -> Any:
    """The value of parsed expression ``e`` at time ``t`` over ``data``."""
    if isinstance(e, pp.NumberLiteral | pp.StringLiteral):
        return e.val
    if isinstance(e, pp.ParenExpr):
        return evaluate(data, e.expr, t)
    if isinstance(e, pp.UnaryExpr):
        x = evaluate(data, e.expr, t)
        return -x if isinstance(x, float) else [(_drop(lb), -v) for lb, v in x]
    if isinstance(e, pp.VectorSelector):
        return [(lb, s[-1][1]) for lb, s in _select(data, e, t, LOOKBACK) if s]
    if isinstance(e, pp.MatrixSelector):
        return _select(data, e.vector_selector, t, e.range.total_seconds())
    if isinstance(e, pp.SubqueryExpr):
        assert e.step is not None and e.range is not None, "test queries give both"
        step, rng = e.step.total_seconds(), e.range.total_seconds()
        times = [k * step for k in range(int((t - rng) // step) + 1, int(t // step) + 1)]
        series: dict[Labels, list[tuple[float, float]]] = {}
        for ts in times:
            for lb, v in evaluate(data, e.expr, ts):
                series.setdefault(lb, []).append((ts, v))
        return list(series.items())
    if isinstance(e, pp.Call):
        return _call(e.func.name, [evaluate(data, a, t) for a in e.args])
    if isinstance(e, pp.AggregateExpr):
        mod = e.modifier
        by = tuple(mod.labels) if mod is not None and str(mod.type).endswith("By") else None
        without = tuple(mod.labels) if mod is not None and by is None else ()
        by = () if mod is None else by
        groups: dict[Labels, list[float]] = {}
        for lb, v in evaluate(data, e.expr, t):
            groups.setdefault(_group(lb, by, without), []).append(v)
        return [(lb, AGG[str(e.op)](vs)) for lb, vs in groups.items()]
    return _binary(e, evaluate(data, e.lhs, t), evaluate(data, e.rhs, t))


def _call(name: str, args: list[Any]) -> Any:
    if name == "vector":
        return [((), float(args[0]))]
    if name == "scalar":
        return float(args[0][0][1]) if len(args[0]) == 1 else math.nan
    if name == "label_replace":
        vec, dst, replacement, src, regex = args
        template = _GO_GROUP.sub(lambda m: f"\\g<{m.group(1) or m.group(2)}>", replacement)
        out = []
        for lb, v in vec:
            found = re.fullmatch(regex, dict(lb).get(src, ""))
            if found is None:
                out.append((lb, v))
                continue
            value = found.expand(template)
            rest = {k: x for k, x in lb if k != dst}
            out.append((tuple(sorted({**rest, **({dst: value} if value else {})}.items())), v))
        return out
    if name == "histogram_quantile":
        return _hq(args[0], args[1])
    if name == "abs":
        return [(_drop(lb), abs(v)) for lb, v in args[0]]
    fn: Callable[[list[tuple[float, float]]], float] = {
        "rate": lambda s: (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0]),
        "increase": lambda s: s[-1][1] - s[0][1],
        "avg_over_time": lambda s: sum(v for _, v in s) / len(s),
        "max_over_time": lambda s: max(v for _, v in s),
    }[name]
    return [(_drop(lb), fn(s)) for lb, s in args[0] if len(s) > 1]


def _binary(e: Any, lhs: Any, rhs: Any) -> Any:
    op, mod = str(e.op), e.modifier
    if isinstance(lhs, float) and isinstance(rhs, float):
        return OPS[op](lhs, rhs)
    if isinstance(lhs, float) or isinstance(rhs, float):
        vec, scalar = (rhs, lhs) if isinstance(lhs, float) else (lhs, rhs)
        out = []
        for lb, v in vec:
            a, b = (scalar, v) if isinstance(lhs, float) else (v, scalar)
            r = OPS[op](a, b)
            if op in "<>" and not (mod is not None and mod.return_bool):
                if r:
                    out.append((lb, v))
            else:
                out.append((_drop(lb), r))
        return out
    matching = mod.matching if mod is not None else None
    on = matching is not None and str(matching.type).endswith("Include")
    names = tuple(matching.labels) if matching is not None else ()

    def sig(lb: Labels) -> Labels:
        return tuple((k, v) for k, v in lb if k in names) if on else _drop(lb, *names)

    if op in ("and", "or", "unless"):
        rsigs = {sig(lb) for lb, _ in rhs}
        if op == "and":
            return [(lb, v) for lb, v in lhs if sig(lb) in rsigs]
        if op == "unless":
            return [(lb, v) for lb, v in lhs if sig(lb) not in rsigs]
        lsigs = {sig(lb) for lb, _ in lhs}
        return lhs + [(lb, v) for lb, v in rhs if sig(lb) not in lsigs]
    card = str(mod.card).rsplit(".", 1)[-1] if mod is not None else "OneToOne"
    many, one = (rhs, lhs) if card == "OneToMany" else (lhs, rhs)
    ones = {sig(lb): (lb, v) for lb, v in one}
    if len(ones) < len(one):
        raise ValueError("many-to-many matching not allowed: matching labels must be unique")
    if card == "OneToOne":
        matched = [sig(lb) for lb, _ in many if sig(lb) in ones]
        if len(set(matched)) < len(matched):
            raise ValueError("multiple matches for labels: many-to-one matching must be explicit")
    out = []
    for lb, v in many:
        if sig(lb) not in ones:
            continue
        olb, ov = ones[sig(lb)]
        a, b = (ov, v) if card == "OneToMany" else (v, ov)
        if card == "OneToOne":
            result = sig(lb) if on else _drop(lb, *names)
        else:
            extra = dict(olb)
            result = tuple(
                sorted(
                    {
                        **dict(_drop(lb)),
                        **{k: extra[k] for k in mod.group_labels if k in extra},
                    }.items()
                )
            )
        out.append((result, OPS[op](a, b)))
    return out


def split_equals_alone(data: Data, query: str, targets: list[Any], times: list[float]) -> int:
    """Assert that ``query``'s batches, evaluated over ``data`` and split by the plan's keys,
    give every target exactly the series and values its own query gives; return how many
    series were compared (a test should see data)."""
    p = plan(query)
    assert p.batched, p.reason
    keys = p.key_labels
    found = 0
    for t in times:
        for batch in p.batches(targets):
            result = evaluate(data, pp.parse(batch.query), t)
            for index in batch.members:
                target = targets[index]
                own = render(
                    query,
                    namespace=target.namespace,
                    deployment=target.deployment,
                    revision=target.revision,
                )
                alone = evaluate(data, pp.parse(own), t)
                assert not isinstance(alone, float), "a batchable query returns series"
                want = p.key(target)
                mine = sorted(
                    (_drop(lb, *keys), v)
                    for lb, v in result
                    if tuple(dict(lb).get(k, "") for k in keys) == want
                )
                expected = sorted((_drop(lb, *keys), v) for lb, v in alone)
                where = f"{target} at {t}: {batch.query}"
                assert [lb for lb, _ in mine] == [lb for lb, _ in expected], where
                got, wanted = [v for _, v in mine], [v for _, v in expected]
                assert all(
                    math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b)
                    for a, b in zip(got, wanted, strict=True)
                ), where
                found += len(expected)
    return found


class EvalSource:
    """A ``monitoring.prometheus.Source`` that evaluates range queries over ``data`` with
    ``evaluate``, at the times Prometheus would (``measure.range_grid``), NaN samples left
    out and counted as the real client does."""

    def __init__(self, data: Data) -> None:
        self.data = data
        self.sent: list[str] = []

    def query_range(self, *, query: str, start: float, end: float, step: float) -> list[Series]:
        self.sent.append(query)
        tree = pp.parse(query)
        points: dict[Labels, list[tuple[float, float]]] = {}
        for t in range_grid(start, end, step).tolist():
            result = evaluate(self.data, tree, t)
            vector = [((), result)] if isinstance(result, float) else result
            for labels, value in vector:
                points.setdefault(labels, []).append((t, value))
        out = []
        for labels, samples in points.items():
            times = np.array([t for t, _ in samples], dtype=np.float64)
            values = np.array([v for _, v in samples], dtype=np.float64)
            finite = np.isfinite(values)
            out.append(
                Series(
                    labels={k: v for k, v in labels if k != "__name__"},
                    timestamps=times[finite],
                    values=values[finite],
                    dropped=int((~finite).sum()),
                    dropped_at=times[~finite],
                )
            )
        return out
