"""deploy/helm/rollguard read and rendered with the cached helm (no cluster): with default
values it renders exactly the objects of the kustomize base deploy/, its copies of crds/,
deploy/peering.yaml and deploy/monitoring/ are byte for byte the originals, and every value
reaches the object it names. (tests/integration/test_helm.py installs it on the real API
server.)"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.launcher import build_dir, helm_binary
from rollguard.control.receivers import parse

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "rollguard"
RELEASE, NAMESPACE = "rollguard", "rollguard-system"
SYNC = "make helm-chart copies them"

Key = tuple[str, str, str | None, str]


def _binary(path: Path) -> str:
    assert path.exists(), f"{path} is missing: make setup builds it (tools/controlplane/build.sh)"
    return str(path)


@functools.cache
def _run(*cmd: str) -> str:
    """The output of a command (cached: the tests render the same few things often)."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"{' '.join(cmd[:2])} failed: {result.stderr}"
    return result.stdout


def _objects(text: str) -> dict[Key, dict[str, Any]]:
    objects: dict[Key, dict[str, Any]] = {}
    for doc in yaml.load_all(text, Loader=yaml.CSafeLoader):
        if not doc:
            continue
        meta = doc["metadata"]
        key = (doc["apiVersion"], doc["kind"], meta.get("namespace"), meta["name"])
        assert key not in objects, f"{key} rendered twice"
        objects[key] = doc
    return objects


def kustomize(directory: Path) -> dict[Key, dict[str, Any]]:
    return _objects(_run(_binary(build_dir() / "kubectl"), "kustomize", str(directory)))


