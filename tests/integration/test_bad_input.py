"""A corpus of invalid and hostile input, end to end: objects sent to the real API server and
files given to the command line.

Every object is refused at admission with a message naming the field, or accepted and then
marked in its status (``Invalid``, or not ``Ready``) with the reason; every file makes the
command exit non-zero naming the problem (one line, or a head line and one indented line
per problem of a file with several), never a traceback. All objects go in at once, beside a
healthy model service bound to the same policy, and the operator must keep judging that
service. With ``ROLLGUARD_DRILL_REPORT_DIR`` set, the counts are written to
``bad-input.json`` there for the README.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from kubernetes import client
from operator_fixtures import FAST_POLICY, GROUP, VERSION, Scenario, wait_for

from devenv.drillreport import Figures, write
from devenv.launcher import REPO, EnvInfo
from devenv.operatorproc import OperatorProcess
from devenv.testing import Kubectl, deployment_manifest, fresh_namespace

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data"
PLURALS = {
    "RollbackPolicy": "rollbackpolicies",
    "ModelDeployment": "modeldeployments",
    "RollbackDecision": "rollbackdecisions",
}
OTHER_NAMESPACE = "$OTHER_NAMESPACE"  # replaced by the second namespace's name when sent
STATUS_TIMEOUT = 60.0

Outcome = Literal["admission", "invalid", "cli"]


@dataclass(frozen=True)
class Expect:
    """How a bad input must end, and what the message must contain (case-insensitive)."""

    outcome: Outcome
    text: str


def admission(text: str) -> Expect:
    """Refused by the API server; its message contains ``text`` (the field)."""
    return Expect("admission", text)


def invalid(text: str) -> Expect:
    """Accepted, then marked Invalid or not Ready (a decision: ended Failed); the condition's
    reason or message contains ``text``."""
    return Expect("invalid", text)


def cli(text: str) -> Expect:
    """The command exits non-zero with an error on stderr containing ``text``."""
    return Expect("cli", text)


@dataclass(frozen=True)
class Submit:
    """One request to the API server: create (or server-side apply, or a raw POST) the object
    ``name`` with ``doc`` as its spec, or merge-patch ``target`` with ``doc``."""

    kind: str
    name: str
    doc: Mapping[str, Any]
    verb: Literal["create", "apply", "raw", "patch"] = "create"
    user: str = "admin"  # a kubeconfig context, or OPERATOR (admin impersonating it)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    text_edit: tuple[str, str] | None = None  # replaced in the JSON text as sent
    target: str = ""


@dataclass(frozen=True)
class Run:
    """One command line, with the files it reads (written to a fresh directory, ``{dir}``)."""

    name: str
    argv: tuple[str, ...]
    files: Mapping[str, str | bytes] = field(default_factory=dict)


class _Drop:
    """Marks a path to remove in ``edited``."""


DROP = _Drop()


def edited(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with each dotted path (``signals.0.critical``) set to its value,
    or removed when the value is DROP."""
    out = copy.deepcopy(dict(base))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if value is DROP:
            del node[key]
        else:
            node[key] = value
    return out


def row(item: Submit | Run, expect: Expect) -> Any:
    return pytest.param(item, expect, id=item.name)


# --- the objects ---------------------------------------------------------------------------

SIGNAL = FAST_POLICY["signals"][0]
GOOD_MDEP: dict[str, Any] = {
    "deploymentRef": {"name": "fraud"},
    "policyRef": {"name": "fraud-policy"},
    "model": {"name": "fraud-scorer", "version": "v1"},
}
# Made-up evidence about a ModelDeployment and a Deployment that do not exist, so that no
# forged decision can reach a real workload.
DECISION = edited(
    yaml.safe_load((DATA / "decision-spec.yaml").read_text()),
    {"modelDeploymentRef.name": "ghost", "deploymentRef.name": "ghost"},
)
# The label and chain link the operator writes at creation; a forgery can copy them.
CHAIN = {
    "labels": {"rollguard.dev/model-deployment": "ghost"},
    "annotations": {
        "rollguard.dev/audit-sequence": "1",
        "rollguard.dev/audit-previous-hash": "sha256:" + "0" * 64,
    },
}
TARGET = "evidence"  # a decision the operator's identity creates at setup, for the edits
OPERATOR = "system:serviceaccount:rollguard-system:rollguard"
APPROVAL = {"decision": "Approve", "reason": "looks fine"}
INJECTION = 'x"} or vector(1) or up{job="'
STS_GHOST = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "ghost"}


