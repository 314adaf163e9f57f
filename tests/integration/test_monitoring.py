"""Measuring against the real local Prometheus: a batched query (one HTTP request per signal
for every deployment) gives each deployment exactly what its own query gives, including two
deployments of the same name in different namespaces; a silent exporter yields no samples."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from kubernetes import client

from devenv.launcher import EnvInfo
from devenv.testing import deployment_manifest, poll
from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.core.tiers import resolve
from rollguard.signals.measure import Target, measure, to_measurements
from rollguard.signals.prometheus import PrometheusSource
from rollguard.signals.promql import plan, render

pytestmark = pytest.mark.integration

PIN = 'namespace="$namespace",deployment="$deployment"'
SIGNALS = {
    "error_rate": f'sum(rate(model_requests_total{{{PIN},code=~"5.."}}[5s]))'
    f" / sum(rate(model_requests_total{{{PIN}}}[5s]))",
    "latency_p99": "histogram_quantile(0.99, sum by (le) "
    f"(rate(model_request_duration_seconds_bucket{{{PIN}}}[5s])))",
    "revenue_per_minute": f"sum(rate(model_revenue_total{{{PIN}}}[5s])) * 60",
    "busiest_code": f"topk(1, sum by (code) (rate(model_requests_total{{{PIN}}}[5s])))",
}


def _policy() -> EffectivePolicy:
    signals = [
        {"name": name, "query": query, "objective": {"max": 1e6}, "critical": 1e7}
        for name, query in SIGNALS.items()
    ]
    spec = {
        "riskTier": "medium",
        "evaluation": {"window": "30s"},
        "signals": signals,
        "impact": {"categories": [{"name": "revenue", "weight": 1, "signals": {"error_rate": 1}}]},
    }
    return resolve(RollbackPolicySpec.model_validate(spec))


def test_batched_queries_equal_per_deployment_queries_on_real_prometheus(
    env: EnvInfo, api_client: client.ApiClient, namespace: str, second_namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    fleet = [
        (namespace, "web", "healthy"),
        (second_namespace, "web", "errors"),  # same name, other namespace, other behaviour
        (namespace, "api", "latency"),
        (second_namespace, "quiet", "silent"),
    ]
    for ns, name, profile in fleet:
        manifest: Any = deployment_manifest(name, profile=profile)
        apps.create_namespaced_deployment(ns, manifest)
    targets = [Target(ns, name) for ns, name, _ in fleet]
    policy = _policy()
    plans = {s.name: plan(s.query) for s in policy.signals}
    assert [p.mode for p in plans.values()] == ["Batched"] * 3 + ["PerDeployment"]

    probe = PrometheusSource(url=env.prometheus_url)
    error_plan = plans["error_rate"]

    def all_reporting() -> bool:
        now = time.time()
        series = probe.query_range(
            query=error_plan.render(targets),
            start=now - 20,
            end=now,
            step=1.0,
        )
        counts = {(s.labels["namespace"], s.labels["deployment"]): s.values.size for s in series}
        return all(counts.get((t.namespace, t.deployment), 0) >= 14 for t in targets[:3])

    poll("error ratios of the three exporting deployments", all_reporting, timeout=60.0, every=0.5)

    # A moment in the past, so every sample in the range is already ingested: the batched and
    # the per-deployment queries then read exactly the same data.
    now = float(int(time.time()) - 3)
    source = PrometheusSource(url=env.prometheus_url)
    batch = measure(source=source, policy=policy, plans=plans, targets=targets, now=now, step=1.0)
    assert batch.queries_issued == source.queries == 3 + len(targets)  # 3 batched + topk each
    assert all(run.ok for run in batch.runs), [run.error for run in batch.runs]

    checked = 0
    for b, target in enumerate(targets):
        for s, signal in enumerate(policy.signals):
            got = batch.samples[b][s]
            alone = render(signal.query, namespace=target.namespace, deployment=target.deployment)
            assert got.query == alone
            series = source.query_range(
                query=alone, start=batch.start, end=batch.end, step=batch.step
            )
            if target.deployment == "quiet":
                assert got.available and got.values.size == 0 and series == []
                continue
            assert len(series) == 1, f"{target} {signal.name}"
            np.testing.assert_array_equal(got.timestamps, series[0].timestamps)
            np.testing.assert_allclose(got.values, series[0].values, rtol=1e-12, atol=0)
            assert got.values.size >= 8
            checked += 1
    assert checked == 3 * len(SIGNALS)

    # The two deployments named web are told apart, and behave as their profiles say.
    errors = {
        t.namespace: float(np.mean(batch.samples[b][0].values))
        for b, t in enumerate(targets)
        if t.deployment == "web"
    }
    assert errors[second_namespace] > 0.05 > errors[namespace]

    measurements, evidence = to_measurements(batch)
    assert measurements.values.shape[:2] == (len(targets), len(SIGNALS))
    assert measurements.available.all()
    assert not measurements.mask[3].any()  # silent: no samples, so the domain says missing data
    assert evidence[0][0] is not None and len(evidence[0][0].values) == int(
        measurements.mask[0, 0].sum()
    )
