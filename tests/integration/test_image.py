"""The operator image, built without a Docker daemon (tools/image/build.sh: buildah and Debian's
packages), run as the operator against the local environment: its entrypoint as its user
10001 on a read-only root filesystem (devenv.image), with deploy/'s ServiceAccount. It becomes
ready, judges a ModelDeployment and rolls a bad revision back.

The session's operator, if this worker runs one, stands by meanwhile: the image's operator
joins its peering with a priority above every other, so only one acts, and it withdraws when
stopped (a record left by a kill is removed here).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from operator_fixtures import Scenario, evaluations, final_decision, wait_for

from devenv.image import (
    Image,
    build_image,
    container_pid,
    image_cache,
    read_image,
    run_inside,
    start_image_operator,
    unpack_layers,
)
from devenv.launcher import EnvInfo, Environment
from devenv.operatorproc import OperatorProcess
from devenv.testing import Kubectl

TOP_PRIORITY = 2**31  # above every `--priority=auto` and the session operator's
PEERING = ("kopf.dev", "v1", "clusterkopfpeerings", "rollguard")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="building and running the image needs root (buildah, mounts)"
)


@pytest.fixture(scope="module")
def image(local_environment: Environment | None) -> tuple[Image, list[Path]]:
    """The image of this checkout (its base layer from the cache when there) and its layers
    unpacked. Its build and unpack times are printed, not asserted."""
    if local_environment is None:
        pytest.skip("the image runs on this host's network: the local environment only")
    started = time.monotonic()
    try:
        archive = build_image()
    except RuntimeError as err:
        pytest.fail(f"the image could not be built: {err}", pytrace=False)
    built = time.monotonic()
    found = read_image(archive)
    layers = unpack_layers(found, cache=image_cache() / "layers")
    print(
        f"\nimage: built in {built - started:.1f} s, unpacked in {time.monotonic() - built:.1f} s"
    )
    return found, layers


@pytest.fixture
def image_operator(
    image: tuple[Image, list[Path]],
    env: EnvInfo,
    kubectl: Kubectl,
    crds_installed: None,
    api_client: client.ApiClient,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    found, layers = image
    proc = start_image_operator(
        env, kubectl, tmp_path, found, layers, extra=[f"--priority={TOP_PRIORITY}"]
    )
    try:
        yield proc
    finally:
        proc.stop(timeout=20)
        _withdraw_peering(api_client)


def _withdraw_peering(api: client.ApiClient) -> None:
    """Remove what a killed image operator left in the peering: its record would pause every
    other operator until it expired."""
    custom = client.CustomObjectsApi(api)
    try:
        peering = custom.get_cluster_custom_object(*PEERING)
    except client.ApiException as err:
        if err.status == 404:
            return
        raise
    left = {
        key: None
        for key, record in (peering.get("status") or {}).items()
        if isinstance(record, dict) and record.get("priority") == TOP_PRIORITY
    }
    if left:
        custom.patch_cluster_custom_object(*PEERING, {"status": left})


def _readyz(proc: OperatorProcess) -> int:
    try:
        url = proc.metrics_url.replace("/metrics", "/readyz")
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _audit_lines(proc: OperatorProcess) -> list[dict[str, Any]]:
    lines = proc.log.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _status_ids(pid: int) -> dict[str, list[int]]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {
        line.split(":")[0]: [int(v) for v in line.split()[1:]]
        for line in lines
        if line.startswith(("Uid:", "Gid:"))
    }


def test_the_image_runs_the_operator_unprivileged_and_rolls_a_bad_revision_back(
    image: tuple[Image, list[Path]], image_operator: OperatorProcess, scenario: Scenario
) -> None:
    found, _ = image
    proc = image_operator
    scenario.setup()  # while the operator starts
    wait_for("/readyz to answer 200", lambda: _readyz(proc) == 200, timeout=90, operator=proc)
    assert proc.process is not None
    pid = wait_for("the container's process", lambda: container_pid(proc.process.pid))

    # Its user, and what that user may write: nothing but /tmp.
    assert _status_ids(pid) == {"Uid": [10001] * 4, "Gid": [10001] * 4}, proc.tail()
    assert found.user == "10001:10001"
    root_write = run_inside(pid, found, ["touch", "/written"])
    assert root_write.returncode != 0
    assert "Read-only file system" in root_write.stderr, root_write.stderr
    tmp_write = run_inside(pid, found, ["touch", "/tmp/written"])
    assert tmp_write.returncode == 0, tmp_write.stderr

    # It judges a ModelDeployment and rolls a bad revision back.
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=proc)
    assert evaluations(proc, scenario) >= 1
    scenario.set_profile("errors")
    name = wait_for("a decision", scenario.decisions, operator=proc)[0]["metadata"]["name"]
    decision = final_decision(scenario, name, proc)
    assert decision["status"]["phase"] == "Succeeded", decision["status"]
    assert scenario.profile() == "healthy"
    # It was this operator that acted: its audit lines (stdout, as in deploy/) say so.
    acted = [
        line["event"]
        for line in _audit_lines(proc)
        if line.get("name") == name and line.get("namespace") == scenario.ns
    ]
    assert "RollbackExecuted" in acted, proc.tail()
