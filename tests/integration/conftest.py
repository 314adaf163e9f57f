"""Integration fixtures: a fresh model service scenario per test (the session's operator
process is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from kubernetes import client
from operator_fixtures import Scenario


@pytest.fixture
def scenario(api_client: client.ApiClient, namespace: str) -> Scenario:
    return Scenario(api_client, namespace)