def rbp(name: str, changes: Mapping[str, Any] | None = None, **options: Any) -> Submit:
    return Submit("RollbackPolicy", name, edited(FAST_POLICY, changes or {}), **options)


def mdep(name: str, changes: Mapping[str, Any] | None = None, **options: Any) -> Submit:
    return Submit("ModelDeployment", name, edited(GOOD_MDEP, changes or {}), **options)


def rbd(name: str, changes: Mapping[str, Any] | None = None, **options: Any) -> Submit:
    return Submit("RollbackDecision", name, edited(DECISION, changes or {}), **options)


def edit(name: str, spec: Mapping[str, Any], user: str = "admin") -> Submit:
    return Submit("RollbackDecision", name, {"spec": spec}, verb="patch", user=user, target=TARGET)


CLUSTER_CORPUS = [
    # Unknown fields and wrong types.
    row(rbp("p-unknown-field", {"bogus": 1}), admission('unknown field "spec.bogus"')),
    row(
        rbp("p-unknown-nested-field", {"safety": {"cooldown": "30s", "coolDown": "1m"}}),
        admission('unknown field "spec.safety.coolDown"'),
    ),
    row(rbp("p-unknown-field-applied", {"bogus": 1}, verb="apply"), admission(".spec.bogus")),
    row(rbp("p-min-samples-text", {"evaluation.minSamples": "ten"}), admission("spec.evaluation.minSamples")),
    row(rbp("p-risk-tier-unknown", {"riskTier": "extreme"}), admission("spec.riskTier")),
    row(rbp("p-signals-a-map", {"signals": {"error_rate": SIGNAL}}, verb="apply"), admission(".spec.signals")),
    row(mdep("m-deployment-in-other-namespace", {"deploymentRef.namespace": "kube-system"}), admission('unknown field "spec.deploymentRef.namespace"')),
    row(mdep("m-customers-text", {"business": {"customers": "lots"}}, verb="apply"), admission(".spec.business.customers")),
    row(mdep("m-no-policy-ref", {"policyRef": DROP}), admission("spec.policyRef")),
    row(rbd("d-unknown-field", {"verdict": "trust me"}), admission('unknown field "spec.verdict"')),
    # NaN and infinities: as text they are not numbers; as JSON literals the API server's
    # decoder refuses them before any field is known.
    row(rbp("p-objective-nan-text", {"signals.0.objective.max": "NaN"}), admission("spec.signals[0].objective.max")),
    row(rbp("p-objective-nan-json", text_edit=('"max": 0.01', '"max": NaN')), admission("spec.signals[0].objective.max")),
    row(rbp("p-objective-nan-raw", verb="raw", text_edit=('"max": 0.01', '"max": NaN')), admission("invalid character 'N'")),
    row(rbp("p-critical-infinity-raw", verb="raw", text_edit=('"critical": 0.05', '"critical": Infinity')), admission("invalid character 'I'")),
    row(rbp("p-critical-overflow-raw", verb="raw", text_edit=('"critical": 0.05', '"critical": 1e999')), admission("cannot unmarshal number 1e999")),
    row(mdep("m-revenue-infinity-text", {"business": {"revenuePerHour": "Infinity"}}), admission("spec.business.revenuePerHour")),
    row(rbd("d-sample-nan-text", {"signals.0.samples.values.0": "NaN"}), admission("spec.signals[0].samples.values[0]")),
    # Negative and absurd durations and numbers.
    row(rbp("p-cooldown-negative", {"safety": {"cooldown": "-30s"}}), admission("spec.safety.cooldown")),
    row(rbp("p-sustained-negative", {"triggers.0.sustainedFor": "-4s"}), admission("spec.triggers[0].sustainedFor")),
    row(rbp("p-min-score-above-one", {"triggers.0.minScore": 1.5}), admission("spec.triggers[0].minScore")),
    row(mdep("m-bake-time-negative", {"bakeTime": "-5m"}), admission("spec.bakeTime")),
    row(mdep("m-revenue-negative", {"business": {"revenuePerHour": -3}}), admission("spec.business.revenuePerHour")),
    row(rbp("p-interval-over-30-days", {"evaluation.interval": "800h"}), invalid("evaluation.interval")),
    row(rbp("p-interval-zero", {"evaluation.interval": "0s"}), invalid("evaluation.interval")),
    row(rbp("p-min-samples-beyond-evidence", {"evaluation.minSamples": 301}), invalid("evaluation.minSamples")),
    row(rbp("p-recent-samples-one", {"evaluation.recentSamples": 1}), admission("spec.evaluation.recentSamples")),
    row(rbp("p-recent-samples-beyond-recorded", {"evaluation.recentSamples": 400}), invalid("evaluation.recentSamples")),
    row(mdep("m-bake-time-over-30-days", {"bakeTime": "1000h"}), invalid("bakeTime")),
    # Weights, objective, margin and critical that contradict each other.
    row(rbp("p-weights-all-zero", {"impact.categories.0.weight": 0}), admission("weights must not all be 0")),
    row(rbp("p-weight-negative", {"impact.categories.0.weight": -1}), admission("spec.impact.categories[0].weight")),
    row(rbp("p-critical-below-max", {"signals.0.critical": 0.001}), admission("spec.signals[0].critical")),
    row(rbp("p-critical-above-min", {"signals.0.objective": {"min": 100}, "signals.0.critical": 150}), admission("critical must be below objective.min - margin")),
    row(rbp("p-objective-max-and-min", {"signals.0.objective": {"max": 0.01, "min": 0}}), admission("spec.signals[0].objective")),
    row(rbp("p-margin-both-kinds", {"signals.0.margin": {"absolute": 0.01, "relative": 0.1}}), admission("spec.signals[0].margin")),
    row(rbp("p-critical-inside-tier-margin", {"riskTier": "low", "signals.0.margin": DROP, "signals.0.critical": 0.012}), invalid("margin from tier low")),
    row(rbp("p-critical-span-overflows", {"signals.0.objective": {"max": -1e308}, "signals.0.critical": 1.7e308}), invalid("overflows")),
    row(rbp("p-trigger-at-clear-below", {"triggers.0.minScore": 0.05, "clearBelow": 0.1}), invalid("triggers[0].minScore")),
    row(mdep("m-approved-revision-two-ways", {"approvedRevisions": [{"revision": 1, "image": "x"}]}), admission("spec.approvedRevisions[0]")),
    # Impact naming an unknown signal, duplicates.
    row(rbp("p-impact-unknown-signal", {"impact.categories.0.signals": {"latency": 1}}), admission("spec.impact.categories")),
    row(rbp("p-signal-twice", {"signals": [SIGNAL, SIGNAL]}), admission("spec.signals[1]: Duplicate value")),
    # PromQL injection through names, label values and the query itself.
    row(rbp("p-signal-name-injection", {"signals.0.name": INJECTION, "impact.categories.0.signals": {INJECTION: 1}}), admission("spec.signals[0].name")),
    row(rbp("p-category-name-injection", {"impact.categories.0.name": INJECTION}), admission("spec.impact.categories[0].name")),
    row(mdep("m-deployment-name-injection", {"deploymentRef.name": INJECTION}), admission("spec.deploymentRef.name")),
    row(rbp("p-query-placeholder-outside-matcher", {"signals.0.query": "sum(rate(model_requests_total[1m])) or $namespace"}), invalid("signals[0].query")),
    row(rbp("p-query-not-promql", {"signals.0.query": 'sum(rate(model_requests_total{namespace="$namespace"}[1m])) or on() vector(1'}), invalid("signals[0].query")),
    row(rbp("p-query-range-vector", {"signals.0.query": 'model_requests_total{namespace="$namespace"}[1m]'}), invalid("range vector")),
    # Huge strings and lists.
    row(rbp("p-query-huge", {"signals.0.query": "x" * 5000}), admission("spec.signals[0].query")),
    row(rbp("p-signals-too-many", {"signals": [{**SIGNAL, "name": f"s{i}"} for i in range(33)], "impact.categories.0.signals": {"s0": 1}}), admission("spec.signals")),
    row(rbp("p-approvers-too-many", {"authorization.approvers": [f"user{i}" for i in range(65)]}), admission("spec.authorization.approvers")),
    row(rbp("p-annotation-huge", metadata={"annotations": {"note": "x" * 300_000}}), admission("metadata.annotations")),
    row(mdep("m-model-name-huge", {"model.name": "m" * 300}), admission("spec.model.name")),
    row(mdep("m-owners-too-many", {"owners": [{"name": f"owner{i}"} for i in range(33)]}), admission("spec.owners")),
    row(rbd("d-samples-too-many", {"signals.0.samples": {"timestamps": [float(t) for t in range(301)], "values": [0.1] * 301}}), admission("spec.signals[0].samples.timestamps")),
    # References to what is missing, or not theirs to use.
    row(mdep("m-deployment-missing", {"deploymentRef.name": "ghost"}), invalid("DeploymentNotFound")),
    row(mdep("m-statefulset-missing", {"deploymentRef": DROP, "targetRef": STS_GHOST}), invalid("TargetNotFound")),
    # The workload named once, by a kind rollguard knows, with that kind's apiVersion.
    row(mdep("m-both-refs", {"targetRef": STS_GHOST}), admission("exactly one of deploymentRef and targetRef")),
    row(mdep("m-no-ref", {"deploymentRef": DROP}), admission("exactly one of deploymentRef and targetRef")),
    row(mdep("m-target-kind-unknown", {"deploymentRef": DROP, "targetRef": {**STS_GHOST, "kind": "DaemonSet"}}), admission("spec.targetRef.kind")),
    row(mdep("m-target-version-of-another-kind", {"deploymentRef": DROP, "targetRef": {**STS_GHOST, "kind": "Rollout"}}), admission("a Rollout has apiVersion argoproj.io/v1alpha1")),
    row(mdep("m-policy-missing", {"policyRef.name": "no-such-policy"}), invalid("no-such-policy does not exist")),
    row(mdep("m-policy-invalid", {"policyRef.name": "p-interval-over-30-days"}), invalid("p-interval-over-30-days is invalid")),
    row(
        mdep("m-policy-other-namespace", {"policyRef": {"name": "central", "namespace": OTHER_NAMESPACE}}),
        invalid("may not be used from namespace"),
    ),
    # Decisions: only the operator creates them, the evidence never changes, approvals are
    # signed by whoever sends them.
    row(rbd("d-created-by-alice", user="alice"), admission('User "alice" cannot create resource "rollbackdecisions"')),
    row(rbd("d-created-by-mallory", user="mallory"), admission('User "mallory" cannot create')),
    row(rbd("d-samples-misaligned", {"signals.0.samples.values": [0.1]}), admission("timestamps and values differ in length")),
    row(rbd("d-approved-in-another-name", {"approval": {**APPROVAL, "by": "bob"}}, user=OPERATOR), admission("spec.approval.by must be the requesting user")),
    row(edit("d-evidence-edited", {"impact": {"score": 0.1}}), admission("spec.impact is evidence and immutable")),
    row(edit("d-evidence-edited-by-approver", {"recommended": {"toRevision": 1}}, user="alice"), admission("spec.recommended is evidence and immutable")),
    row(edit("d-approval-for-someone-else", {"approval": {**APPROVAL, "by": "bob"}}, user="alice"), admission("must be the requesting user (alice), not bob")),
    row(edit("d-approved-without-rights", {"approval": {**APPROVAL, "by": "mallory"}}, user="mallory"), admission('User "mallory" cannot')),
    row(rbd("d-forged-by-admin", {"requiresApproval": False}, metadata=CHAIN), admission("created by the rollguard operator only")),
    # Made with the operator's own identity but without the audit link it fixes at creation
    # (as on a cluster without deploy/'s admission policy): never acted on.
    row(rbd("d-forged-without-chain", {"requiresApproval": False}, user=OPERATOR), invalid("not created by the rollguard operator")),
]  # fmt: skip


