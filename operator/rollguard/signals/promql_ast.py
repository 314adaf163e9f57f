"""A small, immutable PromQL syntax tree: frozen dataclasses (``Selector``, ``Call``,
``Binary``...), what an expression evaluates to (``kind_of``) and how to walk one, with the
stand-ins that hold ``$namespace``, ``$deployment`` and ``$revision`` in a parsed template.

Why not rewrite ``promql_parser``'s tree directly: its node attributes are returned as copies
(assigning to ``node.modifier.labels`` changes nothing), its own ``str()`` does not escape
string values (``x{a="q\\""}`` prints as ``x{a="q""}``), drops milliseconds from durations
and cannot print ``or`` matchers, and reading a negative ``@`` time panics inside the Rust
extension. So ``rollguard.signals.promql`` parses with ``promql_parser``, converts the tree
into these dataclasses once (``promql_convert``), rewrites them with ``dataclasses.replace``
and prints the result with ``promql_print``, which escapes every string it writes. PURE; used
by the ``promql*`` modules only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

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


def words(text: str) -> frozenset[str]:
    """The set of space-separated words in ``text`` (keeps long name lists readable)."""
    return frozenset(text.split())
