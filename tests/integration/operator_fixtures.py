"""Fixtures that run the real operator (`rollguard run`, devenv.operatorproc) against the local
environment, with the ServiceAccount and RBAC from deploy/, never as admin."""

from __future__ import annotations

import copy
import json
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from kubernetes import client

from devenv.operatorproc import OperatorProcess
from devenv.testing import (
    Kubectl,
    deployment_manifest,
    fast_policy,
    rollout_manifest,
    stateful_set_manifest,
)
from rollguard.api.base import TARGET_API_VERSIONS, TargetRef
from rollguard.core.revisions import current_revision
from rollguard.kube.client import Cluster
from rollguard.kube.targets import LiveReads


def wait_for(
    what: str,
    probe: Callable[[], Any],
    *,
    timeout: float = 90.0,
    interval: float = 0.5,
    operator: OperatorProcess | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\noperator log:\n{operator.tail()}" if operator else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


GROUP, VERSION = "rollguard.dev", "v1alpha1"
WORKLOADS = {
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "Rollout": ("argoproj.io", "v1alpha1", "rollouts"),
}
# A 10 s window (of 10 s rates, 400 requests each at the simulator's 40 per second): the healthy
# 0.2% and the noisy profile's bursts stay far below the 1.5% limit, and a rollback's
# validation, which starts once the window and the rates see nothing of the bad revision,
# begins 10 s sooner than with fast_policy's 20 s.
FAST_POLICY: dict[str, Any] = fast_policy(window="10s")


class Scenario:
    """One model service under a policy in a fresh namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.kind = "Deployment"

    def create(self, kind_plural: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, kind_plural, body)

    def get(self, kind_plural: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, kind_plural, name
        )
        return obj

    def decisions(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, "rollbackdecisions"
        )["items"]
        return items

    def setup(
        self,
        *,
        policy: dict[str, Any] | None = None,
        profile: str = "healthy",
        mdep_extra: dict[str, Any] | None = None,
        kind: str = "Deployment",
        steps: list[dict[str, Any]] | None = None,
    ) -> None:
        """The workload ``fraud`` (a ``kind``; ``steps``: a Rollout's canary steps) at revision
        1, its policy, and its ModelDeployment with revision 1 approved."""
        self.kind = kind
        if kind == "Deployment":
            body = deployment_manifest("fraud", profile=profile, replicas=2)
        elif kind == "StatefulSet":
            body = stateful_set_manifest("fraud", profile=profile, replicas=2)
        else:
            body = rollout_manifest("fraud", profile=profile, replicas=2, steps=steps)
        group, version, plural = WORKLOADS[kind]
        self.custom.create_namespaced_custom_object(group, version, self.ns, plural, body)
        wait_for("revision 1", lambda: self.revision() == 1)
        spec = copy.deepcopy(policy or FAST_POLICY)
        self.create(
            "rollbackpolicies",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "RollbackPolicy",
                "metadata": {"name": "fraud-policy"},
                "spec": spec,
            },
        )
        target: dict[str, Any] = {"deploymentRef": {"name": "fraud"}}
        if kind != "Deployment":
            api_version = body["apiVersion"]
            target = {"targetRef": {"apiVersion": api_version, "kind": kind, "name": "fraud"}}
        mdep = {
            **target,
            "policyRef": {"name": "fraud-policy"},
            "model": {"name": "fraud-scorer", "version": "v1"},
            "approvedRevisions": [{"revision": 1}],
            **(mdep_extra or {}),
        }
        self.create(
            "modeldeployments",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelDeployment",
                "metadata": {"name": "fraud"},
                "spec": mdep,
            },
        )

    def workload(self) -> dict[str, Any]:
        """The workload ``fraud`` as the API server has it."""
        group, version, plural = WORKLOADS[self.kind]
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            group, version, self.ns, plural, "fraud"
        )
        return obj

    def revision(self) -> int | None:
        """The revision the workload serves, by the operator's own reading."""
        target = TargetRef.model_validate(
            {"apiVersion": TARGET_API_VERSIONS[self.kind], "kind": self.kind, "name": "fraud"}
        )
        reads = LiveReads(Cluster(self.api))
        live = reads.workload(target, namespace=self.ns)
        records = reads.history(target, namespace=self.ns, workload=live)
        return current_revision(live, target.kind, records)

    def events(self) -> list[dict[str, Any]]:
        # Raw JSON: the client's typed models refuse Events some controllers write.
        raw = client.EventsV1Api(self.api).list_namespaced_event(self.ns, _preload_content=False)
        items: list[dict[str, Any]] = json.loads(raw.data)["items"]
        return items

    def phase(self) -> str | None:
        return (self.get("modeldeployments", "fraud").get("status") or {}).get("phase")

    def set_profile(self, profile: str) -> None:
        """A new revision: the pod template's SIM_PROFILE changed (a JSON Patch, so that every
        kind keeps the rest of its container)."""
        group, version, plural = WORKLOADS[self.kind]
        env = [{"name": "SIM_PROFILE", "value": profile}]
        path = "/spec/template/spec/containers/0/env"
        self.custom.patch_namespaced_custom_object(
            group,
            version,
            self.ns,
            plural,
            "fraud",
            [{"op": "replace", "path": path, "value": env}],
            _content_type="application/json-patch+json",
        )

    def profile(self) -> str:
        container = self.workload()["spec"]["template"]["spec"]["containers"][0]
        return str(container["env"][0]["value"])


FINAL = ("Succeeded", "Failed", "Rejected", "Expired", "DryRun", "Superseded")


def evaluations(operator: OperatorProcess, scenario: Scenario) -> float:
    """How many times the operator has evaluated the scenario's ModelDeployment: its
    ``rollguard_evaluations_total`` for the policy ``Scenario.setup`` creates (0 before the
    first evaluation; counted from the operator's last start)."""
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as answer:
        text = answer.read().decode()
    label = re.escape(f'{{policy="{scenario.ns}/fraud-policy"}}')
    found = re.search(rf"^rollguard_evaluations_total{label} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for_evaluations(
    operator: OperatorProcess, scenario: Scenario, more: int, *, timeout: float = 120.0
) -> None:
    """Wait until the operator has evaluated the scenario's ModelDeployment ``more`` times
    from now: what a check that nothing happened meanwhile needs, so that it cannot pass
    because the operator was stalled."""
    start = evaluations(operator, scenario)
    wait_for(
        f"{more} more evaluations of {scenario.ns}/fraud (from {start:.0f})",
        lambda: evaluations(operator, scenario) >= start + more,
        timeout=timeout,
        operator=operator,
    )


def policy_with(**changes: Any) -> dict[str, Any]:
    policy = copy.deepcopy(FAST_POLICY)
    for key, value in changes.items():
        policy[key] = value
    return policy


def needs_approval(**auth: Any) -> dict[str, Any]:
    return policy_with(
        authorization={
            "autoApprove": {
                "maxScore": 0.3,
                "actions": ["Rollback", "Pause", "Hold"],
                "maxRevisionsBack": 3,
            },
            "approvalTimeout": "10m",
            **auth,
        }
    )


def final_decision(
    scenario: Scenario, name: str, operator: OperatorProcess, timeout: float = 120
) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        f"decision {name} to reach a final phase",
        lambda: (
            (d := scenario.get("rollbackdecisions", name)).get("status", {}).get("phase") in FINAL
            and d
        ),
        timeout=timeout,
        operator=operator,
    )
    return found


def grant(
    kubectl: Kubectl,
    namespace: str,
    role: str,
    *,
    user: str | None = None,
    group: str | None = None,
) -> None:
    subject = f"--user={user}" if user else f"--group={group}"
    kubectl(
        "create",
        "rolebinding",
        f"{role}-{user or group}",
        f"--clusterrole={role}",
        subject,
        "-n",
        namespace,
    )
