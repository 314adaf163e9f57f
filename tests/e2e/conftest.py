"""End-to-end fixtures. By default the operator is the session's local process (tests/conftest.py);
with ROLLGUARD_E2E_OPERATOR=in-cluster (`make e2e-kind`) it is the Deployment from deploy/
already running in the cluster, and the suite only talks to the API server and Prometheus."""

from __future__ import annotations

import json
import os

import pytest

from devenv.operatorproc import OperatorProcess
from devenv.testing import Kubectl

IN_CLUSTER = os.environ.get("ROLLGUARD_E2E_OPERATOR") == "in-cluster"


@pytest.fixture(scope="session")
def acting_operator(request: pytest.FixtureRequest, kubectl: Kubectl) -> OperatorProcess | None:
    """The local operator process, or None when the in-cluster one acts (checked available)."""
    if not IN_CLUSTER:
        proc: OperatorProcess = request.getfixturevalue("operator")
        return proc
    out = kubectl("-n", "rollguard-system", "get", "deployment", "rollguard", "-o", "json").stdout
    status = json.loads(out).get("status") or {}
    assert status.get("availableReplicas", 0) >= 1, (
        f"the in-cluster operator is not available: {status}"
    )
    return None
