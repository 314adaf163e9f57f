"""Helpers for tests that run against the local environment (or an existing cluster)."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from devenv.launcher import EnvInfo

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def kubectl_for(env: EnvInfo) -> Kubectl:
    """Run kubectl against the environment: ``kubectl("get", "pods", context="alice")``; a
    failure raises AssertionError with kubectl's message unless ``check=False``."""

    def run(
        *args: str, context: str = "admin", input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [env.binaries["kubectl"], f"--kubeconfig={env.kubeconfig}", f"--context={context}"]
        result = subprocess.run(
            [*cmd, *args], input=input, capture_output=True, text=True, check=False, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


def api_client_for(env: EnvInfo, context: str) -> client.ApiClient:
    """An API client acting as one of the test users: admin, alice or mallory."""
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=env.kubeconfig, context=context
    )
    return api


ERROR_RATIO = (
    'sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment",code=~"5.."}[10s]))'
    ' / sum(rate(model_requests_total{namespace="$namespace",deployment="$deployment"}[10s]))'
)


def fast_policy(
    *,
    interval: str = "2s",
    window: str = "20s",
    sustained_for: str = "4s",
    cooldown: str = "30s",
    validation_window: str = "8s",
) -> dict[str, Any]:
    """A RollbackPolicy spec on the simulator's error ratio with short timings: every action
    inside the auto-approval boundary (tests and benchmarks tune it)."""
    return {
        "riskTier": "high",
        "evaluation": {"interval": interval, "window": window, "minSamples": 5, "confidence": 0.9},
        "signals": [
            {
                "name": "error_rate",
                "query": ERROR_RATIO,
                "objective": {"max": 0.01},
                "margin": {"absolute": 0.005},
                "critical": 0.05,
            }
        ],
        "impact": {
            "categories": [
                {"name": "customerExperience", "weight": 1, "signals": {"error_rate": 1}}
            ]
        },
        "triggers": [{"action": "Rollback", "minScore": 0.5, "sustainedFor": sustained_for}],
        "clearBelow": 0.1,
        "safety": {"cooldown": cooldown, "maxActionsPerWindow": {"count": 2, "window": "10m"}},
        "authorization": {
            "autoApprove": {
                "maxScore": 1.0,
                "actions": ["Rollback", "Pause", "Hold"],
                "maxRevisionsBack": 3,
            },
            "approvalTimeout": "60s",
        },
        "validation": {"rolloutTimeout": "60s", "window": validation_window},
    }


OPERATOR_USER = "system:serviceaccount:rollguard-system:rollguard"


def as_operator(env: EnvInfo) -> client.ApiClient:
    """The admin client impersonating the operator's ServiceAccount from deploy/ (its RBAC
    applies): the only identity the admission policy lets create RollbackDecisions."""
    api = api_client_for(env, "admin")
    api.set_default_header("Impersonate-User", OPERATOR_USER)  # type: ignore[no-untyped-call]
    return api


def linked_decision(name: str, spec: dict[str, Any], *, model_deployment: str) -> dict[str, Any]:
    """A RollbackDecision as the operator creates one: its label and the audit link (first of
    its chain), so that the operator seals and drives it."""
    return {
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RollbackDecision",
        "metadata": {
            "name": name,
            "labels": {"rollguard.dev/model-deployment": model_deployment},
            "annotations": {
                "rollguard.dev/audit-sequence": "1",
                "rollguard.dev/audit-previous-hash": "sha256:" + "0" * 64,
            },
        },
        "spec": spec,
    }


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


def _workload(
    kind: str, api_version: str, name: str, profile: str, replicas: int, **spec: Any
) -> dict[str, Any]:
    """A ``kind`` with the pod template of ``deployment_manifest`` and ``spec`` besides."""
    deployment = deployment_manifest(name, profile=profile, replicas=replicas)
    kept = {k: deployment["spec"][k] for k in ("replicas", "selector", "template")}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": deployment["metadata"],
        "spec": {**kept, **spec},
    }


