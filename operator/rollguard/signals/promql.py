"""Signal queries: validate them, render them for one deployment, plan them for a batch.

PURE (no I/O). The policy handler calls ``plan`` (which validates) when a RollbackPolicy
changes: an ``InvalidQuery`` becomes the policy's ``Invalid`` condition with the parser's
message, and ``BatchPlan.status`` goes into ``status.queries``. ``rollguard.signals.measure``
then sends ``BatchPlan.batches`` once per signal per cycle (one query for every target, more
only where targets' names could be confused), or ``render`` per deployment when a query
cannot be batched (the rewrite lives in ``promql_batch``, the key labels in ``promql_keys``).

Users write each query for ONE deployment with the placeholders ``$namespace``,
``$deployment`` and ``$revision`` (or ``${namespace}``…, to run one into other text), which
may only appear inside label-matcher values (``promql_placeholders``). Rendering never
splices text: the query is parsed with ``promql_parser`` (placeholders as inert stand-ins),
the values are put into the tree and the tree is printed with every string escaped, so no
label value can end its string. In regex matchers a value is also regex-escaped, so it
matches itself only.

A batched template has its placeholder matchers widened to regex matchers over the batch's
values (``namespace=~"ns-a|ns-b"``, ``pod=~"(?:web|api)-[a-z0-9]+"``). That selects their
cross product (``ns-b/web`` when ``ns-a/web`` and ``ns-b/api`` are targets), which is
harmless: the rewrite never mixes series of different keys, and ``BatchPlan.key`` keeps
each target's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import promql_parser as pp

from rollguard.api.policy import QueryMode, QueryPlan
from rollguard.signals import promql_ast as ast
from rollguard.signals.promql_ast import (
    DUMMY,
    PLACEHOLDERS,
    Node,
    UnsupportedQueryError,
    restore,
)
from rollguard.signals.promql_batch import Capture, Rewritten, rewrite
from rollguard.signals.promql_chunks import chunks
from rollguard.signals.promql_convert import convert
from rollguard.signals.promql_keys import NotBatchableError, regex_escape, span_of
from rollguard.signals.promql_placeholders import (
    PlaceholderError,
    check_matcher_value,
    substitute,
)
from rollguard.signals.promql_print import to_promql

__all__ = [
    "MAX_BATCH",
    "PLACEHOLDERS",
    "Batch",
    "BatchPlan",
    "InvalidQuery",
    "Target",
    "plan",
    "render",
    "validate",
]

MAX_BATCH = 2000
"""Targets per batched query: one query per signal and policy up to this many bound
ModelDeployments (a POST body, so no URL limit; the regex of names costs Prometheus little
next to the series it selects)."""


class InvalidQuery(ValueError):  # noqa: N818 - the name the handlers and docs use
    """The query is not valid PromQL (the message is the parser's) or misuses a placeholder."""


@dataclass(frozen=True)
class Target:
    """A deployment to measure; ``revision`` fills ``$revision`` where a query uses it."""

    namespace: str
    deployment: str
    revision: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.deployment}"

    def values(self) -> dict[str, str]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "revision": self.revision,
        }


@dataclass(frozen=True)
class Batch:
    """One query of a batched signal and the targets (indexes into those given) it covers."""

    query: str
    members: tuple[int, ...]


@dataclass(frozen=True)
class BatchPlan:
    """How one signal query runs: ``Batched`` (one query for many deployments) or
    ``PerDeployment`` (``reason`` says why, in words for the policy's status)."""

    query: str
    mode: QueryMode
    reason: str = ""
    rewritten: Rewritten | None = field(default=None, repr=False, compare=False)

    @property
    def batched(self) -> bool:
        return self.mode == "Batched"

    @property
    def fill(self) -> float | None:
        """For ``X or vector(c)``: c, for every step at which a target's X has no sample (its
        batch query is X's; ``measure`` fills the steps)."""
        return self._rewritten().fill

    @property
    def key_labels(self) -> tuple[str, ...]:
        """The labels of a batched result that tell its targets apart."""
        return self._rewritten().keys.labels

    def key(self, target: Target) -> tuple[str, ...]:
        """The values of ``key_labels`` on ``target``'s series in a batched result."""
        return self._rewritten().keys.of(_values(target, self._rewritten().keys.templates))

    def batches(self, targets: Sequence[Target], max_size: int = MAX_BATCH) -> list[Batch]:
        """The batched queries covering ``targets``: one, unless targets' keys could be
        confused (``promql_keys.chunks``) or there are more than ``max_size``. Split each
        result with ``key``."""
        done = self._rewritten()
        if not targets:
            raise ValueError("a batch needs at least one target")
        values = [_values(t, done.keys.templates) for t in targets]
        out = []
        size = max(1, max_size)
        for group in chunks(done.captures, values):
            for lo in range(0, len(group), size):
                members = tuple(group[lo : lo + size])
                query = _widen(done, [values[b] for b in members])
                out.append(Batch(query, members))
        return out

    def render(self, targets: Sequence[Target]) -> str:
        """The one batched query for ``targets`` (``ValueError`` if they need several)."""
        found = self.batches(targets)
        if len(found) != 1:
            raise ValueError(f"these targets need {len(found)} queries; use batches()")
        return found[0].query

    def render_one(self, target: Target) -> str:
        """The query for one deployment: what its share of a batched result equals."""
        return render(
            self.query,
            namespace=target.namespace,
            deployment=target.deployment,
            revision=target.revision,
        )

    def status(self, signal: str) -> QueryPlan:
        """The entry for ``RollbackPolicy.status.queries``."""
        return QueryPlan(signal=signal, mode=self.mode, message=self.reason)

    def _rewritten(self) -> Rewritten:
        if self.rewritten is None:
            raise ValueError(f"this query runs per deployment: {self.reason}")
        return self.rewritten


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
    text = to_promql(tree)
    for name in PLACEHOLDERS:
        if DUMMY[name] in text:
            _non_empty(name, values[name])

    def fill(matcher: ast.Matcher) -> ast.Matcher:
        regex = matcher.op in ("=~", "!~")
        value = matcher.value
        for name, dummy in DUMMY.items():
            if dummy in value:
                value = value.replace(dummy, regex_escape(values[name]) if regex else values[name])
        return replace(matcher, value=value)

    def fill_selector(s: ast.Selector) -> ast.Selector:
        return replace(
            s,
            matchers=tuple(fill(m) for m in s.matchers),
            or_groups=tuple(tuple(fill(m) for m in g) for g in s.or_groups),
        )

    return to_promql(_map_selectors(tree, fill_selector))


