"""A watch stream that fails for good stops the operator, which says so and exits 1, rather than
running on blind: Kopf logs the failure but never starts that stream again. Here the first LIST
of ModelDeployments comes back as a body that is not JSON (gzip's first bytes, as from a proxy
that drops Content-Encoding), through a real API server behind a proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.apiproxy import ApiProxy
from devenv.launcher import EnvInfo, Environment
from devenv.operatorproc import start_operator
from devenv.testing import Kubectl

pytestmark = pytest.mark.integration


@pytest.fixture
def garbling(local_environment: Environment | None, env: EnvInfo) -> Iterator[ApiProxy]:
    if local_environment is None:
        pytest.skip("needs the session's own CA to serve the proxy's certificate")
    proxy = ApiProxy(env.api_server, Path(env.work_dir) / "pki").start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_a_watch_stream_that_fails_for_good_stops_the_operator_with_the_reason(
    garbling: ApiProxy, env: EnvInfo, kubectl: Kubectl, tmp_path: Path
) -> None:
    garbling.garble(
        lambda method, path, _body: method == "GET" and path.endswith("/modeldeployments")
    )
    operator = start_operator(env, kubectl, tmp_path, api_proxy=garbling, extra=["--standalone"])
    try:
        assert operator.process is not None
        code = operator.process.wait(timeout=90)
    finally:
        operator.stop()
    log = operator.tail(200)
    assert code == 1, log
    assert "A watch stream failed and Kopf does not start it again" in log
    assert "modeldeployments.v1alpha1.rollguard.dev" in log
    # the last word is the reason, not a traceback
    assert log.splitlines()[-1].startswith(
        "rollguard run: stopped: the watch stream modeldeployments.v1alpha1.rollguard.dev"
    ), log
