"""The batch rewrite of a signal query: one query for many deployments, or a reason why not.

PURE. Called by ``rollguard.monitoring.promql.plan`` only, on a parsed template (placeholders
as ``promql_ast.DUMMY`` stand-ins). The rewrite must give, for every deployment of the batch,
exactly the series the per-deployment query gives, labelled with ``namespace`` and
``deployment`` so the result can be split. It keeps those two labels on every intermediate
vector and refuses (``NotBatchableError``) anything it cannot prove keeps deployments apart:

* a pinned selector (``namespace="$namespace",deployment="$deployment"``) stays as it is
  here; ``promql.BatchPlan.render`` later widens the pins to the batch;
* ``by (...)`` gains namespace and deployment, ``without (...)`` loses them;
* ``on (...)`` gains them; ``ignoring (...)`` and ``group_left/right (...)`` lose them;
* per-series functions pass through; anything else is refused.

Adding labels to a vector changes label-set comparisons, so the rewrite also tracks whether
the per-deployment query's series carry each label (``Presence``) and refuses a query whose
matching or grouping would see a difference (``sum by (namespace) (a) / sum(b)`` matches
nothing per deployment, but would match once both sides carry namespace).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from rollguard.monitoring import promql_ast as ast
from rollguard.monitoring.promql_ast import DUMMY, Kind, Node, kind_of, restore, words

BATCH_LABELS = ("namespace", "deployment")

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
    "vector": "vector() creates a series without namespace and deployment labels",
}
_UNBATCHABLE_AGGREGATIONS = words("topk bottomk limitk limit_ratio quantile count_values")


class NotBatchableError(Exception):
    """The query must run per deployment; the message says why, in words for users."""


def rewrite(tree: Node) -> Node:
    """The batched template of a per-deployment template; raises ``NotBatchableError``."""
    if DUMMY["revision"] in ast.to_promql(tree):
        raise NotBatchableError("it uses $revision, which differs from deployment to deployment")
    rewritten, kind, _ = _batch(tree)
    if kind != "vector":
        raise NotBatchableError("it returns a single number, not series per deployment")
    return rewritten


def _check_selector(s: ast.Selector) -> None:
    shown = restore(ast.to_promql(s))
    if s.or_groups:
        raise NotBatchableError(f"selector {shown} uses 'or' between matchers")
    pins: set[str] = set()
    for m in s.matchers:
        if m.name in BATCH_LABELS and m.op == "=" and m.value == DUMMY[m.name]:
            pins.add(m.name)
        elif any(d in m.value for d in DUMMY.values()):
            raise NotBatchableError(
                f"selector {shown} uses a placeholder in {m.name}{m.op}...; only "
                'namespace="$namespace" and deployment="$deployment" can be batched'
            )
        elif m.name in BATCH_LABELS:
            raise NotBatchableError(
                f'selector {shown} matches {m.name} other than by {m.name}="${m.name}"'
            )
    if pins != set(BATCH_LABELS):
        raise NotBatchableError(
            f'selector {shown} does not match both namespace="$namespace" and '
            'deployment="$deployment", so its series cannot be attributed to one deployment'
        )


def _keep(labels: tuple[str, ...]) -> tuple[str, ...]:
    return labels + tuple(label for label in BATCH_LABELS if label not in labels)


def _drop(labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(label for label in labels if label not in BATCH_LABELS)


def _need_vector(kind: Kind, what: str) -> None:
    if kind not in ("vector", "matrix"):
        raise NotBatchableError(f"{what} is applied to a {kind}, not to series per deployment")


# Per batch label, whether the per-deployment query's series carry it: in every series
# (True), in none (False) or in some (None). The batched query's series always carry both, so
# wherever the per-deployment query compares label sets (vector matching, grouping) the two
# agree only when presence is known and equal; otherwise the query runs per deployment.
Presence = dict[str, bool | None]
_CARRIED: Presence = {"namespace": True, "deployment": True}


def _batch(node: Node) -> tuple[Node, Kind, Presence]:
    """The rewritten node, its kind and label presence; raises ``NotBatchableError`` when the
    rewrite is not provably equivalent."""
    if isinstance(node, ast.Number | ast.String):
        return node, kind_of(node), {}
    if isinstance(node, ast.Selector):
        _check_selector(node)
        return node, "vector", dict(_CARRIED)
    if isinstance(node, ast.Matrix):
        _check_selector(node.selector)
        return node, "matrix", dict(_CARRIED)
    if isinstance(node, ast.Paren | ast.Unary):
        inner, kind, presence = _batch(node.expr)
        return replace(node, expr=inner), kind, presence
    if isinstance(node, ast.Subquery):
        inner, kind, presence = _batch(node.expr)
        _need_vector(kind, "a subquery")
        return replace(node, expr=inner), "matrix", presence
    if isinstance(node, ast.Call):
        return _batch_call(node)
    if isinstance(node, ast.Aggregate):
        return _batch_aggregate(node)
    return _batch_binary(node)


def _batch_call(node: ast.Call) -> tuple[Node, Kind, Presence]:
    name = node.name
    if name in _UNBATCHABLE_FUNCTIONS:
        raise NotBatchableError(_UNBATCHABLE_FUNCTIONS[name])
    if name not in _PER_SERIES_FUNCTIONS:
        raise NotBatchableError(
            f"{name}() is not known to keep the namespace and deployment labels"
        )
    if name in _CLOCK_FUNCTIONS and not node.args:
        raise NotBatchableError(f"{name}() without an argument returns a series without labels")
    args = [_batch(a) for a in node.args]
    series = [presence for _, kind, presence in args if kind in ("vector", "matrix")]
    if node.returns in ("vector", "matrix") and not series:
        raise NotBatchableError(f"{name}() is applied to a scalar, not to series per deployment")
    presence = series[0] if series else {}
    if name in ("label_replace", "label_join"):
        strings = [a.value if isinstance(a, ast.String) else None for a in node.args[1:]]
        if not strings or strings[0] is None or strings[0] in BATCH_LABELS:
            raise NotBatchableError(f"{name}() overwrites a label that identifies the deployment")
        sources = strings[2:3] if name == "label_replace" else strings[2:]
        for label in BATCH_LABELS:
            if label in sources and presence.get(label) is not True:
                raise NotBatchableError(
                    f"{name}() reads {label}, which the per-deployment query drops"
                )
    return replace(node, args=tuple(a for a, _, _ in args)), node.returns, presence


def _batch_aggregate(node: ast.Aggregate) -> tuple[Node, Kind, Presence]:
    if node.op in _UNBATCHABLE_AGGREGATIONS:
        raise NotBatchableError(f"{node.op} aggregations are not rewritten for batches")
    inner, kind, before = _batch(node.expr)
    _need_vector(kind, f"{node.op}()")
    without = node.grouping == "without"
    after: Presence = {}
    for label in BATCH_LABELS:
        # Without: labels not listed form the groups; by: listed labels do.
        grouped = (label not in node.labels) if without else (label in node.labels)
        if grouped and before[label] is None:
            raise NotBatchableError(
                f"{node.op}() groups by {label}, which only some of its input series carry"
            )
        after[label] = before[label] if grouped else False
    grouping: Literal["by", "without"] = "without" if without else "by"
    labels = _drop(node.labels) if without else _keep(node.labels)
    rewritten = replace(node, expr=inner, grouping=grouping, labels=labels)
    return rewritten, "vector", after


def _batch_binary(node: ast.Binary) -> tuple[Node, Kind, Presence]:
    lhs, lkind, lp = _batch(node.lhs)
    rhs, rkind, rp = _batch(node.rhs)
    if "matrix" in (lkind, rkind) or "string" in (lkind, rkind):
        raise NotBatchableError(f"operator {node.op} is applied to a range vector or a string")
    if lkind != "vector" or rkind != "vector":
        kind: Kind = "vector" if "vector" in (lkind, rkind) else "scalar"
        return replace(node, lhs=lhs, rhs=rhs), kind, lp if lkind == "vector" else rp
    if node.fill_lhs is not None or node.fill_rhs is not None:
        raise NotBatchableError("fill modifiers are not rewritten for batches")
    on, listed = node.matching == "on", node.match_labels
    for label in BATCH_LABELS:
        matched = (label in listed) if on else (label not in listed)
        if matched and (lp[label] is None or lp[label] != rp[label]):
            raise NotBatchableError(
                f"the two sides of {node.op} differ in whether they carry the {label} label, "
                "so the per-deployment query matches differently from a batched one"
            )
    return (
        replace(
            node,
            lhs=lhs,
            rhs=rhs,
            match_labels=_keep(listed) if on else _drop(listed),
            group_labels=_drop(node.group_labels),
        ),
        "vector",
        _binary_presence(node, lp, rp),
    )


def _binary_presence(node: ast.Binary, lp: Presence, rp: Presence) -> Presence:
    """Which batch labels the per-deployment result carries (Prometheus' resultMetric)."""
    if node.op in ("and", "unless"):
        return dict(lp)
    if node.op == "or":
        return {label: lp[label] if lp[label] == rp[label] else None for label in BATCH_LABELS}
    if node.card in ("many-to-one", "one-to-many"):
        many, one = (lp, rp) if node.card == "many-to-one" else (rp, lp)
        return {
            label: one[label] if label in node.group_labels else many[label]
            for label in BATCH_LABELS
        }
    if node.matching == "on":
        return {label: lp[label] if label in node.match_labels else False for label in lp}
    if node.matching == "ignoring":
        return {label: False if label in node.match_labels else lp[label] for label in lp}
    return dict(lp)
