"""A small, immutable PromQL syntax tree, converted from ``promql_parser``'s, and its printer.

Why not rewrite ``promql_parser``'s tree directly: its node attributes are returned as copies
(assigning to ``node.modifier.labels`` changes nothing), its own ``str()`` does not escape
string values (``x{a="q\\""}`` prints as ``x{a="q""}``), drops milliseconds from durations
and cannot print ``or`` matchers, and reading a negative ``@`` time panics inside the Rust
extension. So ``rollguard.signals.promql`` parses with ``promql_parser``, converts the tree
into these frozen dataclasses once, rewrites them with ``dataclasses.replace`` and prints the
result with ``to_promql``, which escapes every string it writes. PURE; used by ``promql`` and
``promql_batch`` only.

The printer follows the tree exactly (parentheses are ``Paren`` nodes, as the parser keeps
them), so printing an unmodified tree yields text that parses back to an equal tree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import promql_parser as pp

Kind = Literal["scalar", "string", "vector", "matrix"]

PLACEHOLDERS = ("namespace", "deployment", "revision")
# Stand-ins for $namespace, $deployment, $revision in a parsed template. The parser accepts
# them anywhere an identifier or a string goes, so a misplaced placeholder is found in the
# tree and reported by name rather than as a puzzling syntax error.
STAND_IN = "__rollguard_placeholder_"
DUMMY = {name: f"{STAND_IN}{name}__" for name in PLACEHOLDERS}


def restore(text: str) -> str:
    """Text with the stand-ins turned back into ``$namespace`` etc., for messages (braced,
    ``${namespace}``, where a letter, digit or ``_`` follows)."""
    for name, dummy in DUMMY.items():
        text = re.sub(re.escape(dummy) + "(?=[A-Za-z0-9_])", f"${{{name}}}", text).replace(
            dummy, f"${name}"
        )
    return text


Grouping = Literal["by", "without"]
Matching = Literal["on", "ignoring"]
Card = Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]


class UnsupportedQueryError(ValueError):
    """The parser accepted the query but it cannot be represented (a negative ``@`` time)."""


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str


@dataclass(frozen=True, slots=True)
class At:
    kind: Literal["start", "end", "time"]
    time: float | None = None  # Unix seconds when kind == "time"


@dataclass(frozen=True, slots=True)
class Number:
    value: float


@dataclass(frozen=True, slots=True)
class String:
    value: str


@dataclass(frozen=True, slots=True)
class Selector:
    name: str | None
    matchers: tuple[Matcher, ...]
    or_groups: tuple[tuple[Matcher, ...], ...] = ()
    offset_ms: int | None = None
    at: At | None = None


@dataclass(frozen=True, slots=True)
class Matrix:
    selector: Selector
    range_ms: int


@dataclass(frozen=True, slots=True)
class Subquery:
    expr: Node
    range_ms: int
    step_ms: int | None
    offset_ms: int | None = None
    at: At | None = None


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    returns: Kind


@dataclass(frozen=True, slots=True)
class Aggregate:
    op: str
    expr: Node
    param: Node | None = None
    grouping: Grouping | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool = False
    matching: Matching | None = None
    match_labels: tuple[str, ...] = ()
    card: Card | None = None
    group_labels: tuple[str, ...] = ()
    fill_lhs: float | None = None
    fill_rhs: float | None = None


@dataclass(frozen=True, slots=True)
class Unary:
    expr: Node  # always a minus: the parser drops a unary plus


@dataclass(frozen=True, slots=True)
class Paren:
    expr: Node


Node = Number | String | Selector | Matrix | Subquery | Call | Aggregate | Binary | Unary | Paren


# ------------------------------------------------------------------------------------------
# From promql_parser's tree
# ------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------
# Printing
# ------------------------------------------------------------------------------------------


def words(text: str) -> frozenset[str]:
    """The set of space-separated words in ``text`` (keeps long name lists readable)."""
    return frozenset(text.split())


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Words the lexer reads as keywords: a metric of that name needs braces to stay a selector.
_KEYWORDS = words(
    "and or unless atan2 by without on ignoring group_left group_right bool offset start "
    "end inf nan sum avg count min max group stddev stdvar topk bottomk count_values "
    "quantile limitk limit_ratio fill fill_left fill_right"
)
_UNITS = (
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
)


def quote(value: str) -> str:
    """A PromQL double-quoted string holding exactly ``value``: nothing inside can end it."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def duration(ms: int) -> str:
    """A PromQL duration such as ``1h30m`` or ``-5m`` (offsets may be negative)."""
    if ms == 0:
        return "0s"
    sign, rest, parts = ("-" if ms < 0 else ""), abs(ms), []
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _matcher(m: Matcher) -> str:
    return f"{m.name}{m.op}{quote(m.value)}"


