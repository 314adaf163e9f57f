"""Signal queries: validate them, render them for one deployment, plan them for a batch.

PURE (no I/O). The policy handler calls ``plan`` (which validates) when a RollbackPolicy
changes: an ``InvalidQuery`` becomes the policy's ``Invalid`` condition with the parser's
message, and ``BatchPlan.status`` goes into ``status.queries``. ``rollguard.monitoring.measure``
then calls ``BatchPlan.render`` once per signal per cycle, or ``render`` per deployment when
a query cannot be batched (the rewrite itself lives in ``promql_batch``).

Users write each query for ONE deployment with the placeholders ``$namespace``,
``$deployment`` and ``$revision``, which may only appear inside label-matcher values.
Rendering never splices text: the query is parsed with ``promql_parser`` (placeholders as
inert stand-ins), the values are put into the tree and the tree is printed with every string
escaped, so no label value can end its string. In regex matchers a value is also
regex-escaped, so it matches itself only.

A batched template has its pinned matchers (``namespace="$namespace"``,
``deployment="$deployment"``) widened to regex matchers over the batch's namespaces and
names. That selects their cross product (``ns-b/web`` when ``ns-a/web`` and ``ns-b/api`` are
targets), which is harmless: the rewrite never mixes deployments, and the measuring layer
keeps only the targets' series.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import promql_parser as pp

from rollguard.api.policy import QueryMode, QueryPlan
from rollguard.monitoring import promql_ast as ast
from rollguard.monitoring.promql_ast import (
    DUMMY,
    PLACEHOLDERS,
    Node,
    UnsupportedQueryError,
    restore,
)
from rollguard.monitoring.promql_batch import BATCH_LABELS, NotBatchableError, rewrite

__all__ = ["PLACEHOLDERS", "BatchPlan", "InvalidQuery", "plan", "render", "validate"]

_PLACEHOLDER = re.compile(r"\$(namespace|deployment|revision)(?![A-Za-z0-9_])")
_BRACED = re.compile(r"\$\{(namespace|deployment|revision)\}")
_REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


class InvalidQuery(ValueError):  # noqa: N818 - the name the handlers and docs use
    """The query is not valid PromQL (the message is the parser's) or misuses a placeholder."""


@dataclass(frozen=True)
class BatchPlan:
    """How one signal query runs: ``Batched`` (one query for many deployments) or
    ``PerDeployment`` (``reason`` says why, in words for the policy's status)."""

    query: str
    mode: QueryMode
    reason: str = ""
    template: Node | None = field(default=None, repr=False, compare=False)

    @property
    def batched(self) -> bool:
        return self.mode == "Batched"

    def render(self, targets: Sequence[tuple[str, str]]) -> str:
        """The batched query for ``(namespace, deployment)`` targets; split its result by the
        ``namespace`` and ``deployment`` labels of each series."""
        if self.template is None:
            raise ValueError(f"this query runs per deployment: {self.reason}")
        if not targets:
            raise ValueError("a batch needs at least one target")
        values = {
            "namespace": sorted({_non_empty("namespace", ns) for ns, _ in targets}),
            "deployment": sorted({_non_empty("deployment", d) for _, d in targets}),
        }
        return ast.to_promql(_map_selectors(self.template, lambda s: _widen(s, values)))

    def render_one(self, *, namespace: str, deployment: str, revision: str = "") -> str:
        """The query for one deployment: what its share of a batched result equals."""
        return render(self.query, namespace=namespace, deployment=deployment, revision=revision)

    def status(self, signal: str) -> QueryPlan:
        """The entry for ``RollbackPolicy.status.queries``."""
        return QueryPlan(signal=signal, mode=self.mode, message=self.reason)


def validate(query: str) -> None:
    """Raise ``InvalidQuery`` unless ``query`` is valid PromQL with well-placed placeholders
    whose result a range query can return (an instant vector or a scalar)."""
    kind = ast.kind_of(_template(query))
    if kind == "string":
        raise InvalidQuery("the query returns a string; it must return an instant vector")
    if kind == "matrix":
        raise InvalidQuery(
            "the query returns a range vector; wrap it in a function such as rate() or "
            "avg_over_time() so that it returns an instant vector"
        )


def render(query: str, *, namespace: str, deployment: str, revision: str = "") -> str:
    """The query for one deployment, placeholders filled with escaped label values."""
    tree = _template(query)
    values = {"namespace": namespace, "deployment": deployment, "revision": revision}
    text = ast.to_promql(tree)
    for name in PLACEHOLDERS:
        if DUMMY[name] in text:
            _non_empty(name, values[name])

    def fill(matcher: ast.Matcher) -> ast.Matcher:
        regex = matcher.op in ("=~", "!~")
        value = matcher.value
        for name, dummy in DUMMY.items():
            if dummy in value:
                value = value.replace(dummy, _regex_escape(values[name]) if regex else values[name])
        return replace(matcher, value=value)

    def fill_selector(s: ast.Selector) -> ast.Selector:
        return replace(
            s,
            matchers=tuple(fill(m) for m in s.matchers),
            or_groups=tuple(tuple(fill(m) for m in g) for g in s.or_groups),
        )

    return ast.to_promql(_map_selectors(tree, fill_selector))


def plan(query: str) -> BatchPlan:
    """Validate ``query`` (raising ``InvalidQuery``) and decide how it runs."""
    validate(query)
    try:
        template = rewrite(_template(query))
    except NotBatchableError as why:
        return BatchPlan(query, "PerDeployment", str(why))
    return BatchPlan(query, "Batched", "", template)


@lru_cache(maxsize=1024)
def _template(query: str) -> Node:
    """The parsed query with placeholders as stand-ins; checks where they are."""
    braced = _BRACED.search(query)
    if braced:
        name = braced.group(1)
        raise InvalidQuery(f"write ${name}, not ${{{name}}}: braces are not placeholder syntax")
    _check_outside_strings(query)
    text = _PLACEHOLDER.sub(lambda m: DUMMY[m.group(1)], query)
    try:
        tree = ast.convert(pp.parse(text))
    except ValueError as err:  # promql_parser reports syntax errors as ValueError
        raise InvalidQuery(restore(str(err))) from None
    except UnsupportedQueryError as err:
        raise InvalidQuery(str(err)) from None
    except BaseException as err:
        # The Rust parser signals a few inputs by panicking (PanicException, a BaseException).
        if type(err).__name__ != "PanicException":
            raise
        raise InvalidQuery(f"the PromQL parser failed on this query: {err}") from None
    for node in ast.walk(tree):
        _check_placement(node)
    return tree


def _check_outside_strings(query: str) -> None:
    """Refuse a placeholder outside any string (a label name, a duration, ...) before the
    parser reports it as a puzzling syntax error about the stand-in."""
    i = 0
    while i < len(query):
        ch = query[i]
        if ch in "\"'`":
            end = i + 1
            while end < len(query) and query[end] != ch:
                end += 2 if ch != "`" and query[end] == "\\" else 1
            i = end + 1
        elif ch == "#":
            newline = query.find("\n", i)
            i = len(query) if newline < 0 else newline
        else:
            found = _PLACEHOLDER.match(query, i)
            if found:
                name = found.group(1)
                raise InvalidQuery(
                    f"${name} may only appear inside a label matcher value, like "
                    f'{{{name}="${name}"}}'
                )
            i += 1


def _check_placement(node: Node) -> None:
    """Placeholders outside matcher values (label names, metric names, strings) are refused."""
    texts: list[str] = []
    if isinstance(node, ast.Selector):
        texts.append(node.name or "")
        texts += [m.name for m in node.matchers] + [m.name for g in node.or_groups for m in g]
    elif isinstance(node, ast.String):
        texts.append(node.value)
    elif isinstance(node, ast.Aggregate):
        texts += node.labels
    elif isinstance(node, ast.Binary):
        texts += [*node.match_labels, *node.group_labels]
    elif isinstance(node, ast.Call):
        texts.append(node.name)
    for text in texts:
        for name, dummy in DUMMY.items():
            if dummy in text:
                raise InvalidQuery(
                    f"${name} may only appear inside a label matcher value, like "
                    f'{{{name}="${name}"}}; found in {restore(text)!r}'
                )


def _non_empty(label: str, value: str) -> str:
    # An empty value would match series WITHOUT the label, i.e. other deployments' series.
    if not value:
        raise ValueError(f"{label} must not be empty")
    return value


def _regex_escape(value: str) -> str:
    """Escape RE2 metacharacters so a value matches itself only (Prometheus anchors regexes)."""
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def _map_selectors(node: Node, fn: Callable[[ast.Selector], ast.Selector]) -> Node:
    if isinstance(node, ast.Selector):
        return fn(node)
    if isinstance(node, ast.Matrix):
        return replace(node, selector=fn(node.selector))
    if isinstance(node, ast.Subquery | ast.Unary | ast.Paren):
        return replace(node, expr=_map_selectors(node.expr, fn))
    if isinstance(node, ast.Call):
        return replace(node, args=tuple(_map_selectors(a, fn) for a in node.args))
    if isinstance(node, ast.Aggregate):
        param = None if node.param is None else _map_selectors(node.param, fn)
        return replace(node, expr=_map_selectors(node.expr, fn), param=param)
    if isinstance(node, ast.Binary):
        return replace(node, lhs=_map_selectors(node.lhs, fn), rhs=_map_selectors(node.rhs, fn))
    return node


def _widen(selector: ast.Selector, values: dict[str, list[str]]) -> ast.Selector:
    """Pinned matchers of a batched template become matchers over the batch's values."""

    def one(m: ast.Matcher) -> ast.Matcher:
        if m.name in BATCH_LABELS and m.value == DUMMY[m.name]:
            batch = values[m.name]
            if len(batch) == 1:
                return ast.Matcher(m.name, "=", batch[0])
            return ast.Matcher(m.name, "=~", "|".join(_regex_escape(v) for v in batch))
        return m

    return replace(selector, matchers=tuple(one(m) for m in selector.matchers))


def lookback_seconds(query: str) -> float:
    """How far back one evaluation of ``query`` reaches beyond its own timestamp: along every
    path of the tree, its ranges, subquery ranges and offsets add up (nesting), and the
    deepest path counts (siblings such as the two sides of a ratio do not add). After a
    rollback, a sample is free of the old revision only once this much time has passed."""
    return _reach_ms(_template(query)) / 1000.0


def _reach_ms(node: ast.Node) -> int:
    if isinstance(node, ast.Selector):
        return max(node.offset_ms or 0, 0)
    if isinstance(node, ast.Matrix):
        return node.range_ms + _reach_ms(node.selector)
    if isinstance(node, ast.Subquery):
        return node.range_ms + max(node.offset_ms or 0, 0) + _reach_ms(node.expr)
    return max((_reach_ms(child) for child in ast.children(node)), default=0)
