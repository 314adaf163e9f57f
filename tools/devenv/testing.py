"""Helpers for tests that run against the local environment (or an existing cluster)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from kubernetes import client, config

from devenv.launcher import EnvInfo

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def api_client_for(env: EnvInfo, context: str) -> client.ApiClient:
    """An API client acting as one of the test users: admin, alice or mallory."""
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=env.kubeconfig, context=context
    )
    return api


def deployment_manifest(
    name: str,
    *,
    profile: str = "healthy",
    replicas: int = 2,
    image: str = "registry.local/model:v1",
) -> dict[str, Any]:
    """A Deployment whose pods the workload simulator serves metrics for."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "model",
                            "image": image,
                            "env": [{"name": "SIM_PROFILE", "value": profile}],
                        }
                    ]
                },
            },
        },
    }
