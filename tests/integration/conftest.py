"""Integration fixtures: one operator process (ServiceAccount and RBAC from deploy/) for the
whole session, and a fresh model service scenario per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from operator_fixtures import OperatorProcess, Scenario

from devenv.launcher import EnvInfo
from devenv.operatorproc import start_operator
from devenv.testing import Kubectl


@pytest.fixture(scope="session")
def operator(
    env: EnvInfo, kubectl: Kubectl, crds_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = start_operator(env, kubectl, tmp_path_factory.mktemp("operator"))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def scenario(api_client: client.ApiClient, namespace: str) -> Scenario:
    return Scenario(api_client, namespace)