# --- the files -----------------------------------------------------------------------------

SIM_POLICY = yaml.safe_load((REPO / "examples" / "scenarios" / "policy.yaml").read_text())
SCENARIO = str(REPO / "examples" / "scenarios" / "error-burst.yaml")
POLICY = str(REPO / "examples" / "scenarios" / "policy.yaml")
CSV_HEADER = "timestamp,signal,value\n"


def policy_file(changes: Mapping[str, Any]) -> dict[str, str | bytes]:
    return {"policy.yaml": yaml.safe_dump(edited(SIM_POLICY, changes))}


def simulate(name: str, changes: Mapping[str, Any]) -> Run:
    argv = ("simulate", "--policy", "{dir}/policy.yaml", "--scenarios", SCENARIO, "--seeds", "2")
    return Run(name, argv, policy_file(changes))


def playbook(name: str, changes: Mapping[str, Any]) -> Run:
    return Run(name, ("playbook", "{dir}/policy.yaml"), policy_file(changes))


def series(name: str, text: str | bytes) -> Run:
    return Run(
        name, ("simulate", "--policy", POLICY, "--series", "{dir}/series.csv"), {"series.csv": text}
    )


def backtest(name: str, *options: str) -> Run:
    argv = ("backtest", "--policy", POLICY, "--prometheus", "{prometheus}", "--namespace", "ml",
            "--deployment", "fraud", "--from", "{start}", "--to", "{end}", *options)  # fmt: skip
    return Run(name, argv)


