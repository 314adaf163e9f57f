"""Signal query planning: printing, rendering with escaped values, validation, batch plans and
their fallbacks, and -- with a small PromQL evaluator over fake series -- proof that a batched
query gives every deployment exactly what its own query gives."""

from __future__ import annotations

import random
import re
from typing import Any

import promql_parser as pp
import pytest
from promql_eval import Labels, evaluate, split_equals_alone

from rollguard.signals.promql import InvalidQuery, Target, plan, render, validate
from rollguard.signals.promql_convert import convert
from rollguard.signals.promql_print import to_promql

PIN = 'namespace="$namespace",deployment="$deployment"'
REQ = f"model_requests_total{{{PIN}}}"
ERR = f'model_requests_total{{{PIN},code=~"5.."}}'
BUCKET = f"model_request_duration_seconds_bucket{{{PIN}}}"
REV = f"model_revenue_total{{{PIN}}}"
TARGETS = [Target("ns-a", "web"), Target("ns-b", "web"), Target("ns-a", "api")]
BATCH = 'namespace=~"ns-a|ns-b",deployment=~"api|web"'

ROUND_TRIP = [
    "x", "x{}", "sum{}", "offset{}", '{__name__=~"x.*"}', 'x{a="b",c!="d",e=~"f.*",g!~"h"}',
    'x{a="q\\"\\\\\\n\\t"}', "x{a='single \"quoted\"'}", "x{a=`raw'string\"`}", 'x{a="\\x01é"}',
    'x{a="b" or c="d",e="f"}', "x offset 5m", "x offset -1m30s500ms", "x @ 1700000000",
    "x @ 1.5 offset 1m", "x @ start()", "rate(x[5m] @ end() offset 1w)", "rate(x[1h30m])",
    "x[5m:]", "x[5m:30s] offset 1m", "max_over_time(rate(x[1m])[1h:5m] @ 100)",
    "sum(x)", "SUM(x) BY (a)", "sum without (a, b) (x)", "sum by () (x)", "topk(3, x)",
    'count_values("v", x)', "quantile(0.9, x)", "1", "-1", "1e+20", "1e-07", "0.5", "0x1f",
    "Inf", "-Inf", "NaN", '"a string"', "-x", "- -x", "--x", "-x ^ 2", "(-x) ^ 2", "x - -1",
    "2 ^ -1", "x ^ y ^ z", "(x + y) * z", "x + y * z", "x % 3 == bool 1", "x > 0.5",
    "x and on () y", "x or y", "x unless ignoring (a) y", "x / on (a) group_left (b) y",
    "x / ignoring (a) group_right y", "x + fill (0) y", "x + on (a) fill_left (1) fill_right (2) y",
    'label_replace(x, "dst", "$1", "src", "(.*)")', "histogram_quantile(0.99, sum by (le) (x))",
    "time()", "vector(1)", "scalar(x) * 2", "x atan2 y", "abs(-x) # a comment",
]  # fmt: skip


@pytest.mark.parametrize("query", ROUND_TRIP)
def test_printing_an_unmodified_parse_round_trips(query: str) -> None:
    printed = to_promql(convert(pp.parse(query)))
    again = to_promql(convert(pp.parse(printed)))
    assert again == printed
    if "NaN" not in query:  # NaN != NaN, so trees holding it never compare equal
        assert convert(pp.parse(printed)) == convert(pp.parse(query))


# --- render -------------------------------------------------------------------------------

HOSTILE = ['a"} or vector(1) #', "a\\", "x\ny", 'b\\"}', "a`b'c", "$deployment", ".*", "a|b"]


