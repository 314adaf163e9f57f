"""The batch rewrite of a signal query: one query for many deployments, or a reason why not.

PURE. Called by ``rollguard.signals.promql.plan`` only, on a parsed template (placeholders
as ``promql_ast.DUMMY`` stand-ins). The rewrite must give, for every deployment of the batch,
exactly the series the per-deployment query gives, labelled with the query's key labels
(``promql_keys``) so that the result can be split. It keeps those labels on every
intermediate vector and refuses (``NotBatchableError``) anything it cannot prove keeps
deployments apart:

* a selector's matchers stay as they are here; ``promql.BatchPlan`` later widens them to the
  batch. A key label that is not the series' own is written by a ``label_replace`` around
  the selector (around the function reading it, for a range vector); its regex is a
  ``Capture`` stand-in, filled per batch;
* ``by (...)`` gains the key labels, ``without (...)`` loses them;
* ``on (...)`` gains them; ``ignoring (...)`` and ``group_left/right (...)`` lose them;
* per-series functions pass through; anything else is refused.

Adding labels to a vector changes label-set comparisons, so the rewrite also tracks whether
the per-deployment query's series carry each key label (``Presence``) and refuses a query
whose matching or grouping would see a difference (``sum by (namespace) (a) / sum(b)``
matches nothing per deployment, but would match once both sides carry namespace). A label
that only the batch writes is never carried per deployment, and every batched series has
it, constant for each target: it changes no comparison between one target's series.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from rollguard.signals import promql_ast as ast
from rollguard.signals.promql_ast import Kind, Node, kind_of, restore, words
from rollguard.signals.promql_forms import default_value, has_series, keyed, labelless
from rollguard.signals.promql_keys import (
    CAPTURE,
    KEY_PREFIX,
    Keys,
    NotBatchableError,
    Span,
    plan_keys,
    selector_spans,
)
from rollguard.signals.promql_print import to_promql

# Functions that map each input series to at most one output series with the same labels
# (minus the metric name, or `le` for histogram_quantile): batching them is safe.
_PER_SERIES_FUNCTIONS = words(
    "abs ceil floor round exp ln log2 log10 sqrt sgn clamp clamp_min clamp_max changes "
    "resets delta deriv idelta increase irate rate predict_linear "
    "double_exponential_smoothing avg_over_time min_over_time max_over_time sum_over_time "
    "count_over_time quantile_over_time stddev_over_time stdvar_over_time last_over_time "
    "present_over_time mad_over_time histogram_quantile histogram_count histogram_sum "
    "histogram_fraction histogram_avg histogram_stddev histogram_stdvar timestamp sort "
    "sort_desc sort_by_label sort_by_label_desc acos acosh asin asinh atan atanh cos cosh "
    "sin sinh tan tanh deg rad label_replace label_join time pi day_of_month day_of_week "
    "day_of_year days_in_month hour minute month year"
)
# Without an argument these read vector(time()), a series with no labels at all.
_CLOCK_FUNCTIONS = words(
    "day_of_month day_of_week day_of_year days_in_month hour minute month year"
)
_UNBATCHABLE_FUNCTIONS = {
    "absent": "absent() returns one series whose labels come from its selector, not one per "
    "deployment",
    "absent_over_time": "absent_over_time() returns one series whose labels come from its "
    "selector, not one per deployment",
    "scalar": "scalar() turns series into a single number, which cannot be split per deployment",
    "vector": "vector() creates a series without the labels that tell deployments apart (for "
    "'or vector(0)': no data is already Inconclusive, or a breach with onMissingData: Breach)",
}
_UNBATCHABLE_AGGREGATIONS = words("topk bottomk limitk limit_ratio quantile count_values")


@dataclass(frozen=True)
class Capture:
    """The stand-in regex of a generated ``label_replace``: ``spans[index]`` of the plan."""

    index: int

    @property
    def text(self) -> str:
        return f"__rollguard_capture_{self.index}__"


@dataclass(frozen=True)
class Rewritten:
    """A batched template: its key labels, and the spans whose captures it holds."""

    tree: Node
    keys: Keys
    captures: tuple[Span, ...]
    fill: float | None = None  # X or vector(c): c at each step where X has no series


def rewrite(tree: Node) -> Rewritten:
    """The batched template of a per-deployment template; raises ``NotBatchableError``."""
    tree, fill = default_value(tree)
    selectors = [n for n in ast.walk(tree) if isinstance(n, ast.Selector) and keyed(n)]
    if not selectors:
        raise NotBatchableError(
            _no_placeholder(tree)
            if has_series(tree)
            else "it returns a single number, not series per deployment"
        )
    keys = plan_keys(selectors)
    _refuse_own_labels(tree)
    rewriter = _Rewriter(keys)
    rewritten, kind, _ = rewriter.batch(tree)
    if kind != "vector":
        raise NotBatchableError("it returns a single number, not series per deployment")
    return Rewritten(rewritten, keys, tuple(rewriter.captures), fill)


def _no_placeholder(node: Node) -> str:
    first = next(n for n in ast.walk(node) if isinstance(n, ast.Selector))
    return (
        f"selector {restore(to_promql(first))} has no placeholder, so its series cannot be "
        "attributed to one deployment"
    )


def _refuse_own_labels(tree: Node) -> None:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Selector):
            names += [m.name for m in node.matchers]
        elif isinstance(node, ast.Aggregate):
            names += node.labels
        elif isinstance(node, ast.Binary):
            names += [*node.match_labels, *node.group_labels]
        elif isinstance(node, ast.Call) and node.name in ("label_replace", "label_join"):
            names += [a.value for a in node.args if isinstance(a, ast.String)]
    taken = [n for n in names if n.startswith(KEY_PREFIX)]
    if taken:
        raise NotBatchableError(f"it uses the label {taken[0]}, which a batch writes itself")


def _need_vector(kind: Kind, what: str) -> None:
    if kind not in ("vector", "matrix"):
        raise NotBatchableError(f"{what} is applied to a {kind}, not to series per deployment")


# Per key label, whether the per-deployment query's series carry it: in every series
# (True), in none (False) or in some (None). The batched query's series always carry every
# key label, so wherever the per-deployment query compares label sets (vector matching,
# grouping) the two agree only when presence is known and equal; otherwise the query runs
# per deployment.
Presence = dict[str, bool | None]


@dataclass
class _Rewriter:
    keys: Keys
    captures: list[Span] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.keys.labels

    def keep(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        return labels + tuple(label for label in self.labels if label not in labels)

    def drop(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(label for label in labels if label not in self.labels)

    def leaf(self) -> Presence:
        """At a selector: its own key labels are carried, written ones are not."""
        return dict(zip(self.labels, self.keys.raw, strict=True))

    def write_keys(self, node: Node, selector: ast.Selector) -> Node:
        """``node`` (a selector's series) wrapped in a label_replace per written key label."""
        for span in selector_spans(selector):
            label = self.keys.label_of(span.template)
            if self.keys.raw[self.labels.index(label)]:
                continue
            if span.whole:
                regex, replacement = "(.*)", "$1"
            else:
                if span not in self.captures:
                    self.captures.append(span)
                regex = Capture(self.captures.index(span)).text
                replacement = f"${{{CAPTURE}}}"
            args = (node, ast.String(label), ast.String(replacement), ast.String(span.label))
            node = ast.Call("label_replace", (*args, ast.String(regex)), "vector")
        return node

    def batch(self, node: Node) -> tuple[Node, Kind, Presence]:
        """The rewritten node, its kind and label presence; raises ``NotBatchableError``
        when the rewrite is not provably equivalent."""
        if isinstance(node, ast.Number | ast.String):
            return node, kind_of(node), {}
        if has_series(node) and not keyed(node):
            # The same for every deployment: a number (scalar(sum(...))) is fine as it is; a
            # vector only against a deployment's series, as ``baseline`` allows.
            if kind_of(node) == "scalar":
                return node, "scalar", {}
            raise NotBatchableError(_no_placeholder(node))
        if isinstance(node, ast.Selector):
            return self.write_keys(node, node), "vector", self.leaf()
        if isinstance(node, ast.Matrix):
            return node, "matrix", self.leaf()  # the function reading it writes the keys
        if isinstance(node, ast.Paren | ast.Unary):
            inner, kind, presence = self.batch(node.expr)
            return replace(node, expr=inner), kind, presence
        if isinstance(node, ast.Subquery):
            inner, kind, presence = self.batch(node.expr)
            _need_vector(kind, "a subquery")
            return replace(node, expr=inner), "matrix", presence
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Aggregate):
            return self.aggregate(node)
        return self.binary(node)

    def call(self, node: ast.Call) -> tuple[Node, Kind, Presence]:
        name = node.name
        if name in _UNBATCHABLE_FUNCTIONS:
            raise NotBatchableError(_UNBATCHABLE_FUNCTIONS[name])
        if name not in _PER_SERIES_FUNCTIONS:
            raise NotBatchableError(
                f"{name}() is not known to keep the labels that tell deployments apart"
            )
        if name in _CLOCK_FUNCTIONS and not node.args:
            raise NotBatchableError(f"{name}() without an argument returns a series without labels")
        args = [self.batch(a) for a in node.args]
        series = [presence for _, kind, presence in args if kind in ("vector", "matrix")]
        if node.returns in ("vector", "matrix") and not series:
            raise NotBatchableError(
                f"{name}() is applied to a scalar, not to series per deployment"
            )
        presence = series[0] if series else {}
        if name in ("label_replace", "label_join"):
            self.check_relabel(node, presence)
        out: Node = replace(node, args=tuple(a for a, _, _ in args))
        for arg in node.args:
            if isinstance(arg, ast.Matrix):
                out = self.write_keys(out, arg.selector)
        return out, node.returns, presence

    def check_relabel(self, node: ast.Call, presence: Presence) -> None:
        name = node.name
        strings = [a.value if isinstance(a, ast.String) else None for a in node.args[1:]]
        if not strings or strings[0] is None or strings[0] in self.labels:
            raise NotBatchableError(f"{name}() overwrites a label that tells deployments apart")
        sources = strings[2:3] if name == "label_replace" else strings[2:]
        for label in self.labels:
            if label in sources and presence.get(label) is not True:
                raise NotBatchableError(
                    f"{name}() reads {label}, which the per-deployment query drops"
                )

    def aggregate(self, node: ast.Aggregate) -> tuple[Node, Kind, Presence]:
        if node.op in _UNBATCHABLE_AGGREGATIONS:
            raise NotBatchableError(f"{node.op} aggregations are not rewritten for batches")
        inner, kind, before = self.batch(node.expr)
        _need_vector(kind, f"{node.op}()")
        without = node.grouping == "without"
        after: Presence = {}
        for label in self.labels:
            # Without: labels not listed form the groups; by: listed labels do.
            grouped = (label not in node.labels) if without else (label in node.labels)
            if grouped and before[label] is None:
                raise NotBatchableError(
                    f"{node.op}() groups by {label}, which only some of its input series carry"
                )
            after[label] = before[label] if grouped else False
        grouping: Literal["by", "without"] = "without" if without else "by"
        labels = self.drop(node.labels) if without else self.keep(node.labels)
        rewritten = replace(node, expr=inner, grouping=grouping, labels=labels)
        return rewritten, "vector", after

    def binary(self, node: ast.Binary) -> tuple[Node, Kind, Presence]:
        sides = [keyed(node.lhs), keyed(node.rhs)]
        vectors = kind_of(node.lhs) == kind_of(node.rhs) == "vector"
        if vectors and sides[0] != sides[1] and all(has_series(s) for s in (node.lhs, node.rhs)):
            return self.baseline(node, keyed_lhs=sides[0])
        lhs, lkind, lp = self.batch(node.lhs)
        rhs, rkind, rp = self.batch(node.rhs)
        if "matrix" in (lkind, rkind) or "string" in (lkind, rkind):
            raise NotBatchableError(f"operator {node.op} is applied to a range vector or a string")
        if lkind != "vector" or rkind != "vector":
            kind: Kind = "vector" if "vector" in (lkind, rkind) else "scalar"
            return replace(node, lhs=lhs, rhs=rhs), kind, lp if lkind == "vector" else rp
        if node.fill_lhs is not None or node.fill_rhs is not None:
            raise NotBatchableError("fill modifiers are not rewritten for batches")
        on, listed = node.matching == "on", node.match_labels
        for label in self.labels:
            matched = (label in listed) if on else (label not in listed)
            if matched and (lp[label] is None or lp[label] != rp[label]):
                raise NotBatchableError(
                    f"the two sides of {node.op} differ in whether they carry the {label} "
                    "label, so the per-deployment query matches differently from a batched one"
                )
        rewritten = replace(
            node,
            lhs=lhs,
            rhs=rhs,
            match_labels=self.keep(listed) if on else self.drop(listed),
            group_labels=self.drop(node.group_labels),
        )
        return rewritten, "vector", self.binary_presence(node, lp, rp)

    def baseline(self, node: ast.Binary, *, keyed_lhs: bool) -> tuple[Node, Kind, Presence]:
        """A deployment's series against a vector that names no deployment (a fleet-wide
        baseline, the same for every deployment), matched ``on (...)`` labels that do not tell
        deployments apart: each deployment's series meet the baseline as they would alone. A
        one-to-one match becomes ``group_left``/``right`` (the batch has many deployments on
        that side), which gives the same series when the deployment's side is a plain sum."""
        mine, other = (node.lhs, node.rhs) if keyed_lhs else (node.rhs, node.lhs)
        inner, _, presence = self.batch(mine)
        shown = restore(to_promql(other))
        if node.fill_lhs is not None or node.fill_rhs is not None:
            raise NotBatchableError("fill modifiers are not rewritten for batches")
        if node.matching != "on" or set(node.match_labels + node.group_labels) & set(self.labels):
            raise NotBatchableError(
                f"{shown} names no deployment; a batch can match it only 'on (...)' labels "
                "that do not tell deployments apart"
            )
        many: Literal["many-to-one", "one-to-many"] = "many-to-one" if keyed_lhs else "one-to-many"
        if node.op == "or" or (node.op in ("and", "unless") and not keyed_lhs):
            raise NotBatchableError(
                f"{shown} names no deployment; it can only filter a deployment's series "
                "('and', 'unless') or be the 'one' side of an operator"
            )
        if node.op in ("and", "unless") or node.card == many:
            after = dict(presence)
        elif node.card == "one-to-one" and labelless(mine):
            after = {label: False for label in self.labels}  # one-to-one keeps only on (...)
        else:
            raise NotBatchableError(
                f"{shown} names no deployment; against it a deployment's side must be a sum "
                "without 'by', or the many side of group_left/group_right"
            )
        card = node.card if node.op in ("and", "unless") else many
        lhs, rhs = (inner, node.rhs) if keyed_lhs else (node.lhs, inner)
        return replace(node, lhs=lhs, rhs=rhs, card=card), "vector", after

    def binary_presence(self, node: ast.Binary, lp: Presence, rp: Presence) -> Presence:
        """Which key labels the per-deployment result carries (Prometheus' resultMetric)."""
        labels = self.labels
        if node.op in ("and", "unless"):
            return dict(lp)
        if node.op == "or":
            return {label: lp[label] if lp[label] == rp[label] else None for label in labels}
        if node.card in ("many-to-one", "one-to-many"):
            many, one = (lp, rp) if node.card == "many-to-one" else (rp, lp)
            return {
                label: one[label] if label in node.group_labels else many[label] for label in labels
            }
        if node.matching == "on":
            return {label: lp[label] if label in node.match_labels else False for label in lp}
        if node.matching == "ignoring":
            return {label: False if label in node.match_labels else lp[label] for label in lp}
        return dict(lp)