def replay(name: str, changes: Mapping[str, Any] | None = None, text: str | bytes = "") -> Run:
    doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RollbackDecision",
           "metadata": {"name": name}, "spec": edited(DECISION, changes or {})}  # fmt: skip
    return Run(
        name, ("replay", "{dir}/decision.yaml"), {"decision.yaml": text or yaml.safe_dump(doc)}
    )


ZERO_WEIGHTS = {
    f"spec.impact.categories.{i}.weight": 0
    for i in range(len(SIM_POLICY["spec"]["impact"]["categories"]))
}

CLI_CORPUS = [
    row(Run("simulate-policy-not-yaml", ("simulate", "--policy", "{dir}/p.yaml", "--scenarios", SCENARIO), {"p.yaml": "spec: [unclosed\n"}), cli("invalid YAML")),
    row(Run("simulate-policy-not-text", ("simulate", "--policy", "{dir}/p.yaml", "--scenarios", SCENARIO), {"p.yaml": b"\xff\xfe\x00\x81"}), cli("not UTF-8")),
    row(Run("playbook-policy-a-list", ("playbook", "{dir}/p.yaml"), {"p.yaml": "- riskTier: high\n"}), cli("expected a RollbackPolicy object")),
    row(playbook("playbook-wrong-kind", {"kind": "Deployment"}), cli("kind: expected RollbackPolicy")),
    row(playbook("playbook-unknown-field", {"spec.extra": 1}), cli("spec.extra: unknown field")),
    row(playbook("playbook-wrong-type", {"spec.evaluation.minSamples": "ten"}), cli("spec.evaluation.minSamples")),
    row(playbook("playbook-objective-nan", {"spec.signals.0.objective.max": float("nan")}), cli("spec.signals[0].objective.max")),
    row(simulate("simulate-critical-infinite", {"spec.signals.0.critical": float("inf")}), cli("spec.signals[0].critical")),
    row(simulate("simulate-cooldown-negative", {"spec.safety.cooldown": "-20m"}), cli("spec.safety.cooldown")),
    row(simulate("simulate-weights-all-zero", ZERO_WEIGHTS), cli("weights must not all be 0")),
    row(playbook("playbook-critical-inverted", {"spec.signals.0.critical": 0.001}), cli("critical (0.001) must be above objective.max")),
    row(simulate("simulate-impact-unknown-signal", {"spec.impact.categories.0.signals": {"nosuch": 1.0}}), cli("unknown signal nosuch")),
    row(playbook("playbook-query-huge", {"spec.signals.0.query": "x" * 5000}), cli("spec.signals[0].query")),
    row(playbook("playbook-interval-zero", {"spec.evaluation.interval": "0s"}), cli("evaluation.interval")),
    row(series("series-value-not-a-number", CSV_HEADER + "1,error_rate,abc\n"), cli("line 2: value")),
    row(series("series-timestamp-nan", CSV_HEADER + "nan,error_rate,0.1\n"), cli("line 2: timestamp")),
    row(series("series-span-absurd", CSV_HEADER + "1,error_rate,0.1\n1e15,error_rate,0.1\n"), cli("check its timestamps")),
    row(series("series-unknown-signal", CSV_HEADER + "1,nosuch,1\n2,nosuch,1\n"), cli("'nosuch' is not a signal of the policy")),
    row(series("series-not-text", b"\x00\xff" * 64), cli("not UTF-8")),
    row(Run("simulate-scenario-negative-duration", ("simulate", "--policy", POLICY, "--scenarios", "{dir}/bad.yaml"), {"bad.yaml": "name: bad\nduration: -1h\n"}), cli("  duration: ")),
    row(Run("simulate-baseline-not-a-report", ("simulate", "--policy", POLICY, "--scenarios", SCENARIO, "--seeds", "2", "--check", "{dir}/baseline.json"), {"baseline.json": "{}"}), cli("baseline.json")),
    row(Run("simulate-seeds-absurd", ("simulate", "--policy", POLICY, "--scenarios", SCENARIO, "--seeds", str(10**19))), cli("--seeds")),
    row(backtest("backtest-from-garbage", "--from", "yesterday-ish"), cli("--from/--to")),
    row(backtest("backtest-step-zero", "--step", "0"), cli("--step")),
    row(backtest("backtest-step-nan", "--step", "nan"), cli("--step")),
    row(backtest("backtest-range-absurd", "--from", "0", "--to", "1e12", "--step", "0.001"), cli("--from/--to/--step")),
    row(backtest("backtest-prometheus-refuses", "--prometheus", "http://127.0.0.1:1"), cli("127.0.0.1:1")),
    row(backtest("backtest-namespace-injection", "--namespace", INJECTION), cli(f"no samples for {INJECTION}/fraud")),
    row(replay("replay-not-yaml", text="spec: {unclosed\n"), cli("invalid YAML")),
    row(replay("replay-not-text", text=b"\xff\xfe\x00\x81"), cli("not UTF-8")),
    row(Run("replay-missing-file", ("replay", "{dir}/nothing.yaml")), cli("nothing.yaml")),
    row(replay("replay-wrong-kind", text="kind: Pod\nspec: {}\n"), cli("kind: expected RollbackDecision")),
    row(replay("replay-samples-misaligned", {"signals.0.samples.values": [0.1]}), cli("timestamps and values differ in length")),
    row(replay("replay-sample-nan", {"signals.0.samples.values.0": float("nan")}), cli("spec.signals[0].samples.values[0]")),
    row(replay("replay-impact-unknown-signal", {"policy.effective.impact.categories.0.signals": {"ghost": 1.0}}), cli("unknown signal ghost")),
    row(replay("replay-confidence-nan", {"policy.effective.evaluation.confidence": float("nan")}), cli("spec.policy.effective.evaluation.confidence")),
]  # fmt: skip