@pytest.mark.parametrize("value", HOSTILE)
def test_render_keeps_hostile_values_inside_their_strings(value: str) -> None:
    query = (
        f'sum(rate({REQ}[5m])) / sum(rate(model_requests_total{{pod=~"$deployment-.*",{PIN}}}[5m]))'
    )
    text = render(query, namespace=value, deployment=value)
    tree = pp.parse(text)  # still one valid query
    selectors: list[Any] = []
    pp.walk(tree, lambda e: selectors.append(e) if isinstance(e, pp.VectorSelector) else None)
    found = {(m.name, str(m.op), m.value) for s in selectors for m in s.matchers.matchers}
    assert ("namespace", "MatchOp.Equal", value) in found
    assert ("deployment", "MatchOp.Equal", value) in found
    # In a regex matcher the value is regex-escaped, so it matches itself only.
    pod = next(v for n, _, v in found if n == "pod")
    assert re.fullmatch(pod, f"{value}-7f9c") and not re.fullmatch(pod, "other-7f9c")
    assert "vector" not in {type(e).__name__ for e in selectors}
    assert len(selectors) == 2


def test_render_fills_every_placeholder_and_normalises_the_text() -> None:
    query = f'sum(rate(model_requests_total{{{PIN},revision="$revision"}}[5m]))'
    assert render(query, namespace="ml", deployment="fraud", revision="4") == (
        'sum(rate(model_requests_total{namespace="ml",deployment="fraud",revision="4"}[5m]))'
    )
    assert render("x{a=`$namespace`} # $deployment", namespace='q"', deployment="d") == (
        'x{a="q\\""}'
    )


def test_render_refuses_an_empty_value_that_would_match_series_without_the_label() -> None:
    with pytest.raises(ValueError, match="namespace must not be empty"):
        render(f"x{{{PIN}}}", namespace="", deployment="d")
    with pytest.raises(ValueError, match="revision must not be empty"):
        render('x{revision="$revision"}', namespace="n", deployment="d")