def stateful_set_manifest(
    name: str, *, profile: str = "healthy", replicas: int = 2
) -> dict[str, Any]:
    """A StatefulSet whose pods the workload simulator serves metrics for."""
    return _workload(
        "StatefulSet",
        "apps/v1",
        name,
        profile,
        replicas,
        serviceName=name,
        podManagementPolicy="Parallel",
    )


def rollout_manifest(
    name: str,
    *,
    profile: str = "healthy",
    replicas: int = 2,
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An Argo Rollouts Rollout (canary, by default half the pods then a pause until promoted)
    whose pods the workload simulator serves metrics for."""
    steps = steps if steps is not None else [{"setWeight": 50}, {"pause": {}}]
    # No steps is written as none at all: Argo drops an empty list, which would move the
    # generation.
    canary = {"steps": steps} if steps else {}
    return _workload(
        "Rollout", "argoproj.io/v1alpha1", name, profile, replicas, strategy={"canary": canary}
    )


def apply_deploy(kubectl: Kubectl, repo: Path) -> None:
    """Apply deploy/ (kubectl apply -k) the way an operator of the cluster would: in one pass,
    as the README says."""
    result = kubectl(
        "apply", "--server-side", "--force-conflicts", "-k", str(repo / "deploy"), check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl apply -k deploy/ failed: {result.stderr}")


def service_account_kubeconfig(
    env: EnvInfo, kubectl: Kubectl, *, namespace: str, name: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount (a bound token), so a process run
    outside the cluster has exactly that account's rights."""
    token = kubectl("create", "token", name, "-n", namespace, "--duration=6h").stdout.strip()
    admin = yaml.safe_load(Path(env.kubeconfig).read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def fresh_namespace(api: client.ApiClient, *, name: str | None = None) -> Iterator[str]:
    """A new namespace, deleted afterwards: ``name``, or a random one (a test that needs two
    related names, such as ``x`` and ``x-b``, passes one built from another fresh name)."""
    name = name or f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def argocd_health(script: Path, obj: dict[str, Any]) -> tuple[str, str]:
    """Run an Argo CD health script the way Argo CD does (Lua 5.1, ``obj`` a global) and
    return its (status, message)."""
    import lupa.lua51 as lua  # type: ignore[import-untyped]  # noqa: PLC0415 - tests only

    runtime = lua.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(script.read_text())
    return str(result["status"]), str(result["message"])


def poll(what: str, probe: Callable[[], Any], *, timeout: float, every: float) -> Any:
    """``probe()`` every ``every`` seconds until it returns something true, which is returned;
    TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})")


def bench_provenance() -> dict[str, Any]:
    """What a benchmark's figures came from: the git commit checked out (``git rev-parse
    --short HEAD``), the tracked files changed from it (empty for a clean tree), and the date
    the result was written (UTC)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    repo = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "uncommitted": [line[3:] for line in changed.splitlines()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_bench_result(path: Path, result: dict[str, Any]) -> None:
    """A benchmark's figures as JSON, with the commit, the date and the machine they came
    from (the result files are written by the benchmarks only, never edited by hand)."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    import platform  # noqa: PLC0415

    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**bench_provenance(), "machine": machine, **result}, indent=2)
    path.write_text(text + "\n")


def reviewed_text(path: Path, actual: str, *, update_switch: str) -> str:
    """The reviewed content of ``path`` (a golden file, a snapshot) for ``actual`` to be
    compared with. Only ``<update_switch>=1`` in the environment first rewrites the file with
    ``actual``; any other value (``0``, ``false``, ...) leaves it alone, so a stray setting
    cannot turn the comparison into one that always passes."""
    import os  # noqa: PLC0415

    if os.environ.get(update_switch) == "1":
        path.write_text(actual)
    return path.read_text()
