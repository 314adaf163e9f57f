"""Whole-query forms the batch rewrite recognises: a default where there is no data
(``X or vector(c)``), expressions whose series certainly carry no labels, and subtrees that
name no deployment (a fleet-wide baseline).

PURE; used by ``promql_batch`` only, on templates whose placeholders are stand-ins.
"""

from __future__ import annotations

from rollguard.signals import promql_ast as ast
from rollguard.signals.promql_ast import DUMMY, Node, kind_of, words
from rollguard.signals.promql_keys import NotBatchableError


def keyed(node: Node) -> bool:
    """Whether a selector under ``node`` names the deployment (holds a placeholder)."""
    for sub in ast.walk(node):
        matchers = (
            [*sub.matchers, *(m for g in sub.or_groups for m in g)]
            if isinstance(sub, ast.Selector)
            else []
        )
        if any(d in m.value for m in matchers for d in DUMMY.values()):
            return True
    return False


def has_series(node: Node) -> bool:
    """Whether ``node`` reads any series at all."""
    return any(isinstance(sub, ast.Selector) for sub in ast.walk(node))


def default_value(tree: Node) -> tuple[Node, float | None]:
    """``X or vector(c)`` (or ``or on () vector(c)``) at the top, X's series carrying no
    labels: X, to batch, and c, which the split puts at every step where a target's X has no
    sample (``measure``); anything else unchanged, with no value."""
    node = unwrap(tree)
    if not isinstance(node, ast.Binary) or node.op != "or":
        return tree, None
    rhs = unwrap(node.rhs)
    if not (isinstance(rhs, ast.Call) and rhs.name == "vector" and len(rhs.args) == 1):
        return tree, None
    value = _constant(rhs.args[0])
    anything = node.matching == "on" and not node.match_labels
    if value is None or node.fill_lhs is not None or node.fill_rhs is not None:
        return tree, None
    if node.matching is not None and not anything:
        return tree, None
    if not labelless(node.lhs):
        raise NotBatchableError(
            "'or vector(...)' is batched only after a sum without 'by', whose series carry "
            "no labels: otherwise the two may be separate series"
        )
    return node.lhs, value


def unwrap(node: Node) -> Node:
    while isinstance(node, ast.Paren):
        node = node.expr
    return node


def _constant(node: Node) -> float | None:
    node = unwrap(node)
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.Unary):
        inner = _constant(node.expr)
        return None if inner is None else -inner
    return None


_LABEL_KEEPING = words("abs ceil floor round exp ln log2 log10 sqrt sgn clamp clamp_min clamp_max")


def labelless(node: Node) -> bool:
    """Whether the series of ``node`` certainly carry no labels (``sum(...)`` and what is
    computed from such sums alone)."""
    node = unwrap(node)
    if isinstance(node, ast.Unary):
        return labelless(node.expr)
    if isinstance(node, ast.Aggregate):
        return node.grouping is None or (node.grouping == "by" and not node.labels)
    if isinstance(node, ast.Call):
        vectors = [a for a in node.args if kind_of(a) == "vector"]
        if node.name == "histogram_quantile" and len(vectors) == 1:
            inner = unwrap(vectors[0])
            return (
                isinstance(inner, ast.Aggregate)
                and inner.grouping == "by"
                and set(inner.labels) <= {"le"}
            )
        return node.name in _LABEL_KEEPING and len(vectors) == 1 and labelless(vectors[0])
    if isinstance(node, ast.Binary) and node.op not in ("and", "or", "unless"):
        sides = [s for s in (node.lhs, node.rhs) if kind_of(s) != "scalar"]
        return bool(sides) and all(labelless(s) for s in sides)
    return False
