"""Queries in the shapes meshes, proxies and model servers expose batch, and the batch split per
deployment equals each deployment's own query: Istio's workload labels, pod-name regexes,
compound route and cluster names (``=`` and ``=~``), Seldon's and Linkerd's labels,
``$revision``, and selectors that name the deployment through different labels. Checked on
fake series with awkward names (the same name in two namespaces, a name that is a prefix of
another, compound names that collide), and as a property over generated names and shapes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mesh_shapes import DATA, FLEET, SHAPES, T_END, fleet_series
from promql_eval import split_equals_alone

from rollguard.signals.promql import Target, plan


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
