"""Smoke tests: the local environment is a real control plane, Prometheus and simulator."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_api_client import PrometheusConnect

from devenv.launcher import EnvInfo
from devenv.operatorproc import OperatorProcess
from devenv.testing import (
    Kubectl,
    api_client_for,
    as_operator,
    deployment_manifest,
    linked_decision,
)

pytestmark = pytest.mark.integration

REVISION = "deployment.kubernetes.io/revision"


def _wait(what: str, probe: Any, timeout: float = 60.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _rolled_out(apps: client.AppsV1Api, namespace: str, name: str) -> bool:
    """Like `kubectl rollout status`: the controller saw the newest spec and finished it."""
    d = apps.read_namespaced_deployment(name, namespace)
    status = d.status
    conditions = {c.type: c.status for c in status.conditions or []}
    return bool(
        status.observed_generation == d.metadata.generation
        and status.updated_replicas == d.spec.replicas
        and status.replicas == d.spec.replicas
        and status.available_replicas == d.spec.replicas
        and conditions.get("Available") == "True"
    )


def _decision(name: str) -> dict[str, Any]:
    spec = yaml.safe_load((Path(__file__).parent / "data" / "decision-spec.yaml").read_text())
    return linked_decision(name, spec, model_deployment="fraud")


def test_crd_cel_transition_rule_rejects_changing_decision_evidence(
    env: EnvInfo, operator: OperatorProcess, namespace: str, api_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api_client)
    args = ("rollguard.dev", "v1alpha1", namespace, "rollbackdecisions")
    with pytest.raises(ApiException) as forged:
        custom.create_namespaced_custom_object(*args, _decision("d0"))
    assert "RollbackDecisions are created by the rollguard operator only, not by admin" in (
        forged.value.body
    )
    client.CustomObjectsApi(as_operator(env)).create_namespaced_custom_object(
        *args, _decision("d1")
    )

    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(
            *args, "d1", {"spec": {"recommended": {"toRevision": 1}}}
        )
    assert refused.value.status == 422
    assert "spec.recommended is evidence and immutable" in refused.value.body

    approval = {"decision": "Approve", "by": "admin", "reason": "looked at it"}
    custom.patch_namespaced_custom_object(*args, "d1", {"spec": {"approval": approval}})
    with pytest.raises(ApiException) as changed:
        custom.patch_namespaced_custom_object(
            *args, "d1", {"spec": {"approval": {**approval, "decision": "Reject"}}}
        )
    assert "can be set once" in changed.value.body


def test_deployment_updated_twice_has_three_revisions_running_and_available(
    api_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment_manifest("web", replicas=2))
    for image in ("registry.local/model:v2", "registry.local/model:v3"):
        _wait("rollout", lambda: _rolled_out(apps, namespace, "web"))
        apps.patch_namespaced_deployment(
            "web",
            namespace,
            {"spec": {"template": {"spec": {"containers": [{"name": "model", "image": image}]}}}},
        )
    _wait("Deployment Available at revision 3", lambda: _rolled_out(apps, namespace, "web"))
    replica_sets = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
    revisions = sorted(int(rs.metadata.annotations[REVISION]) for rs in replica_sets)
    assert revisions == [1, 2, 3]
    assert all(rs.metadata.owner_references[0].name == "web" for rs in replica_sets)
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    running = [
        p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
    ]
    assert len(running) == 2
    assert all(p.spec.containers[0].image == "registry.local/model:v3" for p in running)


def test_validating_admission_policy_denies_mallory_and_allows_admin(
    env: EnvInfo, kubectl: Kubectl, namespace: str
) -> None:
    policy = f"smoke-{namespace}"
    manifests = [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["configmaps"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "request.userInfo.username != 'mallory'",
                        "message": "mallory may not create ConfigMaps here",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
        # RBAC lets mallory create ConfigMaps here, so a denial can only come from the policy.
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "mallory-edit", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}
            ],
        },
    ]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
    try:

        def attempt(user: str, name: str) -> Any:
            return kubectl("create", "configmap", name, "-n", namespace, context=user, check=False)

        # Policies take effect asynchronously; wait until mallory is refused.
        denied = _wait(
            "the policy to be enforced",
            lambda: (r := attempt("mallory", f"m-{uuid.uuid4().hex[:6]}")).returncode != 0 and r,
            timeout=30,
        )
        assert "mallory may not create ConfigMaps here" in denied.stderr
        assert "ValidatingAdmissionPolicy" in denied.stderr
        assert attempt("admin", "from-admin").returncode == 0
    finally:
        kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            policy,
            check=False,
        )


def test_client_certificates_identify_the_three_users(env: EnvInfo) -> None:
    seen = {}
    for user in ("admin", "alice", "mallory"):
        review = client.AuthenticationV1Api(api_client_for(env, user)).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        info = review.status.user_info
        seen[user] = (info.username, set(info.groups or []))
    assert seen["admin"][0] == "admin" and "system:masters" in seen["admin"][1]
    assert seen["alice"][0] == "alice" and "ml-oncall" in seen["alice"][1]
    assert seen["mallory"][0] == "mallory" and seen["mallory"][1] == {"system:authenticated"}


def test_service_account_token_authenticates(
    env: EnvInfo, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("create", "serviceaccount", "robot", "-n", namespace)
    token = kubectl("create", "token", "robot", "-n", namespace, "--duration=10m").stdout.strip()
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload["sub"] == f"system:serviceaccount:{namespace}:robot"

    admin = api_client_for(env, "admin")
    configuration = client.Configuration()
    configuration.host = admin.configuration.host
    configuration.ssl_ca_cert = admin.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    review = client.AuthenticationV1Api(client.ApiClient(configuration)).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:robot"


def _error_ratio(prom: PrometheusConnect, namespace: str, deployment: str) -> float | None:
    selector = f'namespace="{namespace}",deployment="{deployment}"'
    result = prom.custom_query(
        f'sum(rate(model_requests_total{{{selector},code=~"5.."}}[5s]))'
        f" / sum(rate(model_requests_total{{{selector}}}[5s]))"
    )
    if not result:
        return None
    value = float(result[0]["value"][1])
    return value if value == value else None  # NaN while there is no traffic yet


def _served_and_failed(
    prom: PrometheusConnect, namespace: str, deployment: str, at_least: int
) -> tuple[float, float] | None:
    """(5xx answers, all answers) so far, once at least ``at_least`` requests were served."""
    selector = f'namespace="{namespace}",deployment="{deployment}"'
    errors = prom.custom_query(f'sum(model_requests_total{{{selector},code=~"5.."}})')
    total = prom.custom_query(f"sum(model_requests_total{{{selector}}})")
    if not errors or not total or float(total[0]["value"][1]) < at_least:
        return None
    return float(errors[0]["value"][1]), float(total[0]["value"][1])


def test_prometheus_answers_and_the_errors_profile_raises_the_5xx_rate(
    env: EnvInfo, api_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment_manifest("scorer", replicas=3))
    prom = PrometheusConnect(url=env.prometheus_url, disable_ssl=True)

    series = _wait(
        "model_requests_total in Prometheus",
        lambda: prom.get_current_metric_value(
            "model_requests_total", label_config={"namespace": namespace, "deployment": "scorer"}
        ),
        timeout=30,
    )
    assert {s["metric"]["code"] for s in series} >= {"200", "500"}
    errors, served = _wait(
        "600 requests served", lambda: _served_and_failed(prom, namespace, "scorer", 600), 60
    )
    # ~0.2% 5xx. Counted over everything served so far rather than a 5 s rate: the first rate
    # windows hold two or three scrapes per series and once read 4% on a healthy pod set.
    assert errors / served < 0.03

    switched = time.monotonic()
    apps.patch_namespaced_deployment(
        "scorer",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "model", "env": [{"name": "SIM_PROFILE", "value": "errors"}]}
                        ]
                    }
                }
            }
        },
    )
    _wait(
        "the 5xx ratio to rise above 5%",
        lambda: (r := _error_ratio(prom, namespace, "scorer")) is not None and r > 0.05,
        timeout=90,
    )
    # How soon depends on the rollout, the scrape and the 5 s rate: a figure, not the check.
    print(f"5xx ratio above 5% {time.monotonic() - switched:.0f} s after the switch")