def plan(query: str) -> BatchPlan:
    """Validate ``query`` (raising ``InvalidQuery``) and decide how it runs."""
    validate(query)
    try:
        rewritten = rewrite(_template(query))
    except NotBatchableError as why:
        return BatchPlan(query, "PerDeployment", str(why))
    return BatchPlan(query, "Batched", "", rewritten)


@lru_cache(maxsize=1024)
def _template(query: str) -> Node:
    """The parsed query with placeholders as stand-ins; checks where they are."""
    try:
        text = substitute(query)
    except PlaceholderError as err:
        raise InvalidQuery(str(err)) from None
    try:
        tree = convert(pp.parse(text))
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


def _check_placement(node: Node) -> None:
    """Placeholders outside matcher values (label names, metric names, strings) are refused,
    and so is a matcher value holding something that looks like a placeholder but is not."""
    texts: list[str] = []
    if isinstance(node, ast.Selector):
        texts.append(node.name or "")
        texts += [m.name for m in node.matchers] + [m.name for g in node.or_groups for m in g]
        for matcher in (*node.matchers, *(m for g in node.or_groups for m in g)):
            try:
                check_matcher_value(matcher.value)
            except PlaceholderError as err:
                raise InvalidQuery(f"{matcher.name}{matcher.op}: {err}") from None
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


def _values(target: Target, templates: Sequence[str]) -> dict[str, str]:
    """A target's placeholder values, each one the templates use checked non-empty."""
    values = target.values()
    for name in PLACEHOLDERS:
        if any(DUMMY[name] in t for t in templates):
            _non_empty(name, values[name])
    return values


def _map_selectors(node: Node, fn: Callable[[ast.Selector], ast.Selector]) -> Node:
    if isinstance(node, ast.Selector):
        return fn(node)
    if isinstance(node, ast.Matrix):
        return replace(node, selector=fn(node.selector))
    if isinstance(node, ast.Subquery | ast.Unary | ast.Paren):
        return replace(node, expr=_map_selectors(node.expr, fn))
    if isinstance(node, ast.Call):
        args = tuple(_map_selectors(a, fn) for a in node.args)
        return replace(node, args=args)
    if isinstance(node, ast.Aggregate):
        param = None if node.param is None else _map_selectors(node.param, fn)
        return replace(node, expr=_map_selectors(node.expr, fn), param=param)
    if isinstance(node, ast.Binary):
        return replace(node, lhs=_map_selectors(node.lhs, fn), rhs=_map_selectors(node.rhs, fn))
    return node


def _widen(done: Rewritten, values: Sequence[dict[str, str]]) -> str:
    """The batched query for targets with these placeholder values."""

    def matcher(m: ast.Matcher) -> ast.Matcher:
        span = span_of(m, "")
        if span is None:
            return m
        alternatives = sorted({span.alternative(v) for v in values})
        return span.widened(alternatives, sorted({span.key(v) for v in values}), values[0])

    def selector(s: ast.Selector) -> ast.Selector:
        return replace(s, matchers=tuple(matcher(m) for m in s.matchers))

    captures = {
        Capture(i).text: span.capture(sorted({span.alternative(v) for v in values}), values[0])
        for i, span in enumerate(done.captures)
    }
    tree = _fill_captures(_map_selectors(done.tree, selector), captures)
    return to_promql(tree)


def _fill_captures(node: Node, captures: dict[str, str]) -> Node:
    """The generated label_replace regexes, filled for one batch."""
    if isinstance(node, ast.String):
        return ast.String(captures.get(node.value, node.value))
    if isinstance(node, ast.Call):
        return replace(node, args=tuple(_fill_captures(a, captures) for a in node.args))
    if isinstance(node, ast.Subquery | ast.Unary | ast.Paren):
        return replace(node, expr=_fill_captures(node.expr, captures))
    if isinstance(node, ast.Aggregate):
        param = None if node.param is None else _fill_captures(node.param, captures)
        return replace(node, expr=_fill_captures(node.expr, captures), param=param)
    if isinstance(node, ast.Binary):
        lhs, rhs = _fill_captures(node.lhs, captures), _fill_captures(node.rhs, captures)
        return replace(node, lhs=lhs, rhs=rhs)
    return node


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
