"""PromQL text for a tree of ``promql_ast``: ``to_promql``, with the pieces it is made of
(``quote`` for strings, ``duration``, ``number``).

The printer follows the tree exactly (parentheses are ``Paren`` nodes, as the parser keeps
them), so printing an unmodified tree yields text that parses back to an equal tree; every
string it writes is escaped, so nothing inside a label value can end it. PURE. Called by the
``promql*`` modules (a rewritten query is printed for Prometheus, a selector for messages) and
by tests.
"""

from __future__ import annotations

import math

from rollguard.signals.promql_ast import (
    Aggregate,
    At,
    Binary,
    Call,
    Matcher,
    Matrix,
    Node,
    Number,
    Selector,
    String,
    Subquery,
    Unary,
    words,
)

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