def render(*values: str, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[Key, Any]:
    """``helm template`` of the chart, CRDs included, ``values`` as ``--set-json`` arguments."""
    sets = [arg for value in values for arg in ("--set-json", value)]
    helm = _binary(helm_binary())
    return _objects(
        _run(helm, "template", release, str(CHART), "-n", namespace, "--include-crds", *sets)
    )


def render_error(*values: str) -> str:
    sets = [arg for value in values for arg in ("--set-json", value)]
    result = subprocess.run(
        [_binary(helm_binary()), "template", RELEASE, str(CHART), "-n", NAMESPACE, *sets],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0, f"{values} rendered: {result.stdout[:300]}"
    return result.stderr


def one(objects: dict[Key, Any], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for k, o in objects.items() if k[1] == kind and k[3] == name]
    return obj


NAMESPACE_KEY: Key = ("v1", "Namespace", None, NAMESPACE)


def test_default_render_is_the_kustomize_base_but_its_namespace() -> None:
    """One source of truth: deploy/ and the chart's defaults may not drift apart. The one
    difference: the chart leaves the release namespace to ``--create-namespace`` unless
    namespace.create is set (the next test)."""
    base = kustomize(REPO / "deploy")
    assert NAMESPACE_KEY in base
    del base[NAMESPACE_KEY]
    chart = render()
    assert sorted(chart) == sorted(base)
    for key, obj in base.items():
        assert chart[key] == obj, f"{key} differs between deploy/ and the chart"


def test_namespace_create_renders_the_base_namespace_kept_on_uninstall() -> None:
    """The base's Namespace, Pod Security labels and all, with one annotation more: Helm
    keeps it when it uninstalls (deleting it would delete the release's record midway)."""
    base = kustomize(REPO / "deploy")
    base[NAMESPACE_KEY]["metadata"]["annotations"] = {"helm.sh/resource-policy": "keep"}
    assert render("namespace.create=true") == base


def test_chart_copies_are_byte_for_byte_the_originals() -> None:
    copies = {CHART / "crds" / p.name: p for p in (REPO / "crds").glob("*.yaml")}
    copies[CHART / "crds" / "kopf.dev_peerings.yaml"] = REPO / "deploy" / "peering.yaml"
    monitoring = REPO / "deploy" / "monitoring"
    for name in ("servicemonitor.yaml", "prometheusrule.yaml", "rollguard-dashboard.json"):
        copies[CHART / "files" / name] = monitoring / name
    assert set((CHART / "crds").iterdir()) | set((CHART / "files").iterdir()) == set(copies), SYNC
    for copy, original in copies.items():
        assert copy.read_bytes() == original.read_bytes(), f"{copy} is not {original}: {SYNC}"


MONITORING = (
    'monitoring={"serviceMonitor":{"enabled":true},"prometheusRule":{"enabled":true},'
    '"dashboard":{"enabled":true}}'
)


def test_monitoring_extras_render_the_monitoring_overlay_exactly() -> None:
    default = render()
    extras = render(MONITORING)
    added = {k: o for k, o in extras.items() if k not in default}
    assert added == kustomize(REPO / "deploy" / "monitoring")


def test_values_reach_the_deployment_and_the_config_map() -> None:
    objects = render(
        'image={"repository":"registry.example/ml/rollguard","tag":"0.2.0","pullPolicy":"Always"}',
        "replicas=3",
        'resources={"requests":{"cpu":"50m","memory":"128Mi"}}',
        'config.watchNamespaces=["ml","fraud"]',
        'config.prometheusURL="http://prometheus.obs:9090"',
        "config.scrapeInterval=30",
        "config.queryOffset=2.5",
        'config.extra={"LOG_LEVEL":"debug","DECISION_POLL":3,"KEEP_ALIVE":10000000}',
        "config.keepDecisions=10000",
        'nodeSelector={"pool":"system"}',
    )
    deployment = one(objects, "Deployment", "rollguard")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "system"}
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/ml/rollguard:0.2.0"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    data = one(objects, "ConfigMap", "rollguard-config")["data"]
    assert data["ROLLGUARD_NAMESPACES"] == "ml,fraud"
    assert data["ROLLGUARD_PROMETHEUS_URL"] == "http://prometheus.obs:9090"
    assert (data["ROLLGUARD_SCRAPE_INTERVAL"], data["ROLLGUARD_QUERY_OFFSET"]) == ("30", "2.5")
    assert (data["ROLLGUARD_LOG_LEVEL"], data["ROLLGUARD_DECISION_POLL"]) == ("debug", "3")
    # Numbers reach the template as floats: never written with an exponent.
    assert (data["ROLLGUARD_KEEP_ALIVE"], data["ROLLGUARD_KEEP_DECISIONS"]) == ("10000000", "10000")


def _pod_annotations(*values: str) -> dict[str, str]:
    deployment = one(render(*values), "Deployment", "rollguard")
    annotations: dict[str, str] = deployment["spec"]["template"]["metadata"].get("annotations", {})
    return annotations


def test_restart_on_config_change_marks_the_pods_with_the_config_checksum() -> None:
    assert _pod_annotations('podAnnotations={"team":"ml"}') == {"team": "ml"}
    on = "restartOnConfigChange=true"
    first = _pod_annotations(on, 'podAnnotations={"team":"ml"}')
    assert first.pop("team") == "ml"
    assert list(first) == ["rollguard.dev/config-sha256"]
    assert _pod_annotations(on) == first  # the same settings, the same pods
    assert _pod_annotations(on, "config.scrapeInterval=30") != first


def test_config_map_settings_are_settings_rollguard_run_documents(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rollguard.cli import main  # noqa: PLC0415 - the CLI only for this test

    assert main(["run", "--help"]) == 0
    documented = capsys.readouterr().out
    data = one(render('config.watchNamespaces=["ml"]'), "ConfigMap", "rollguard-config")["data"]
    undocumented = [k for k in data if k != "ROLLGUARD_RECEIVERS" and k not in documented]
    assert not undocumented


RECEIVERS = {
    "dashboardURL": "http://127.0.0.1:8765",
    "receivers": [
        {"name": "oncall", "slack": {"url": "https://hooks.slack.com/services/T/B/X"}},
        {
            "name": "audit",
            "webhook": {
                "url": "https://hooks.example/rollguard",
                "headers": {"Authorization": "Bearer token"},
            },
        },
        {"name": "am", "alertmanager": {"url": "http://alertmanager.monitoring:9093"}},
    ],
}


def test_receivers_become_the_secret_the_operator_mounts() -> None:
    assert not [k for k in render() if k[1] == "Secret"]  # the base leaves it to its owner
    objects = render(f"notifications.receivers={json.dumps(RECEIVERS)}")
    secret = one(objects, "Secret", "rollguard-notify")
    assert secret["metadata"]["namespace"] == NAMESPACE
    text = secret["stringData"]["receivers.yaml"]
    assert yaml.safe_load(text) == RECEIVERS
    assert [r.kind for r in parse(text, source="receivers.yaml").receivers] == [
        "slack",
        "webhook",
        "alertmanager",
    ]


def test_existing_secret_names_the_secret_the_operator_mounts() -> None:
    objects = render('notifications.existingSecret="team-receivers"')
    volumes = one(objects, "Deployment", "rollguard")["spec"]["template"]["spec"]["volumes"]
    (notify,) = [v for v in volumes if v["name"] == "notify"]
    assert notify["secret"]["secretName"] == "team-receivers"
    assert not [k for k in objects if k[1] == "Secret"]


def test_cluster_objects_follow_the_release_and_the_operator_its_namespace() -> None:
    objects = render(release="rg", namespace="ops")
    cluster_scoped = {
        (k[1], k[3])
        for k in objects
        if k[2] is None and k[1] not in ("CustomResourceDefinition", "Namespace")
    }
    assert cluster_scoped == {
        ("ClusterRole", "rg-operator"),
        ("ClusterRole", "rg-approver"),
        ("ClusterRole", "rg-viewer"),
        ("ClusterRoleBinding", "rg-operator"),
        ("ValidatingAdmissionPolicy", "rg-approval-identity"),
        ("ValidatingAdmissionPolicyBinding", "rg-approval-identity"),
    }
    binding = one(objects, "ClusterRoleBinding", "rg-operator")
    assert binding["roleRef"]["name"] == "rg-operator"
    (subject,) = binding["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": "rollguard", "namespace": "ops"}
    policy = yaml.safe_dump(one(objects, "ValidatingAdmissionPolicy", "rg-approval-identity"))
    assert "system:serviceaccount:ops:rollguard" in policy
    assert "rollguard-system" not in policy
    namespaced = {k[2] for k in objects if k[2] is not None}
    assert namespaced == {"ops"}


def test_approval_policy_can_be_left_out() -> None:
    kinds = {k[1] for k in render("approvalPolicy.enabled=false")}
    assert not {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} & kinds


def test_helm_labels_are_added_only_when_asked_and_change_nothing_else() -> None:
    plain = render(MONITORING, "namespace.create=true")
    labelled = render(MONITORING, "namespace.create=true", "helmLabels=true")
    assert sorted(plain) == sorted(labelled)
    for key, obj in plain.items():
        if key[1] == "CustomResourceDefinition":
            assert labelled[key] == obj  # crds/ is installed as it is
            continue
        labels = labelled[key]["metadata"].pop("labels")
        assert labels == {
            **obj["metadata"].pop("labels"),
            "helm.sh/chart": "rollguard-0.1.0",
            "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/version": "0.1.0",
        }, key
        assert labelled[key] == obj, key


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("replicas=-1", "replicas"),
        ('config.prometheusURL="prometheus:9090"', "prometheusURL"),
        ("config.keepDecisions=0", "keepDecisions"),
        ('config.watchNamespaces=["Not_A_Namespace"]', "watchNamespaces"),
        ('config.extra={"PRIORITY":"5"}', "config.extra.PRIORITY"),
        ('config.extra={"log-level":"debug"}', "extra"),
        ('image={"pullPolicy":"Sometimes"}', "pullPolicy"),
        ('notifications.receivers={"receivers":[{"name":"x"}]}', "receivers"),
        ("monitoring.dashboard=true", "dashboard"),
        ("replica=1", "replica"),
        ("image.tag=1.10", "tag"),  # a number would be written 1.1: the wrong image
        ("config.keepDecisions=10000000", "keepDecisions"),
        ('notifications.receivers={"receivers":[{"name":"x","slack":{"url":"h"}}]}', "url"),
        (
            'notifications.receivers={"receivers":[{"name":"x","slack":{"url":"http://h"},'
            '"tmeout":5}]}',
            "tmeout",
        ),
        ('notifications.receivers={"recievers":[]}', "recievers"),
    ],
)
def test_a_bad_value_is_refused_with_a_message_naming_it(value: str, named: str) -> None:
    assert named in render_error(value)


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the values, a map of free keys (``resources``, say) being one."""
    paths = []
    for name, value in values.items():
        path = f"{prefix}{name}"
        free = path in ("resources", "config.extra", "notifications.receivers")
        if isinstance(value, dict) and value and not free:
            paths += _leaves(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_the_helm_page_documents_every_value() -> None:
    page = (REPO / "docs" / "operating" / "helm.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    undocumented = [p for p in _leaves(values) if f"| `{p}` |" not in page]
    assert not undocumented, "docs/operating/helm.md: add them to the values table"
