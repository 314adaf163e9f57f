"""Signal queries in the shapes real meshes and model servers expose, with a fake fleet whose
series have awkward names (the same name in two namespaces, a name that is a prefix of another,
compound names that collide). Shared by the PromQL and measuring tests."""

from __future__ import annotations

import hashlib
import random

from promql_eval import Data, Labels

from rollguard.signals.promql import Target

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
