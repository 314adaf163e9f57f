"""deploy/ read as files: the operator Deployment is hardened and configured with real
settings, the image installs exactly the tested dependencies, and the RBAC stays narrow.
(tests/integration/test_deploy.py applies the same files to the real API server.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lockdeps.closure import render, runtime_closure
from rollguard.cli import build_parser, main
from rollguard.cli.run import settings_from

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _one(name: str, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _docs(name) if d["kind"] == kind]
    return doc


def test_kustomization_lists_every_manifest_in_deploy() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = {r for r in kustomization["resources"] if not r.startswith("..")}
    assert listed == {p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml"}


def test_operator_pod_is_hardened() -> None:
    deployment = _one("operator.yaml", "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "rollguard"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["healthz"] == ports["metrics"] + 1  # liveness is served on the next port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_dockerfile_user_matches_the_pod_and_the_image_name() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, flags=re.MULTILINE)
    pod = _one("operator.yaml", "Deployment")["spec"]["template"]["spec"]
    assert int(user[0]) == pod["securityContext"]["runAsUser"] != 0
    assert int(user[1]) == pod["securityContext"]["runAsGroup"]
    assert re.search(r"--requirement deploy/requirements.txt", dockerfile)
    assert "--no-deps" in dockerfile  # nothing resolved at build time beyond the pins
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert pod["containers"][0]["image"].split(":")[0] == image["name"]


def test_configmap_and_args_are_real_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Deployment's args and ConfigMap parse into valid settings, and every key is one
    `rollguard run --help` documents."""
    config = _one("operator.yaml", "ConfigMap")["data"]
    container = _one("operator.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert main(["run", "--help"]) == 0
    documented = set(re.findall(r"ROLLGUARD_[A-Z_]+", capsys.readouterr().out))
    env = {**config, **{e["name"]: e["value"] for e in container["env"]}}
    assert set(env) <= documented, set(env) - documented
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_from(build_parser().parse_args(container["args"]))
    assert settings.metrics_port == 8080 and not settings.standalone and settings.priority > 0


def test_operator_role_never_reads_secrets_or_pods() -> None:
    role = next(d for d in _docs("rbac.yaml") if d["metadata"]["name"] == "rollguard-operator")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert not resources & {"secrets", "pods", "configmaps", "*"}
    assert all("*" not in rule["verbs"] for rule in role["rules"])


def test_requirements_lock_is_the_tested_closure_and_keeps_the_direct_pins() -> None:
    lock = (DEPLOY / "requirements.txt").read_text()
    assert lock == render(runtime_closure("rollguard")), "run: python -m lockdeps"
    pins = dict(line.split("==") for line in lock.splitlines() if "==" in line)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for dep in pyproject["project"]["dependencies"]:
        name, version = dep.split("==")
        assert pins[re.sub(r"[-_.]+", "-", name).lower()] == version
