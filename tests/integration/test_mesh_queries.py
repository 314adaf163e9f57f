"""Measuring mesh-, proxy- and model-server-shaped queries against the real local Prometheus:
for every query shape, what the batched ``measure`` gives each deployment is, sample for
sample, what that deployment's own query gives. The fleet is chosen to confuse a batch: one
name in three namespaces, names that prefix others (``fraud``, ``fraud-v2``), a pair whose
``$namespace-$deployment`` forms are equal (``x``/``b-c`` and ``x-b``/``c``), and a silent
exporter. The simulator serves every family from the same counts (devenv.workload.families)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from kubernetes import client

from devenv.launcher import EnvInfo
from devenv.testing import deployment_manifest, fresh_namespace, poll
from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.core.tiers import resolve
from rollguard.signals.measure import MeasurementBatch, Target, measure
from rollguard.signals.prometheus import PrometheusSource, Series
from rollguard.signals.promql import plan, render

pytestmark = pytest.mark.integration

PIN = 'namespace="$namespace",deployment="$deployment"'
ISTIO = (
    'reporter="destination",destination_workload_namespace="$namespace",'
    'destination_workload="$deployment"'
)


def _envoy_5xx(cluster: str) -> str:
    return (
        f"sum(rate(envoy_cluster_upstream_rq{{envoy_cluster_name{cluster},"
        'envoy_response_code=~"5.*"}[5s]))'
    )


SHAPES = {
    "pinned-error-ratio": f'sum(rate(model_requests_total{{{PIN},code=~"5.."}}[5s]))'
    f" / sum(rate(model_requests_total{{{PIN}}}[5s]))",
    "istio-error-ratio": f'sum(rate(istio_requests_total{{{ISTIO},response_code=~"5.."}}[5s]))'
    f" / sum(rate(istio_requests_total{{{ISTIO}}}[5s]))",
    "pod-regex-p99": "histogram_quantile(0.99, sum by (le) (rate("
    'model_pod_request_duration_seconds_bucket{namespace="$namespace",'
    'pod=~"$deployment-[a-z0-9]+-[a-z0-9]+"}[5s])))',
    "envoy-regex-5xx": _envoy_5xx('=~"${namespace}_${deployment}-canary_[0-9]+"'),
    "envoy-exact-5xx": _envoy_5xx('="${namespace}_${deployment}-canary_80"'),
    # Ambiguous by construction: x/b-c and x-b/c name the same Traefik service.
    "traefik-rate": "sum(rate(traefik_service_requests_total{"
    'service="$namespace-$deployment-canary-80@kubernetescrd"}[5s]))',
    "seldon-rate": "sum(rate(seldon_api_executor_server_requests_seconds_count{"
    'namespace="$namespace",deployment_name=~"$deployment"}[5s]))',
    # Against the whole fleet (a baseline that names no deployment): a share of all traffic.
    "share-of-fleet": f"sum(rate(model_requests_total{{{PIN}}}[5s])) / on () group_left "
    "sum(rate(model_requests_total[5s]))",
    # A default where there is no data: the silent exporter gets 0 at every step.
    "errors-or-zero": f'sum(rate(model_requests_total{{{PIN},code=~"5.."}}[5s])) or vector(0)',
    # Linkerd-like, no namespace: a name's query sums that name across namespaces.
    "by-name-any-namespace": 'sum(rate(model_requests_total{deployment=~"$deployment"}[5s]))',
}
WINDOW = 20.0


def _policy() -> EffectivePolicy:
    signals = [
        {"name": name, "query": query, "objective": {"max": 1e6}, "critical": 1e7}
        for name, query in SHAPES.items()
    ]
    spec = {
        "riskTier": "medium",
        "evaluation": {"window": f"{WINDOW:.0f}s"},
        "signals": signals,
        "impact": {
            "categories": [{"name": "all", "weight": 1, "signals": {"istio-error-ratio": 1}}]
        },
    }
    return resolve(RollbackPolicySpec.model_validate(spec))


@pytest.fixture
def dashed_namespace(api_client: client.ApiClient, namespace: str) -> Iterator[str]:
    """``{namespace}-b``: its deployment ``c`` and ``namespace``'s ``b-c`` join to one name."""
    with fresh_namespace(api_client, name=f"{namespace}-b") as name:
        yield name


def _show(series: Series | None, n: int = 4) -> str:
    if series is None:
        return "no series"
    pairs = ", ".join(
        f"{t:.0f}:{v:.6g}" for t, v in zip(series.timestamps[:n], series.values[:n], strict=False)
    )
    return f"{series.values.size} samples [{pairs}, ...] {series.labels}"