# --- running and judging ---------------------------------------------------------------------


@dataclass
class Corpus:
    """What the cluster corpus left behind: each request's result and the objects' statuses."""

    namespace: str
    started: float
    log_offset: int
    sent: dict[str, subprocess.CompletedProcess[str]]
    objects: dict[tuple[str, str], dict[str, Any]]


def send(
    kubectl: Kubectl, item: Submit, *, namespace: str, other: str
) -> subprocess.CompletedProcess[str]:
    user = ["--as", OPERATOR] if item.user == OPERATOR else []
    context = "admin" if item.user == OPERATOR else item.user
    if item.verb == "patch":
        return kubectl("-n", namespace, "patch", PLURALS[item.kind], item.target, "--type=merge",
                       "-p", json.dumps(item.doc), context=context, check=False)  # fmt: skip
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": item.kind,
        "metadata": {"name": item.name, "namespace": namespace, **item.metadata},
        "spec": item.doc,
    }
    text = json.dumps(body).replace(OTHER_NAMESPACE, other)
    if item.text_edit is not None:
        old, new = item.text_edit
        assert old in text, f"{item.name}: {old!r} is not in the object"
        text = text.replace(old, new)
    args = {
        "create": ["create", "-f", "-"],
        "apply": ["apply", "--server-side", "-f", "-"],
        "raw": ["create", "--raw", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURALS[item.kind]}", "-f", "-"],
    }[item.verb]  # fmt: skip
    return kubectl(*user, *args, input=text, context=context, check=False)


