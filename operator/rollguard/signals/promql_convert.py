"""Our PromQL tree (``promql_ast``) from ``promql_parser``'s: the only module that reads the
parser's nodes, whose enums are not Python enums and whose ``@`` times may panic inside the
Rust extension (refused as ``UnsupportedQueryError``).

PURE. Called by ``rollguard.signals.promql`` (every query is parsed, then converted once) and
by tests.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import promql_parser as pp

from rollguard.signals.promql_ast import (
    Aggregate,
    At,
    Binary,
    Call,
    Card,
    Grouping,
    Kind,
    Matcher,
    Matching,
    Matrix,
    Node,
    Number,
    Paren,
    Selector,
    String,
    Subquery,
    Unary,
    UnsupportedQueryError,
)

_MATCH_OPS: dict[str, Literal["=", "!=", "=~", "!~"]] = {
    "Equal": "=",
    "NotEqual": "!=",
    "Re": "=~",
    "NotRe": "!~",
}
_CARDS: dict[str, Card] = {
    "OneToOne": "one-to-one",
    "ManyToOne": "many-to-one",
    "OneToMany": "one-to-many",
    "ManyToMany": "many-to-many",
}
_KINDS: dict[str, Kind] = {
    "Scalar": "scalar",
    "String": "string",
    "Vector": "vector",
    "Matrix": "matrix",
}


def _name(member: object) -> str:
    # promql_parser's enums are not Python enums: no ``.name``, but str() is "Type.Member".
    return str(member).rsplit(".", 1)[-1]


def _ms(delta: timedelta | None) -> int | None:
    if delta is None:
        return None
    return round(delta / timedelta(milliseconds=1))


def _at(modifier: pp.AtModifier | None) -> At | None:
    if modifier is None:
        return None
    kind = _name(modifier.type)
    if kind == "Start":
        return At("start")
    if kind == "End":
        return At("end")
    try:
        when = modifier.at
    except BaseException as err:
        # pyo3 raises PanicException (a BaseException) converting a time before 1970; only
        # that one is turned into a refusal, anything else keeps propagating.
        if type(err).__name__ != "PanicException":
            raise
        raise UnsupportedQueryError("an @ time before 1970 is not supported") from None
    if when is None:
        raise UnsupportedQueryError("an @ modifier without a time")
    return At("time", when.timestamp())


def _matchers(items: list[pp.Matcher]) -> tuple[Matcher, ...]:
    return tuple(Matcher(m.name, _MATCH_OPS[_name(m.op)], m.value) for m in items)


def _selector(node: pp.VectorSelector) -> Selector:
    return Selector(
        name=node.name,
        matchers=_matchers(node.matchers.matchers),
        or_groups=tuple(_matchers(group) for group in node.matchers.or_matchers),
        offset_ms=_ms(node.offset),
        at=_at(node.at),
    )


def convert(expr: pp.Expr) -> Node:
    """Our tree for a ``promql_parser`` expression."""
    if isinstance(expr, pp.NumberLiteral):
        return Number(expr.val)
    if isinstance(expr, pp.StringLiteral):
        return String(expr.val)
    if isinstance(expr, pp.VectorSelector):
        return _selector(expr)
    if isinstance(expr, pp.MatrixSelector):
        return Matrix(_selector(expr.vector_selector), _ms(expr.range) or 0)
    if isinstance(expr, pp.SubqueryExpr):
        return Subquery(
            convert(expr.expr), _ms(expr.range) or 0, _ms(expr.step), _ms(expr.offset), _at(expr.at)
        )
    if isinstance(expr, pp.Call):
        return Call(
            expr.func.name,
            tuple(convert(a) for a in expr.args),
            _KINDS[_name(expr.func.return_type)],
        )
    if isinstance(expr, pp.AggregateExpr):
        mod = expr.modifier
        grouping: Grouping | None = None
        if mod is not None:
            grouping = "by" if _name(mod.type) == "By" else "without"
        return Aggregate(
            op=str(expr.op).lower(),
            expr=convert(expr.expr),
            param=convert(expr.param) if expr.param is not None else None,
            grouping=grouping,
            labels=tuple(mod.labels) if mod is not None else (),
        )
    if isinstance(expr, pp.BinaryExpr):
        return _binary(expr)
    if isinstance(expr, pp.UnaryExpr):
        return Unary(convert(expr.expr))
    if isinstance(expr, pp.ParenExpr):
        return Paren(convert(expr.expr))
    raise UnsupportedQueryError(f"unknown PromQL node {type(expr).__name__}")


def _binary(expr: pp.BinaryExpr) -> Binary:
    lhs, rhs, op = convert(expr.lhs), convert(expr.rhs), str(expr.op).lower()
    mod = expr.modifier
    if mod is None:
        return Binary(op, lhs, rhs)
    matching: Matching | None = None
    labels: tuple[str, ...] = ()
    if mod.matching is not None:
        matching = "on" if _name(mod.matching.type) == "Include" else "ignoring"
        labels = tuple(mod.matching.labels)
    fill = mod.fill_values
    return Binary(
        op,
        lhs,
        rhs,
        return_bool=bool(mod.return_bool),
        matching=matching,
        match_labels=labels,
        card=_CARDS[_name(mod.card)],
        group_labels=tuple(mod.group_labels or ()),
        fill_lhs=fill.lhs if fill is not None else None,
        fill_rhs=fill.rhs if fill is not None else None,
    )
