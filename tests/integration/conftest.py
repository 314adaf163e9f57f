"""Integration fixtures: a fresh model service scenario per test (the session's operator
process is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from operator_fixtures import Scenario

from devenv.testing import fresh_namespace


@pytest.fixture
def scenario(api_client: client.ApiClient, namespace: str) -> Scenario:
    return Scenario(api_client, namespace)


@pytest.fixture
def second_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """Another fresh namespace, for tests that need two."""
    with fresh_namespace(api_client) as name:
        yield name
