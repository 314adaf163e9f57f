"""What `rollguard run` checks before it starts (rollguard.kube.preflight): every missing piece is named
with the command that fixes it; missing peering means standalone with a warning, a missing
peering object is created, and the permissions it checks are those deploy/rbac.yaml grants."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from rollguard.kube.preflight import (
    CLUSTER_PEERING,
    KINDS,
    NAMESPACED_PEERING,
    NAMESPACED_PEERING_PERMISSIONS,
    PEERING_PERMISSIONS,
    PERMISSIONS,
    Facts,
    Permission,
    assess,
)

RBAC = Path(__file__).resolve().parents[3] / "deploy" / "rbac.yaml"

FINE = Facts(
    username="system:serviceaccount:rollguard-system:rollguard",
    groups=("system:serviceaccounts", "system:authenticated"),
    namespaces=(),
    served=frozenset(KINDS),
    peering_served=frozenset({CLUSTER_PEERING, NAMESPACED_PEERING}),
    peering_object=True,
)


def test_everything_in_place_runs_with_peering_and_says_who_it_is() -> None:
    verdict = assess(FINE, peering_name="rollguard")
    assert verdict.ok and not verdict.standalone and not verdict.warnings
    assert verdict.info[0] == (
        "Running as system:serviceaccount:rollguard-system:rollguard "
        "(groups: system:serviceaccounts)"
    )


def test_missing_crds_stop_it_naming_the_command() -> None:
    verdict = assess(dataclasses.replace(FINE, served=frozenset()), peering_name="rollguard")
    assert not verdict.ok
    (problem,) = verdict.problems
    assert "rollbackpolicies, modeldeployments, rollbackdecisions" in problem
    assert "kubectl apply -f crds/" in problem


def test_missing_peering_crds_run_standalone_with_a_warning_naming_the_fix() -> None:
    verdict = assess(dataclasses.replace(FINE, peering_served=frozenset()), peering_name="rg")
    assert verdict.ok and verdict.standalone
    (warning,) = verdict.warnings
    assert "kubectl apply -f deploy/peering.yaml" in warning and "--standalone" in warning


def test_namespaced_operators_need_the_namespaced_peering_kind() -> None:
    facts = dataclasses.replace(
        FINE, namespaces=("ml",), peering_served=frozenset({CLUSTER_PEERING})
    )
    assert assess(facts, peering_name="rg").standalone


def test_standalone_on_request_checks_no_peering() -> None:
    facts = dataclasses.replace(FINE, standalone=True, peering_served=frozenset())
    verdict = assess(facts, peering_name="rg")
    assert verdict.ok and verdict.standalone and not verdict.warnings


def test_a_missing_peering_object_is_created_or_named_with_its_fix() -> None:
    absent = dataclasses.replace(FINE, peering_object=False, may_create_peering=True)
    verdict = assess(absent, peering_name="rg")
    assert verdict.ok and verdict.create_peering and not verdict.standalone
    refused = dataclasses.replace(absent, may_create_peering=False)
    verdict = assess(refused, peering_name="rg")
    (problem,) = verdict.problems
    assert "ClusterKopfPeering rg" in problem and "kubectl create -f -" in problem


def test_denied_permissions_are_listed_per_namespace() -> None:
    denied = {
        "ml": (
            Permission("create", "rollguard.dev", "rollbackdecisions"),
            Permission("patch", "rollguard.dev", "rollbackdecisions/status"),
            Permission("delete", "rollguard.dev", "rollbackdecisions"),
            Permission("list", "", "namespaces"),
        ),
        "web": (),
    }
    facts = dataclasses.replace(FINE, namespaces=("ml", "web"), denied=denied)
    (problem,) = assess(facts, peering_name="rg").problems
    assert problem.startswith(
        "system:serviceaccount:rollguard-system:rollguard may not create/delete "
        "rollbackdecisions.rollguard.dev, patch rollbackdecisions/status.rollguard.dev, "
        "list namespaces in namespace ml."
    )


def test_a_missing_watched_namespace_is_a_problem() -> None:
    facts = dataclasses.replace(FINE, namespaces=("ml",), missing_namespaces=("ml",))
    (problem,) = assess(facts, peering_name="rg").problems
    assert "kubectl create namespace ml" in problem


@pytest.mark.parametrize("username", ["admin", "system:serviceaccount:other:rollguard"])
def test_an_identity_the_admission_policy_refuses_is_warned_about(username: str) -> None:
    policy = "request.userInfo.username == 'system:serviceaccount:rollguard-system:rollguard'"
    facts = dataclasses.replace(FINE, username=username, admission_policy=policy)
    (warning,) = assess(facts, peering_name="rg").warnings
    assert f"not {username}: every decision would be refused" in warning
    assert not assess(
        dataclasses.replace(FINE, admission_policy=policy), peering_name="rg"
    ).warnings


def _granted() -> set[Permission]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    role = next(d for d in docs if d["metadata"]["name"] == "rollguard-operator")
    return {
        Permission(verb, group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_deploy_rbac_grants_everything_the_operator_checks() -> None:
    needed = set(PERMISSIONS + PEERING_PERMISSIONS + NAMESPACED_PEERING_PERMISSIONS)
    needed |= {Permission("create", "kopf.dev", r) for r in (CLUSTER_PEERING, NAMESPACED_PEERING)}
    assert needed <= _granted(), needed - _granted()
