"""Queries in the shapes meshes, proxies and model servers expose batch, and the batch split per
deployment equals each deployment's own query: Istio's workload labels, pod-name regexes,
compound route and cluster names (``=`` and ``=~``), Seldon's and Linkerd's labels,
``$revision``, and selectors that name the deployment through different labels. Checked on
fake series with awkward names (the same name in two namespaces, a name that is a prefix of
another, compound names that collide), and as a property over generated names and shapes."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from promql_eval import Data, Labels, split_equals_alone

from rollguard.signals.promql import Target, plan

T_END = 1_000.0
CODES = (("200", 0.95), ("500", 0.05))
BUCKETS = (("0.1", 0.5), ("0.5", 0.9), ("1", 0.97), ("+Inf", 1.0))


def _hash(*parts: str, size: int) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return "".join(c if c.isalpha() or i % 3 else "x" for i, c in enumerate(digest[:size]))


def _counter(rng: random.Random, rate: float) -> list[tuple[float, float]]:
    total, out = 0.0, []
    for t in range(int(T_END) - 300, int(T_END) + 1, 5):
        total += rate * 5 * rng.uniform(0.5, 1.5)
        out.append((float(t), total))
    return out


def fleet_series(targets: list[Target], seed: int = 7) -> Data:
    """Every family the shapes read, for each target (two pods each)."""
    rng = random.Random(seed)
    out: Data = {}

    def add(name: str, labels: dict[str, str], rate: float) -> None:
        key: Labels = tuple(sorted({**labels, "__name__": name}.items()))
        out[key] = _counter(rng, rate)

    for target in targets:
        ns, dep, rev = target.namespace, target.deployment, target.revision or "1"
        rps = rng.uniform(5, 50)
        template = _hash(ns, dep, size=9)
        for code, share in CODES:
            add("model_requests_total", {"namespace": ns, "deployment": dep, "code": code,
                                         "revision": rev}, rps * share)  # fmt: skip
            add(
                "istio_requests_total",
                {"reporter": "destination", "destination_workload": dep,
                 "destination_workload_namespace": ns, "namespace": "istio-system",
                 "response_code": code},
                rps * share,
            )  # fmt: skip
            add("envoy_cluster_upstream_rq",
                {"envoy_cluster_name": f"{ns}_{dep}-canary_80", "envoy_response_code": code},
                rps * share)  # fmt: skip
            add(
                "traefik_service_requests_total",
                {"service": f"{ns}-{dep}-canary-80@kubernetescrd", "code": code},
                rps * share,
            )
            add("envoy_cluster_upstream_rq",
                {"envoy_cluster_name": f"{ns}-{dep}-canary-8_{ns}", "envoy_response_code": code},
                rps * share)  # fmt: skip
            add("gloo_rq", {"route": f"{ns}/v1/{dep}", "code": code}, rps * share)
            add(
                "seldon_api_executor_server_requests_seconds_count",
                {"deployment_name": dep, "namespace": ns, "code": code},
                rps * share,
            )
        for replica in range(2):
            pod = f"{dep}-{template}-{_hash(ns, dep, str(replica), size=5)}"
            for le, share in BUCKETS:
                add("model_pod_request_duration_seconds_bucket",
                    {"namespace": ns, "pod": pod, "le": le}, rps * share / 2)  # fmt: skip
    return out


# Awkward on purpose: web twice, web a prefix of web-api, m-1 of m-10, and a-b/c and a/b-c
# whose "$namespace-$deployment" names are the same.
FLEET = [
    Target("ns-a", "web", "3"),
    Target("ns-b", "web", "3"),
    Target("ns-a", "web-api", "3"),
    Target("ns-a", "api", "4"),
    Target("a-b", "c", "1"),
    Target("a", "b-c", "1"),
    Target("ml", "m-1", "2"),
    Target("ml", "m-10", "2"),
]
DATA = fleet_series(FLEET)

ISTIO = (
    'istio_requests_total{reporter="destination",destination_workload_namespace="$namespace",'
    'destination_workload="$deployment"'
)
POD_BUCKET = (
    'model_pod_request_duration_seconds_bucket{namespace="$namespace",'
    'pod=~"$deployment-[a-z0-9]+-[a-z0-9]+"}'
)
MODEL = 'model_requests_total{namespace="$namespace",deployment="$deployment"}'
ENVOY = 'envoy_cluster_upstream_rq{envoy_cluster_name=~"${namespace}_${deployment}-canary_[0-9]+"'
SHAPES = {
    "istio error ratio": f'sum(rate({ISTIO},response_code=~"5.."}}[30s])) '
    f"/ sum(rate({ISTIO}}}[30s]))",
    "istio without namespace": 'sum(rate(istio_requests_total{destination_workload="$deployment"}'
    "[30s]))",
    "pod-name p99": f"histogram_quantile(0.99, sum by (le) (rate({POD_BUCKET}[30s])))",
    "pod-name per pod": f'sum by (pod) (rate({POD_BUCKET[:-1]},le="+Inf"}}[30s]))',
    "pod-name without": f'sum without (pod, le) (rate({POD_BUCKET[:-1]},le="1"}}[1m]))',
    "pod-name subquery": f"max_over_time(sum(rate({POD_BUCKET}[30s]))[2m:30s])",
    "envoy regex ratio": f'sum(rate({ENVOY},envoy_response_code=~"5.*"}}[30s])) '
    f"/ sum(rate({ENVOY}}}[30s]))",
    "envoy exact": "sum(rate(envoy_cluster_upstream_rq"
    '{envoy_cluster_name="${namespace}_${deployment}-canary_80"}[30s]))',
    "traefik colliding names": "sum(rate(traefik_service_requests_total"
    '{service=~"$namespace-$deployment-canary-[0-9]+@kubernetescrd",code=~"5.."}[30s]))',
    "seldon": "sum(rate(seldon_api_executor_server_requests_seconds_count"
    '{namespace="$namespace",deployment_name="$deployment",code="500"}[30s]))',
    "linkerd-style regex": 'sum(rate(model_requests_total{namespace="$namespace",'
    'deployment=~"$deployment"}[30s]))',
    "gloo, the namespace twice": "sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"
    '"$namespace-${deployment}-canary-[0-9]*_$namespace",envoy_response_code="500"}[30s]))',
    "placeholders apart": 'sum(rate(gloo_rq{route=~"$namespace/.*/$deployment"}[30s]))',
    "against the fleet's ratio": f'sum(rate({MODEL[:-1]},code="500"}}[30s])) / sum(rate({MODEL}[30s])) '
    '- on () sum(rate(model_requests_total{code="500"}[30s])) / on () '
    "sum(rate(model_requests_total[30s]))",
    "over a scalar baseline": f"sum(rate({MODEL}[30s])) / "
    'scalar(sum(rate(model_requests_total{code="200"}[30s])))',
    "only while the fleet serves": f"sum(rate({MODEL}[30s])) and on () "
    "(sum(rate(model_requests_total[30s])) > 1)",
    "share of the fleet per code": f"sum by (code) (rate({MODEL}[30s])) / on (code) "
    "group_left sum by (code) (rate(model_requests_total[30s]))",
    "revision": 'sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment",'
    'revision="$revision"}[30s]))',
    "two label schemes": 'sum(rate(model_requests_total{namespace="$namespace",'
    f'deployment="$deployment",code="500"}}[30s])) / sum(rate({ISTIO}}}[30s]))',
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_real_world_shapes_batch_and_split_equals_each_deployments_own_query(shape: str) -> None:
    query = SHAPES[shape]
    assert plan(query).batched, plan(query).reason
    assert split_equals_alone(DATA, query, FLEET, [T_END, T_END - 40]) > 0


def test_names_that_could_be_confused_share_no_batch_and_others_do() -> None:
    pods = plan(SHAPES["pod-name p99"])
    groups = [{str(FLEET[i]) for i in b.members} for b in pods.batches(FLEET)]
    assert len(groups) == 2  # web-api apart from web; m-1 and m-10 cannot be confused here
    assert any("ns-a/web-api" in g and "ns-a/web" not in g for g in groups)
    assert any({"ml/m-1", "ml/m-10"} <= g for g in groups)
    istio = plan(SHAPES["istio error ratio"])
    assert len(istio.batches(FLEET)) == 1
    assert istio.key_labels == ("destination_workload_namespace", "destination_workload")
    # the same "$namespace-$deployment" key: both targets get the series, as alone
    traefik = plan(SHAPES["traefik colliding names"])
    assert traefik.key(Target("a-b", "c")) == traefik.key(Target("a", "b-c")) == ("a-b-c",)


# --- property: generated names and shapes ---------------------------------------------------

_NAME = st.text(alphabet="ab-1", min_size=1, max_size=4).filter(
    lambda s: s[0] != "-" and s[-1] != "-"
)
_SELECTORS = [
    'envoy_cluster_upstream_rq{envoy_cluster_name=~"$namespace-${deployment}-canary-[0-9]*_$namespace"}',
    'gloo_rq{route=~"$namespace/.*/$deployment"}',
    'model_requests_total{namespace="$namespace",deployment="$deployment"}',
    'model_requests_total{namespace=~"$namespace",deployment=~"$deployment",code="500"}',
    'istio_requests_total{destination_workload_namespace="$namespace",'
    'destination_workload="$deployment"}',
    'istio_requests_total{destination_workload="$deployment",response_code=~"2.."}',
    'envoy_cluster_upstream_rq{envoy_cluster_name="${namespace}_${deployment}-canary_80"}',
    'envoy_cluster_upstream_rq{envoy_cluster_name=~"^${namespace}_${deployment}-canary_.*$"}',
    'traefik_service_requests_total{service=~"$namespace-$deployment-canary-[0-9]+@.*"}',
    'traefik_service_requests_total{service=~".*-$deployment-canary-80@kubernetescrd"}',
    'model_pod_request_duration_seconds_bucket{namespace="$namespace",pod=~"$deployment-.*"}',
    'model_pod_request_duration_seconds_bucket{pod=~"$deployment-[a-z0-9]+-[a-z0-9]+",le="1"}',
]
_WRAPPERS = [
    "sum(rate({s}[30s])) / on () group_left sum(rate(model_requests_total[1m]))",
    "sum(rate({s}[30s]))",
    "sum by (code, response_code, le) (rate({s}[30s]))",
    "sum without (pod) (increase({s}[1m]))",
    "sum(rate({s}[30s])) / sum(rate({s}[1m]))",
    "max_over_time(sum(rate({s}[30s]))[1m:30s]) * 60",
    "avg(rate({s}[30s])) - on () group_left max(rate({s}[1m]))",
]


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.tuples(_NAME, _NAME), min_size=1, max_size=6, unique=True),
    selector=st.sampled_from(_SELECTORS),
    wrapper=st.sampled_from(_WRAPPERS),
)
def test_property_any_batched_shape_splits_into_each_deployments_own_result(
    names: list[tuple[str, str]], selector: str, wrapper: str
) -> None:
    targets = [Target(ns, dep, "1") for ns, dep in names]
    query = wrapper.replace("{s}", selector)
    p = plan(query)
    if not p.batched:  # only the on () form may refuse, and it says why
        assert "on ()" in query and p.reason
        return
    split_equals_alone(fleet_series(targets, seed=len(names)), query, targets, [T_END])