# --- validate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('sum(rate(x{a="b"}[5m])', "unclosed left parenthesis"),
        ('x{a="b"', "unexpected end of input inside braces"),
        ("rate(x[5m]", "unclosed left parenthesis"),
        ("nosuchfn(x)", "unknown function with name 'nosuchfn'"),
        ("sum by ($namespace) (x)", "$namespace may only appear inside a label matcher value"),
        ('x{$deployment="a"}', "$deployment may only appear inside a label matcher value"),
        ("rate(x[$deployment])", "$deployment may only appear inside a label matcher value"),
        ('label_replace(x, "$namespace", "", "a", "")', "$namespace may only appear"),
        ('x{route=~"$namespace_$deployment-canary"}', "to follow ${namespace} with '_', write"),
        ('x{a="$deployments"}', "$deployments is not a placeholder: to follow ${deployment}"),
        ('x{cluster="$cluster"}', "cluster=: $cluster is not a placeholder"),
        ('x{env="${env}"}', "${env} is not a placeholder"),
        ("rate(x[$__rate_interval])", "$__rate_interval is not a placeholder"),
        ("sum by (${namespace}) (x)", "${namespace} may only appear inside a label matcher"),
        ('x{a="${1}"}', "${1} is not a placeholder"),
        ("x[5m]", "returns a range vector"),
        ('"text"', "returns a string"),
        ("x @ -100", "before 1970"),
    ],
)
def test_validate_refuses_with_the_parsers_message(query: str, message: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        validate(query)
    assert message in str(refused.value)
    with pytest.raises(InvalidQuery):
        plan(query)


def test_placeholder_look_alikes_outside_the_syntax_are_accepted_and_left_as_written() -> None:
    regex_group = f'label_replace(sum(rate({REQ}[5m])), "x", "$1-${{2}}-$name", "y", "(.*)")'
    anchors = 'x{path=~".*/predict$",b=~"^a$|^b$"} # $deployment in a comment'
    for query in (regex_group, anchors):
        validate(query)
    # only the real placeholders are filled: "$1", "${2}", "$name" and the comment are not ones
    assert render(regex_group, namespace="ml", deployment="fraud") == (
        'label_replace(sum(rate(model_requests_total{namespace="ml",deployment="fraud"}[5m])),'
        ' "x", "$1-${2}-$name", "y", "(.*)")'
    )
    assert render(anchors, namespace="ml", deployment="fraud") == (
        'x{path=~".*/predict$",b=~"^a$|^b$"}'
    )


def test_braced_placeholders_run_into_other_text_and_escape_like_bare_ones() -> None:
    query = (
        'sum(rate(x{route=~"${namespace}_${deployment}-canary_[0-9]+",'
        'cluster="${namespace}_${deployment}-canary_80",dw="$deployment"}[1m]))'
    )
    assert render(query, namespace="ml", deployment="a.b") == (
        'sum(rate(x{route=~"ml_a\\\\.b-canary_[0-9]+",cluster="ml_a.b-canary_80",dw="a.b"}[1m]))'
    )
    assert render("x{a=`${revision}x`}", namespace="n", deployment="d", revision='7"') == (
        'x{a="7\\"x"}'
    )


# --- plan ---------------------------------------------------------------------------------

BATCHED = [
    (  # error ratio
        f"sum(rate({ERR}[5m])) / sum(rate({REQ}[5m]))",
        f'sum by (namespace, deployment) (rate(model_requests_total{{{BATCH},code=~"5.."}}[5m]))'
        f" / sum by (namespace, deployment) (rate(model_requests_total{{{BATCH}}}[5m]))",
    ),
    (  # p99 latency
        f"histogram_quantile(0.99, sum by (le) (rate({BUCKET}[5m])))",
        "histogram_quantile(0.99, sum by (le, namespace, deployment) "
        f"(rate(model_request_duration_seconds_bucket{{{BATCH}}}[5m])))",
    ),
    (  # revenue per minute (objective min)
        f"sum(rate({REV}[5m])) * 60",
        f"sum by (namespace, deployment) (rate(model_revenue_total{{{BATCH}}}[5m])) * 60",
    ),
    (
        f"sum(increase({REQ}[10m]))",
        f"sum by (namespace, deployment) (increase(model_requests_total{{{BATCH}}}[10m]))",
    ),
    (
        f"avg_over_time({REV}[2m])",
        f"avg_over_time(model_revenue_total{{{BATCH}}}[2m])",
    ),
    (  # on() and group_left
        f"sum by (code) (rate({ERR}[5m])) / on () group_left sum(rate({REQ}[5m]))",
        f'sum by (code, namespace, deployment) (rate(model_requests_total{{{BATCH},code=~"5.."}}[5m]))'
        " / on (namespace, deployment) group_left () "
        f"sum by (namespace, deployment) (rate(model_requests_total{{{BATCH}}}[5m]))",
    ),
    (  # ignoring(); group labels never repeat the matching labels
        f"sum by (code) (rate({ERR}[5m])) / ignoring (code, namespace) group_left (deployment) "
        f"sum(rate({REQ}[5m]))",
        f'sum by (code, namespace, deployment) (rate(model_requests_total{{{BATCH},code=~"5.."}}[5m]))'
        " / ignoring (code) group_left () "
        f"sum by (namespace, deployment) (rate(model_requests_total{{{BATCH}}}[5m]))",
    ),
    (  # offset and @, unary minus, nested aggregations, without
        f"-max(sum without (pod, deployment) (rate({REQ}[5m] @ 1700000000 offset 1m)))",
        "-max by (namespace, deployment) (sum without (pod) "
        f"(rate(model_requests_total{{{BATCH}}}[5m] @ 1700000000.000 offset 1m)))",
    ),
    (  # subquery, comparison with bool, number literal on the left
        f"1 - (max_over_time(sum(rate({REQ}[1m]))[10m:1m]) > bool 5)",
        f"1 - (max_over_time(sum by (namespace, deployment) (rate(model_requests_total{{{BATCH}}}"
        "[1m]))[10m:1m]) > bool 5)",
    ),
    (  # set operators keep both sides' labels
        f"sum(rate({ERR}[5m])) or sum(rate({REQ}[5m])) * 0",
        f'sum by (namespace, deployment) (rate(model_requests_total{{{BATCH},code=~"5.."}}[5m]))'
        f" or sum by (namespace, deployment) (rate(model_requests_total{{{BATCH}}}[5m])) * 0",
    ),
]


@pytest.mark.parametrize(("query", "expected"), BATCHED)
def test_batchable_queries_become_one_query_for_the_batch(query: str, expected: str) -> None:
    p = plan(query)
    assert (p.mode, p.reason) == ("Batched", "")
    assert p.render(TARGETS) == expected
    assert p.status("s").model_dump() == {"signal": "s", "mode": "Batched", "message": ""}


def test_a_batch_in_one_namespace_uses_equality_and_escapes_regex_values() -> None:
    p = plan(f"sum(rate({REQ}[5m]))")
    assert p.render([Target("ml", "a.b"), Target("ml", "c|d")]) == (
        'sum by (namespace, deployment) (rate(model_requests_total{namespace="ml",'
        'deployment=~"a\\\\.b|c\\\\|d"}[5m]))'
    )
    with pytest.raises(ValueError, match="at least one target"):
        p.render([])


FALLBACKS = [
    (
        f'sum(x{{{PIN}}}) / sum(up{{job="kubelet"}})',
        "can match it only 'on (...)' labels",
    ),
    (f'x{{{PIN},pod=~"$deployment-.*"}}', "names '$deployment' in two matchers"),
    ("sum(rate(up[5m]))", "selector up has no placeholder"),
    (f"x{{{PIN}}} / on () group_left x{{{PIN}}} + up", "up names no deployment"),
    (f"sum(x{{{PIN}}}) or on () sum(up)", "it can only filter a deployment's series"),
    (f"sum(up) and on () sum(x{{{PIN}}})", "it can only filter a deployment's series"),
    (f"sum by (pod) (x{{{PIN}}}) / on () sum(up)", "must be a sum without 'by'"),
    (f"sum(up) / on () group_left sum(x{{{PIN}}})", "must be a sum without 'by'"),
    (f"sum(x{{{PIN}}}) / on (namespace) sum(up)", "labels that do not tell deployments apart"),
    ('x{pod!~"$deployment-.*"}', "a negative matcher with a placeholder cannot batch"),
    ('{__name__=~"${deployment}_total"}', "a metric name cannot tell deployments apart"),
    ('x{pod=~".*$deployment.*"}', "patterns on both sides of the placeholders"),
    ('x{pod=~"(a|$deployment)-.*"}', "inside a group of the regex"),
    ('x{pod=~"[$deployment]"}', "inside a character class"),
    ('x{pod=~"a|$deployment-.*"}', "an alternative '|' before its placeholders"),
    ('x{pod=~"$deployment+"}', "a repetition follows the last placeholder"),
    ('x{pod=~"(?i)$deployment-.*"}', "the regex ignores case"),
    (
        'sum(a{deployment="$deployment"}) / sum(b{namespace="$namespace",deployment="$deployment"})',
        "name the deployment through different placeholders",
    ),
    ('x{a="$deployment" or b="$deployment"}', "uses 'or' between matchers"),
    (f'x{{{PIN},rollguard_deployment="x"}}', "the label rollguard_deployment, which a batch"),
    (f"topk(1, x{{{PIN}}})", "topk aggregations"),
    (f"bottomk(1, x{{{PIN}}})", "bottomk aggregations"),
    (f"quantile(0.9, x{{{PIN}}})", "quantile aggregations"),
    (f'count_values("v", x{{{PIN}}})', "count_values aggregations"),
    (f"scalar(sum(x{{{PIN}}}))", "scalar() turns series into a single number"),
    (f"x{{{PIN}}} + vector(1)", "vector() creates a series without"),
    (f"sum by (pod) (x{{{PIN}}}) or vector(0)", "batched only after a sum without 'by'"),
    (f"absent(x{{{PIN}}})", "absent() returns one series"),
    (f'label_replace(x{{{PIN}}}, "deployment", "y", "", "")', "overwrites a label"),
    (f'label_join(sum(x{{{PIN}}}), "d", ",", "namespace")', "reads namespace, which"),
    (f"sum by (namespace) (x{{{PIN}}}) / sum(y{{{PIN}}})", "differ in whether they carry"),
    (f"x{{{PIN}}} or sum(y{{{PIN}}})", "the two sides of or differ"),
    (f"sum by (namespace) (x{{{PIN}}} or on (pod) sum(y{{{PIN}}}))", "groups by namespace, which"),
    (f"info(x{{{PIN}}})", "info() is not known"),
    (f"x{{{PIN}}} + fill(0) y{{{PIN}}}", "fill modifiers"),
    ("time()", "returns a single number"),
    ("1 + 1", "returns a single number"),
]


@pytest.mark.parametrize(("query", "reason"), FALLBACKS)
def test_unsafe_queries_run_per_deployment_with_a_reason(query: str, reason: str) -> None:
    p = plan(query)
    assert p.mode == "PerDeployment"
    assert reason in p.reason
    assert p.status("s").message == p.reason
    with pytest.raises(ValueError, match="runs per deployment"):
        p.render(TARGETS)
    assert p.render_one(Target("n", "d", "7"))  # still usable alone


# --- semantics: batched == per deployment, on fake series --------------------------------

T_END = 1_000.0


def _fake_series() -> dict[Labels, list[tuple[float, float]]]:
    """Counters for 4 deployments in 3 namespaces (two named web), 2 pods each, 1 s apart."""
    rng = random.Random(7)
    out: dict[Labels, list[tuple[float, float]]] = {}
    ids = [("ns-a", "web"), ("ns-b", "web"), ("ns-a", "api"), ("ns-b", "api"), ("ns-c", "web")]
    for ns, dep in ids:
        for pod in ("p1", "p2"):
            base = {"namespace": ns, "deployment": dep, "pod": f"{dep}-{pod}"}
            rates = {
                ("model_requests_total", (("code", "200"),)): rng.uniform(10, 30),
                ("model_requests_total", (("code", "500"),)): rng.uniform(0, 3),
                ("model_revenue_total", ()): rng.uniform(0.5, 2),
            }
            for le, share in (("0.1", 0.5), ("0.5", 0.9), ("1", 0.97), ("+Inf", 1.0)):
                rates["model_request_duration_seconds_bucket", (("le", le),)] = 20 * share
            for (name, extra), rate in rates.items():
                labels = tuple(sorted({**base, **dict(extra), "__name__": name}.items()))
                total, samples = 0.0, []
                for t in range(int(T_END) - 600, int(T_END) + 1):
                    total += rate * rng.uniform(0.5, 1.5)
                    samples.append((float(t), total))
                out[labels] = samples
    return out


DATA = _fake_series()


SEMANTIC = [q for q, _ in BATCHED if "@" not in q] + [
    f"sum by (pod) (rate({REQ}[30s]))",
    f"count(rate({ERR}[30s]) > 0.1)",
    f"avg without (pod) (rate({REV}[1m])) - on () max(rate({REV}[20s]))",
    f"sum by (code) (rate({ERR}[30s])) / ignoring (code) group_left sum(rate({REQ}[30s]))",
    f"sum by (code) (rate({REQ}[30s])) / on () group_left abs(-sum(rate({REQ}[30s])))",
    f"sum(rate({ERR}[30s])) and sum(rate({REQ}[30s])) > 40",
    f"sum(rate({ERR}[30s])) unless sum(rate({REQ}[30s])) > 40",
    f"sum by (namespace) (rate({REQ}[30s])) / on (namespace) sum by (namespace) (rate({ERR}[30s]))",
]


@pytest.mark.parametrize("query", SEMANTIC)
def test_batched_result_split_per_deployment_equals_each_deployments_own_result(query: str) -> None:
    assert split_equals_alone(DATA, query, TARGETS, [T_END, T_END - 37]), "should find data"


def test_the_label_presence_rule_guards_a_real_difference() -> None:
    # Per deployment this matches nothing ({namespace} vs {}); naively batched it would match.
    query = f"sum by (namespace) (rate({REQ}[30s])) / sum(rate({REQ}[30s]))"
    assert not plan(query).batched
    assert evaluate(DATA, pp.parse(render(query, namespace="ns-a", deployment="web")), T_END) == []
    naive = query.replace("sum(", "sum by (namespace, deployment) (").replace(
        "sum by (namespace)", "sum by (namespace, deployment)"
    )
    naive = naive.replace('namespace="$namespace"', 'namespace="ns-a"').replace(
        'deployment="$deployment"', 'deployment="web"'
    )
    assert len(evaluate(DATA, pp.parse(naive), T_END)) == 1
