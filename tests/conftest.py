"""Shared pytest fixtures.

``env`` is the environment integration and end-to-end tests run against: by default a fresh
local control plane + Prometheus + workload simulator (tools/devenv), started once per session;
with ``ROLLGUARD_KUBECONFIG`` (and ``ROLLGUARD_PROMETHEUS_URL``) an existing cluster, such as a
kind cluster with rollguard installed from deploy/. Unit tests never start anything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from devenv.faultproxy import FaultProxy
from devenv.launcher import REPO, EnvInfo, Environment, build_controlplane
from devenv.operatorproc import OperatorProcess, start_operator
from devenv.testing import Kubectl, api_client_for, fresh_namespace, kubectl_for

# The modules one pytest-xdist worker runs whole, in their order: their tests share a module
# fixture (the bad-input corpus, whose cases add up to one report) or build on each other (the
# first hour, on one fresh control plane). Every other test is scheduled on its own.
WHOLE_MODULES = ("tests/integration/test_bad_input.py", "tests/integration/test_first_hour.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` (``make test``) with a scope of its own: a module of WHOLE_MODULES,
    or else a single test. (pytest-xdist's ``loadgroup`` would say the same with marks, but it
    cannot tag pytest 9's node ids with them.)"""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only under xdist

    class ModuleOrTest(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in WHOLE_MODULES else nodeid

    return ModuleOrTest(config, log)


def _existing_cluster() -> EnvInfo | None:
    kubeconfig = os.environ.get("ROLLGUARD_KUBECONFIG")
    if not kubeconfig:
        return None
    prometheus = os.environ.get("ROLLGUARD_PROMETHEUS_URL")
    if not prometheus:
        raise pytest.UsageError("ROLLGUARD_KUBECONFIG needs ROLLGUARD_PROMETHEUS_URL as well")
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1) > 1:
        # Each worker would start its own operator against the one cluster.
        raise pytest.UsageError("ROLLGUARD_KUBECONFIG: run the tests in one process (no -n)")
    kubectl = os.environ.get("ROLLGUARD_KUBECTL") or shutil.which("kubectl") or "kubectl"
    return EnvInfo(
        kubeconfig=kubeconfig,
        api_server="",
        prometheus_url=prometheus,
        simulator_url=os.environ.get("ROLLGUARD_SIMULATOR_URL", ""),
        binaries={"kubectl": kubectl},
        work_dir="",
        pid=0,
    )


@pytest.fixture(scope="session")
def local_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment | None]:
    """The local control plane + Prometheus + simulator the session started, or None when the
    tests run against an existing cluster."""
    if _existing_cluster() is not None:
        yield None
        return
    try:
        bin_dir = build_controlplane()
    except RuntimeError as err:
        pytest.fail(
            f"the local control plane could not be built ({err}); integration tests need Go "
            "and the Go module proxy (see README: Development environment)",
            pytrace=False,
        )
    environment = Environment(work_dir=tmp_path_factory.mktemp("devenv"), bin_dir=bin_dir)
    environment.start()
    try:
        yield environment
    finally:
        environment.stop()


@pytest.fixture(scope="session")
def env(local_environment: Environment | None) -> EnvInfo:
    """The cluster, Prometheus and simulator under test."""
    if local_environment is None:
        existing = _existing_cluster()
        assert existing is not None
        return existing
    assert local_environment.info is not None
    return local_environment.info


@pytest.fixture(scope="session")
def api_client(env: EnvInfo) -> client.ApiClient:
    """An API client with cluster-admin rights (context admin)."""
    return api_client_for(env, "admin")


@pytest.fixture(scope="session")
def kubectl(env: EnvInfo) -> Kubectl:
    """Run kubectl against the environment: ``kubectl("get", "pods", context="alice")``."""
    return kubectl_for(env)


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    with fresh_namespace(api_client) as name:
        yield name


@pytest.fixture(scope="session")
def crds_installed(kubectl: Kubectl) -> None:
    """The rollguard CRDs from crds/, applied and established."""
    kubectl("apply", "--server-side", "-k", str(REPO / "crds"))
    kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/rollbackpolicies.rollguard.dev", "crd/modeldeployments.rollguard.dev",
        "crd/rollbackdecisions.rollguard.dev",
    )  # fmt: skip


@pytest.fixture(scope="session")
def prometheus_proxy(env: EnvInfo) -> Iterator[FaultProxy]:
    """The session operator's way to Prometheus: passes everything through unless a drill
    sets a fault (and the drill puts it back)."""
    proxy = FaultProxy(env.prometheus_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


SESSION_PRIORITY = 100


@pytest.fixture(scope="session")
def operator(
    env: EnvInfo,
    kubectl: Kubectl,
    crds_installed: None,
    prometheus_proxy: FaultProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator as a local process with deploy/'s ServiceAccount, one for the session:
    the integration and end-to-end suites share it (two would split the work by peering).
    Its peering priority is known, so that a restart after SIGKILL outranks the dead record
    (``OperatorProcess.restart``), and below the crash drill's restarts (1000 and up)."""
    proc = start_operator(
        env,
        kubectl,
        tmp_path_factory.mktemp("operator"),
        prometheus_url=prometheus_proxy.url,
        extra=[f"--priority={SESSION_PRIORITY}"],
    )
    try:
        yield proc
    finally:
        proc.stop()