def objects_in(kubectl: Kubectl, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = kubectl("-n", namespace, "get", ",".join(PLURALS.values()), "-o", "json").stdout
    return {(o["kind"], o["metadata"]["name"]): o for o in json.loads(out)["items"]}


def marked(obj: Mapping[str, Any] | None, text: str) -> bool:
    """Whether a condition says the object is Invalid or not Ready, with ``text`` in its
    reason or message (a decision: whether it ended Failed, saying so)."""
    status = (obj or {}).get("status") or {}
    if status.get("phase") == "Failed" and text.lower() in str(status.get("message")).lower():
        return True
    for c in status.get("conditions") or []:
        failing = (c.get("type"), c.get("status")) in (("Invalid", "True"), ("Ready", "False"))
        if failing and text.lower() in f"{c.get('reason', '')} {c.get('message', '')}".lower():
            return True
    return False


def judge_object(item: Submit, expect: Expect, corpus: Corpus) -> str | None:
    """None when the object ended as expected, else what happened instead."""
    sent = corpus.sent[item.name]
    said = " ".join((sent.stderr or sent.stdout).split())[:600]
    if expect.outcome == "admission":
        if sent.returncode == 0:
            return f"accepted, but should have been refused naming {expect.text!r}: {said}"
        if expect.text.lower() not in said.lower():
            return f"refused, but the message does not contain {expect.text!r}: {said}"
        return None
    if sent.returncode != 0:
        return f"refused at admission, but should have been accepted and marked: {said}"
    obj = corpus.objects.get((item.kind, item.name))
    if marked(obj, expect.text):
        return None
    status = json.dumps((obj or {}).get("status"))[:600]
    return f"not marked Invalid with {expect.text!r} within {STATUS_TIMEOUT:.0f}s; status: {status}"


def run_cli(run: Run, directory: Path, env: EnvInfo) -> subprocess.CompletedProcess[str]:
    for name, content in run.files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    now = int(time.time())
    values = {"{dir}": str(directory), "{prometheus}": env.prometheus_url,
              "{start}": str(now - 600), "{end}": str(now)}  # fmt: skip
    argv = list(run.argv)
    for token, value in values.items():
        argv = [a.replace(token, value) for a in argv]
    try:
        return subprocess.run([sys.executable, "-m", "rollguard.cli", *argv], cwd=directory,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as err:
        return subprocess.CompletedProcess(err.cmd, -9, "", "timed out after 60 s")


def judge_cli(result: subprocess.CompletedProcess[str], expect: Expect) -> str | None:
    lines = result.stderr.strip().splitlines()
    if result.returncode == 0:
        return f"exit code 0, but the input is bad; stderr: {result.stderr.strip()[:400]}"
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        return f"exit code {result.returncode} with a traceback: ...{result.stderr[-800:]}"
    if not lines:
        return "expected an error on stderr, got nothing"
    if any(not line.startswith("  ") for line in lines[1:]):
        # More lines are the problems of one file, each indented under its name.
        return f"expected one line per problem under the first, got: {result.stderr[:400]}"
    if expect.text.lower() not in result.stderr.lower():
        return f"stderr does not contain {expect.text!r}: {result.stderr[:400]}"
    return None


def write_report(handled: Mapping[str, tuple[Outcome, bool]]) -> None:
    """The drill report's ``bad-input`` figures: how many bad inputs were tried and how many
    were handled as expected, by how (devenv.drillreport)."""
    if not handled:
        return
    by = {
        o: [ok for kind, ok in handled.values() if kind == o]
        for o in ("admission", "invalid", "cli")
    }
    figures = Figures(
        drill="bad-input",
        label="bad input",
        note=(
            f"{sum(by['admission'])}/{len(by['admission'])} refused at admission, "
            f"{sum(by['invalid'])}/{len(by['invalid'])} marked Invalid in status, "
            f"{sum(by['cli'])}/{len(by['cli'])} refused by the command line"
        ),
        bad_inputs=len(handled),
        handled=sum(ok for _, ok in handled.values()),
        completed=True,
        extra={"not_handled": sorted(name for name, (_, ok) in handled.items() if not ok)},
    )
    write(figures)


# --- fixtures and tests ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def handled() -> Iterator[dict[str, tuple[Outcome, bool]]]:
    """Per case: its expected outcome and whether it was handled that way (for the report)."""
    results: dict[str, tuple[Outcome, bool]] = {}
    yield results
    write_report(results)


@pytest.fixture(scope="module")
def corpus(
    api_client: client.ApiClient, kubectl: Kubectl, operator: OperatorProcess
) -> Iterator[Corpus]:
    """Every object of CLUSTER_CORPUS sent at once, beside a healthy model service whose policy
    most of the bad ModelDeployments share; then one bounded wait for all the statuses."""
    with fresh_namespace(api_client) as namespace, fresh_namespace(api_client) as other:
        good = Scenario(api_client, namespace)
        good.setup()
        central = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RollbackPolicy",
                   "metadata": {"name": "central"}, "spec": FAST_POLICY}  # fmt: skip
        Scenario(api_client, other).create("rollbackpolicies", central)
        kubectl("-n", namespace, "create", "rolebinding", "approvers",
                "--clusterrole=rollguard-approver", "--user=alice")  # fmt: skip
        target = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RollbackDecision",
                  "metadata": {"name": TARGET, "namespace": namespace, **CHAIN}, "spec": DECISION}  # fmt: skip
        kubectl("create", "--as", OPERATOR, "-f", "-", input=json.dumps(target))

        started, log_offset = float(int(time.time())), operator.log.stat().st_size
        items: list[Submit] = [p.values[0] for p in CLUSTER_CORPUS]
        sent = {i.name: send(kubectl, i, namespace=namespace, other=other) for i in items}
        # A second good service, created after every bad object.
        kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(deployment_manifest("late")))
        late = {
            **GOOD_MDEP,
            "deploymentRef": {"name": "late"},
            "approvedRevisions": [{"revision": 1}],
        }
        good.create("modeldeployments", {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
                                         "metadata": {"name": "late"}, "spec": late})  # fmt: skip

        expected = {p.values[0].name: p.values[1] for p in CLUSTER_CORPUS}
        waiting = [
            i
            for i in items
            if expected[i.name].outcome == "invalid" and sent[i.name].returncode == 0
        ]
        deadline = time.monotonic() + STATUS_TIMEOUT
        while True:
            objects = objects_in(kubectl, namespace)
            waiting = [
                i
                for i in waiting
                if not marked(objects.get((i.kind, i.name)), expected[i.name].text)
            ]
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(1)
        yield Corpus(namespace, started, log_offset, sent, objects)