def _differences(
    batch: MeasurementBatch, source: PrometheusSource, silent: set[Target]
) -> tuple[list[str], dict[tuple[str, Target], Series | None]]:
    """Every (shape, target) where the batched samples differ from the target's own query,
    in words; and what each target's own query returned."""
    problems: list[str] = []
    alone: dict[tuple[str, Target], Series | None] = {}
    for s, shape in enumerate(batch.signals):
        for b, target in enumerate(batch.targets):
            got = batch.samples[b][s]
            text = render(SHAPES[shape], namespace=target.namespace, deployment=target.deployment)
            series = source.query_range(
                query=text, start=batch.start, end=batch.end, step=batch.step
            )
            where = f"{shape} {target}"
            if len(series) > 1:
                problems.append(f"{where}: its own query returned {len(series)} series")
                continue
            mine = series[0] if series else None
            alone[shape, target] = mine
            if got.query != text:
                problems.append(f"{where}: evidence {got.query!r} is not its query {text!r}")
            if not got.available:
                problems.append(
                    f"{where}: batched unavailable ({got.message}); alone {_show(mine)}"
                )
                continue
            if mine is None:
                if got.values.size:
                    problems.append(f"{where}: batched {got.values.size} samples, alone none")
                elif target not in silent:
                    problems.append(f"{where}: no samples at all (the test sees no data)")
                continue
            if mine.values.size < WINDOW / 2:
                problems.append(f"{where}: too few samples to compare, alone {_show(mine)}")
            same_times = np.array_equal(got.timestamps, mine.timestamps)
            if not same_times or not np.allclose(got.values, mine.values, rtol=1e-9, atol=0):
                shown = Series(labels={}, timestamps=got.timestamps, values=got.values)
                problems.append(f"{where}: batched {_show(shown)}; alone {_show(mine)}")
    return problems, alone


def test_batched_mesh_queries_equal_per_deployment_queries_on_real_prometheus(
    env: EnvInfo,
    api_client: client.ApiClient,
    namespace: str,
    second_namespace: str,
    dashed_namespace: str,
) -> None:
    x, y, xb = namespace, second_namespace, dashed_namespace
    fleet = [
        (x, "fraud", "healthy", 2),
        (x, "fraud-v2", "errors", 2),  # prefixed by fraud
        (x, "web", "latency", 1),
        (x, "b-c", "errors", 2),  # x-b-c... as xb/c
        (x, "api", "healthy", 3),
        (x, "quiet", "silent", 1),
        (y, "fraud", "errors", 2),  # the same name in another namespace
        (y, "fraud-v2", "healthy", 1),
        (y, "web", "healthy", 2),
        (y, "ranker", "noisy", 2),
        (xb, "c", "healthy", 1),
        (xb, "fraud", "latency", 2),  # and in a third
    ]
    apps = client.AppsV1Api(api_client)
    for ns, name, profile, replicas in fleet:
        manifest: Any = deployment_manifest(name, profile=profile, replicas=replicas)
        apps.create_namespaced_deployment(ns, manifest)
    targets = [Target(ns, name) for ns, name, _, _ in fleet]
    silent = {Target(x, "quiet")}
    policy = _policy()

    probe = PrometheusSource(url=env.prometheus_url)

    def all_reporting() -> bool:
        # Not a query under test: one plain selector over every family's first scrape.
        now = time.time()
        series = probe.query_range(
            query="sum by (destination_workload_namespace, destination_workload) "
            f'(rate(istio_requests_total{{destination_workload_namespace=~"{x}|{y}|{xb}"}}[5s]))',
            start=now - WINDOW,
            end=now,
            step=1.0,
        )
        counts = {
            (s.labels["destination_workload_namespace"], s.labels["destination_workload"]): (
                s.values.size
            )
            for s in series
        }
        return all(
            counts.get((t.namespace, t.deployment), 0) >= WINDOW - 2
            for t in targets
            if t not in silent
        )

    poll(
        f"{len(targets) - len(silent)} deployments reporting for {WINDOW:.0f}s",
        all_reporting,
        timeout=90.0,
        every=0.5,
    )

    # A moment in the past, so every sample in the range is already ingested: the batched and
    # the per-deployment queries then read exactly the same data.
    now = float(int(time.time()) - 3)
    source = PrometheusSource(url=env.prometheus_url)
    batch = measure(source=source, policy=policy, targets=targets, now=now, step=1.0)
    modes = {run.signal: (run.mode, len(run.queries), run.reason) for run in batch.runs}
    report = "\n".join(f"  {k}: {m} in {n} queries {r}" for k, (m, n, r) in modes.items())
    assert all(run.ok for run in batch.runs), [run.error for run in batch.runs]

    problems, alone = _differences(batch, source, silent)
    print(f"\nmeasured {len(targets)} targets x {len(SHAPES)} shapes:\n{report}")
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems) + f"\n{report}"

    # The fleet confuses what it should: a test that cannot fail would prove nothing.
    traefik = [alone["traefik-rate", Target(x, "b-c")], alone["traefik-rate", Target(xb, "c")]]
    assert traefik[0] is not None and traefik[1] is not None
    np.testing.assert_array_equal(traefik[0].values, traefik[1].values)  # one merged service
    fraud = [alone["by-name-any-namespace", Target(ns, "fraud")] for ns in (x, y, xb)]
    assert fraud[0] is not None and fraud[1] is not None and fraud[2] is not None
    np.testing.assert_array_equal(fraud[0].values, fraud[1].values)  # summed over namespaces
    np.testing.assert_array_equal(fraud[0].values, fraud[2].values)
    quiet = batch.samples[targets.index(Target(x, "quiet"))][batch.signals.index("errors-or-zero")]
    assert quiet.values.size >= WINDOW - 1 and not quiet.values.any()  # the default, filled
    s_istio = batch.signals.index("istio-error-ratio")
    istio = {
        t: float(np.mean(batch.samples[b][s_istio].values))
        for b, t in enumerate(targets)
        if t.deployment == "fraud"
    }
    assert istio[Target(y, "fraud")] > 0.05 > istio[Target(x, "fraud")], istio
    assert batch.queries_issued <= 3 * len(SHAPES) < len(targets) * len(SHAPES), report


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_mesh_query_shape_is_batched(shape: str) -> None:
    made = plan(SHAPES[shape])
    assert made.mode == "Batched", made.reason
