"""The workload simulator serves StatefulSets and Argo Rollouts as it serves Deployments:
their model_requests_total reaches the real Prometheus under ``deployment=<name>`` and
follows the live template; a Rollout's canary paused at 50% serves half of the requests from
each template, and an abort gives them all back to the stable one."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_api_client import PrometheusConnect

from devenv.launcher import EnvInfo
from devenv.testing import poll, rollout_manifest, stateful_set_manifest

pytestmark = pytest.mark.integration

WAIT = 60.0
ROLLOUTS = ("argoproj.io", "v1alpha1")
# 100 requests a second per replica: a thousand requests, enough for a share to be told
# apart from its neighbours by several standard deviations, take five seconds.
RPS = {"name": "SIM_RPS", "value": "100"}
SAMPLE = 1000


def _env(profile: str) -> list[dict[str, str]]:
    return [{"name": "SIM_PROFILE", "value": profile}, RPS]


def _with_env(manifest: dict[str, Any], profile: str) -> dict[str, Any]:
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = _env(profile)
    return manifest


class Served:
    """What Prometheus has of one workload's model-server series."""

    def __init__(self, env: EnvInfo, namespace: str, name: str) -> None:
        self.prom = PrometheusConnect(url=env.prometheus_url, disable_ssl=True)
        self.selector = f'namespace="{namespace}",deployment="{name}"'
        self.namespace = namespace

    def _sum(self, matchers: str) -> float | None:
        result = self.prom.custom_query(f"sum(model_requests_total{{{matchers}}})")
        return float(result[0]["value"][1]) if result else None

    def counts(self) -> tuple[float, float] | None:
        """(5xx answers, all answers) so far."""
        errors = self._sum(f'{self.selector},code=~"5.."')
        total = self._sum(self.selector)
        return None if errors is None or total is None else (errors, total)

    def profiles(self) -> set[str]:
        series = self.prom.custom_query(f"sim_profile_info{{{self.selector}}}")
        return {s["metric"]["profile"] for s in series}

    def pods(self) -> set[str]:
        series = self.prom.custom_query(
            f'model_pod_request_duration_seconds_count{{namespace="{self.namespace}"}}'
        )
        return {s["metric"]["pod"] for s in series}

    def profiles_are(self, *profiles: str) -> None:
        """Until Prometheus scraped the simulator serving exactly ``profiles``."""
        poll(
            f"Prometheus to see profiles {', '.join(profiles)} served",
            lambda: self.profiles() == set(profiles),
            timeout=WAIT,
            every=0.5,
        )

    def five_xx_share_of_next(self, requests: int) -> float:
        """The share of 5xx answers among the next ``requests`` Prometheus sees."""
        start = poll("model_requests_total in Prometheus", self.counts, timeout=WAIT, every=0.5)

        def enough() -> tuple[float, float] | None:
            now = self.counts()
            return now if now is not None and now[1] - start[1] >= requests else None

        end = poll(f"{requests} more requests served", enough, timeout=WAIT, every=0.5)
        return float((end[0] - start[0]) / (end[1] - start[1]))


def test_a_stateful_set_is_served_under_its_name_and_follows_its_template(
    env: EnvInfo, api_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_stateful_set(
        namespace, _with_env(stateful_set_manifest("scorer", replicas=2), "healthy")
    )
    served = Served(env, namespace, "scorer")
    served.profiles_are("healthy")
    # ~0.2% 5xx; and the pods are named like a StatefulSet's.
    assert served.five_xx_share_of_next(SAMPLE) < 0.02
    assert served.pods() == {"scorer-0", "scorer-1"}

    apps.patch_namespaced_stateful_set(
        "scorer",
        namespace,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "model", "env": _env("errors")}]}}
            }
        },
    )
    served.profiles_are("errors")
    assert served.five_xx_share_of_next(SAMPLE) > 0.06  # ~12%


class Rollouts:
    """One namespace's Argo Rollouts."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.args = (*ROLLOUTS, namespace, "rollouts")

    def create(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(*self.args, body)

    def set_profile(self, name: str, profile: str) -> None:
        patch = [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/env",
                "value": _env(profile),
            }
        ]
        self.custom.patch_namespaced_custom_object(
            *self.args, name, patch, _content_type="application/json-patch+json"
        )

    def abort(self, name: str) -> None:
        """What ``kubectl argo rollouts abort`` does."""
        self.custom.patch_namespaced_custom_object_status(
            *self.args, name, {"status": {"abort": True}}
        )

    def phase(self, name: str) -> str | None:
        """The Rollout's phase once the controller has seen its latest spec."""
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(*self.args, name)
        status = obj.get("status", {})
        seen = str(status.get("observedGeneration")) == str(obj["metadata"]["generation"])
        return str(status.get("phase")) if seen else None


@pytest.fixture
def rollouts(api_client: client.ApiClient, namespace: str) -> Rollouts:
    """The namespace's Rollouts; skips when the cluster has no Argo Rollouts CRD."""
    try:
        client.ApiextensionsV1Api(api_client).read_custom_resource_definition(
            "rollouts.argoproj.io"
        )
    except ApiException as err:
        if err.status != 404:
            raise
        pytest.skip("the cluster has no Argo Rollouts CRD (rollouts.argoproj.io)")
    return Rollouts(api_client, namespace)


def test_a_rollout_is_served_and_its_paused_canary_gets_half_the_requests(
    env: EnvInfo, rollouts: Rollouts, namespace: str
) -> None:
    rollouts.create(_with_env(rollout_manifest("scorer", replicas=2), "healthy"))
    served = Served(env, namespace, "scorer")
    poll(
        "Rollout scorer Healthy",
        lambda: rollouts.phase("scorer") == "Healthy",
        timeout=WAIT,
        every=0.5,
    )
    served.profiles_are("healthy")
    assert served.five_xx_share_of_next(SAMPLE) < 0.02  # ~0.2%
    assert len(served.pods()) == 2

    # The canary step sets a weight of 50 (one of two pods) and pauses until promoted.
    rollouts.set_profile("scorer", "errors")
    poll(
        "Rollout scorer Paused",
        lambda: rollouts.phase("scorer") == "Paused",
        timeout=WAIT,
        every=0.5,
    )
    served.profiles_are("healthy", "errors")
    half = served.five_xx_share_of_next(SAMPLE)
    # A figure, recorded whatever the check says.
    print(f"5xx share with the canary paused at 50%: {half:.2%}")
    assert 0.03 < half < 0.095, half  # ~6.1%: half of 0.2% and half of 12%

    rollouts.abort("scorer")
    served.profiles_are("healthy")
    assert served.five_xx_share_of_next(SAMPLE) < 0.02