@pytest.mark.parametrize(("item", "expect"), CLUSTER_CORPUS)
def test_bad_object_is_refused_or_marked_invalid(
    item: Submit, expect: Expect, corpus: Corpus, handled: dict[str, tuple[Outcome, bool]]
) -> None:
    problem = judge_object(item, expect, corpus)
    handled[item.name] = (expect.outcome, problem is None)
    assert problem is None, f"{item.kind} {item.name}: {problem}"


@pytest.fixture(scope="module")
def cli_results(
    tmp_path_factory: pytest.TempPathFactory, env: EnvInfo
) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Every command line of CLI_CORPUS, each in a directory of its own, run two at a time
    from the first test that asks (each is a fresh interpreter, mostly start-up): its result by
    case name. The runs no test asked for are dropped at the end."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bad-input-cli")
    try:
        yield {
            run.name: pool.submit(run_cli, run, tmp_path_factory.mktemp(run.name), env)
            for run in (p.values[0] for p in CLI_CORPUS)
        }
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize(("run", "expect"), CLI_CORPUS)
def test_bad_file_is_refused_by_the_command_line_naming_the_problem(
    run: Run,
    expect: Expect,
    cli_results: dict[str, Future[subprocess.CompletedProcess[str]]],
    handled: dict[str, tuple[Outcome, bool]],
) -> None:
    problem = judge_cli(cli_results[run.name].result(), expect)
    handled[run.name] = (expect.outcome, problem is None)
    assert problem is None, f"rollguard {' '.join(run.argv)[:200]}: {problem}"