def _modifiers(offset_ms: int | None, at: At | None) -> str:
    out = ""
    if at is not None:
        when = f"{at.kind}()" if at.time is None else f"{at.time:.3f}"
        out += f" @ {when}"
    if offset_ms is not None:
        out += f" offset {duration(offset_ms)}"
    return out


def _selector_text(s: Selector) -> str:
    body = ",".join(_matcher(m) for m in s.matchers)
    if s.or_groups:
        body = " or ".join(",".join(_matcher(m) for m in g) for g in s.or_groups)
    name = s.name or ""
    if body or not name or name.lower() in _KEYWORDS:
        return f"{name}{{{body}}}"
    return name


def _labels(labels: tuple[str, ...]) -> str:
    return "(" + ", ".join(labels) + ")"


def to_promql(node: Node) -> str:
    """PromQL text for a tree; string values are always escaped."""
    if isinstance(node, Number):
        return number(node.value)
    if isinstance(node, String):
        return quote(node.value)
    if isinstance(node, Selector):
        return _selector_text(node) + _modifiers(node.offset_ms, node.at)
    if isinstance(node, Matrix):
        s = node.selector
        return f"{_selector_text(s)}[{duration(node.range_ms)}]{_modifiers(s.offset_ms, s.at)}"
    if isinstance(node, Subquery):
        step = duration(node.step_ms) if node.step_ms is not None else ""
        inner = f"{to_promql(node.expr)}[{duration(node.range_ms)}:{step}]"
        return inner + _modifiers(node.offset_ms, node.at)
    if isinstance(node, Call):
        return f"{node.name}({', '.join(to_promql(a) for a in node.args)})"
    if isinstance(node, Aggregate):
        grouping = f" {node.grouping} {_labels(node.labels)} " if node.grouping else ""
        param = f"{to_promql(node.param)}, " if node.param is not None else ""
        return f"{node.op}{grouping}({param}{to_promql(node.expr)})"
    if isinstance(node, Binary):
        return f"{to_promql(node.lhs)} {node.op}{_binary_modifier(node)} {to_promql(node.rhs)}"
    if isinstance(node, Unary):
        inner = to_promql(node.expr)
        # "--x" would read as one token in some lexers; a space keeps two minus signs apart.
        return f"- {inner}" if inner.startswith("-") else f"-{inner}"
    return f"({to_promql(node.expr)})"


def _binary_modifier(node: Binary) -> str:
    out = " bool" if node.return_bool else ""
    if node.matching is not None:
        out += f" {node.matching} {_labels(node.match_labels)}"
    if node.card == "many-to-one":
        out += f" group_left {_labels(node.group_labels)}"
    elif node.card == "one-to-many":
        out += f" group_right {_labels(node.group_labels)}"
    if node.fill_lhs is not None and node.fill_lhs == node.fill_rhs:
        out += f" fill ({number(node.fill_lhs)})"
    else:
        if node.fill_lhs is not None:
            out += f" fill_left ({number(node.fill_lhs)})"
        if node.fill_rhs is not None:
            out += f" fill_right ({number(node.fill_rhs)})"
    return out


def kind_of(node: Node) -> Kind:
    """What an expression evaluates to."""
    if isinstance(node, Number):
        return "scalar"
    if isinstance(node, String):
        return "string"
    if isinstance(node, Matrix | Subquery):
        return "matrix"
    if isinstance(node, Call):
        return node.returns
    if isinstance(node, Binary):
        kinds = {kind_of(node.lhs), kind_of(node.rhs)}
        return "vector" if "vector" in kinds else "scalar"
    if isinstance(node, Unary | Paren):
        return kind_of(node.expr)
    return "vector"  # Selector, Aggregate


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of a node (selectors count as leaves)."""
    if isinstance(node, Subquery | Unary | Paren):
        return (node.expr,)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Aggregate):
        return (node.expr,) if node.param is None else (node.param, node.expr)
    if isinstance(node, Binary):
        return (node.lhs, node.rhs)
    if isinstance(node, Matrix):
        return (node.selector,)
    return ()


def walk(node: Node) -> list[Node]:
    """Every node of a tree, parents before children."""
    out = [node]
    for child in children(node):
        out.extend(walk(child))
    return out
