"""deploy/monitoring/: the alerting rules pass promtool's checks and unit tests, and the
dashboard's queries parse and name only metrics the operator exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client import generate_latest

from rollguard.control import telemetry as observe

REPO = Path(__file__).resolve().parents[3]
OVERLAY = REPO / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")


def _exported_names() -> set[str]:
    """Every sample name the operator's registry can expose."""
    observe.SCORE.labels(namespace="x", model_deployment="y").set(0)  # make labelled ones appear
    names = {m.name for m in observe.REGISTRY.collect()}
    text = generate_latest(observe.REGISTRY).decode()
    names |= set(re.findall(r"^(rollguard_[a-z_]+)", text, flags=re.MULTILINE))
    for metric in observe.REGISTRY.collect():
        if metric.type == "histogram":
            names |= {metric.name + s for s in ("_bucket", "_sum", "_count")}
        if metric.type == "counter":
            names.add(metric.name + "_total")
    return names


def _rules_file(tmp_path: Path) -> Path:
    rule = yaml.safe_load((OVERLAY / "prometheusrule.yaml").read_text())
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def test_alert_rules_pass_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    assert PROMTOOL is not None, "promtool comes with the prometheus package: run make setup"
    rules = _rules_file(tmp_path)
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], check=False, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    shutil.copy(REPO / "tests" / "monitoring" / "alerts_test.yaml", tmp_path)
    test = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp_path / "alerts_test.yaml")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert test.returncode == 0, test.stdout + test.stderr


def test_every_alert_is_unit_tested() -> None:
    rule = yaml.safe_load((OVERLAY / "prometheusrule.yaml").read_text())
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    tests = yaml.safe_load((REPO / "tests" / "monitoring" / "alerts_test.yaml").read_text())
    tested = {
        c["alertname"] for t in tests["tests"] for c in t["alert_rule_test"] if c["exp_alerts"]
    }
    assert alerts == tested


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$namespace", ".*")


def _dashboard_exprs() -> list[str]:
    dashboard: dict[str, Any] = json.loads((OVERLAY / "rollguard-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_queries_parse_and_name_exported_metrics() -> None:
    exported = _exported_names()
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        promql_parser.parse(_grafana_to_promql(expr))
        for name in re.findall(r"\b(rollguard_[a-z_]+)", expr):
            assert name in exported, f"{name} is not a metric the operator exports"


def test_alert_expressions_name_exported_metrics() -> None:
    exported = _exported_names()
    rule = yaml.safe_load((OVERLAY / "prometheusrule.yaml").read_text())
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            for name in re.findall(r"\b(rollguard_[a-z_]+)", r["expr"]):
                assert name in exported, f"{r['alert']}: {name} is not exported"


def test_overlay_lists_existing_files() -> None:
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        assert (OVERLAY / name).is_file()
    for generator in kustomization["configMapGenerator"]:
        for name in generator["files"]:
            assert (OVERLAY / name).is_file()