def test_the_corpus_is_large_enough_to_mean_something() -> None:
    outcomes = [p.values[1].outcome for p in (*CLUSTER_CORPUS, *CLI_CORPUS)]
    assert len(outcomes) >= 40
    assert {"admission", "invalid", "cli"} <= set(outcomes)
    names = [p.values[0].name for p in (*CLUSTER_CORPUS, *CLI_CORPUS)]
    assert len(names) == len(set(names)), "case names must be unique"


def test_the_operator_keeps_serving_the_good_objects(
    corpus: Corpus, operator: OperatorProcess, kubectl: Kubectl
) -> None:
    assert operator.process is not None and operator.process.poll() is None, operator.tail()
    with urllib.request.urlopen(operator.liveness_url, timeout=10) as answer:
        assert answer.status == 200

    def judged_since_the_corpus(name: str) -> bool:
        obj = kubectl("-n", corpus.namespace, "get", "modeldeployment", name, "-o", "json").stdout
        status = json.loads(obj).get("status") or {}
        when = (status.get("lastEvaluation") or {}).get("time")
        return (
            status.get("phase") in ("Healthy", "Inconclusive")
            and when is not None
            and datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() > corpus.started
        )

    for name in ("fraud", "late"):  # created before and after the bad objects
        wait_for(f"{name} evaluated after the corpus", partial(judged_since_the_corpus, name),
                 timeout=120, operator=operator)  # fmt: skip
    policy = json.loads(
        kubectl(
            "-n", corpus.namespace, "get", "rollbackpolicy", "fraud-policy", "-o", "json"
        ).stdout
    )
    ready = {c["type"]: c["status"] for c in policy["status"]["conditions"]}
    assert ready == {"Ready": "True", "Invalid": "False"}, policy["status"]
    assert operator.process.poll() is None, operator.tail()


def test_the_corpus_leaves_no_traceback_in_the_operator_log(
    corpus: Corpus, operator: OperatorProcess
) -> None:
    with operator.log.open("rb") as log:
        log.seek(corpus.log_offset)
        text = log.read().decode(errors="replace")
    assert "Traceback" not in text, text[max(0, text.index("Traceback") - 300) :][:3000]
