"""Reliability drills against the real control plane and Prometheus: Prometheus failing in every
way it can, the operator killed at every step of a decision, two replicas, and the API server
and etcd restarted. Each drill is bounded in time and records its figures for the README's
drill report (devenv.drillreport)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_fixtures import (
    FINAL,
    Scenario,
    final_decision,
    grant,
    needs_approval,
    wait_for,
)

from devenv.apiproxy import ApiProxy, Matcher, Request
from devenv.drillreport import drill
from devenv.faultproxy import FaultProxy, Mode
from devenv.launcher import EnvInfo, Environment
from devenv.operatorproc import OperatorProcess, start_operator
from devenv.receivers import Sink
from devenv.testing import Kubectl
from rollguard.cli import main as rollguard_main
from rollguard.core.notices import NOTIFY_ON

pytestmark = pytest.mark.integration

FAULTS: tuple[Mode, ...] = ("refuse", "slow", "error", "empty", "garbage")


def _generation(scenario: Scenario) -> int:
    return int(scenario.workload()["metadata"]["generation"])


def _events(operator: OperatorProcess, scenario: Scenario, event: str) -> int:
    return sum(
        1
        for line in operator.audit_lines()
        if line.get("event") == event and line.get("namespace") == scenario.ns
    )


@pytest.fixture
def faulty(prometheus_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The session operator's Prometheus proxy, put back to pass-through whatever happens."""
    try:
        yield prometheus_proxy
    finally:
        prometheus_proxy.mode = "pass"


def test_prometheus_failing_in_every_way_never_rolls_back_and_recovery_is_automatic(
    operator: OperatorProcess, scenario: Scenario, faulty: FaultProxy
) -> None:
    # A query timeout of 5 s (the default) against a proxy that answers after 8 s.
    with drill("prometheus-faults", "Prometheus stopped, slow, 5xx, empty, garbage") as figures:
        scenario.setup()
        wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
        faulty.mode = "empty"
        wait_for("Inconclusive", lambda: scenario.phase() == "Inconclusive", operator=operator)
        # The model really regresses while Prometheus fails: still no action on missing data.
        scenario.set_profile("errors")
        generation = _generation(scenario)
        for mode in FAULTS:
            faulty.mode = mode
            before = faulty.requests[mode]
            wait_for(
                f"queries to meet {mode}",
                lambda m=mode, b=before: faulty.requests[m] >= b + 3,  # type: ignore[misc]
                timeout=60,
            )
            figures.faults += 1
            phase, decisions = scenario.phase(), scenario.decisions()
            alive = operator.process is not None and operator.process.poll() is None
            untouched = _generation(scenario) == generation
            figures.survived += alive and phase == "Inconclusive" and not decisions and untouched
            assert phase == "Inconclusive", (mode, phase)
            assert decisions == [], mode
            assert untouched, mode
        # Prometheus answers again: the regression is seen and handled, once.
        faulty.mode = "pass"
        figures.lost_decisions = 1  # until the decision is final
        decision = final_decision(
            scenario, wait_for("a decision", scenario.decisions)[0]["metadata"]["name"], operator
        )
        figures.lost_decisions = 0
        figures.duplicate_actions = max(_generation(scenario) - generation - 1, 0)
        assert decision["status"]["phase"] == "Succeeded", decision["status"]
        assert _generation(scenario) == generation + 1
        assert len(scenario.decisions()) == 1


# The writes of one decision, in order: the operator is SIGKILLed by the API proxy the moment
# each is persisted, before the answer reaches it (no audit line, no Event for that step).
DECISIONS = "/apis/rollguard.dev/v1alpha1/namespaces/{ns}/rollbackdecisions"


def _created(ns: str) -> Matcher:
    return lambda method, path, _body: method == "POST" and path == DECISIONS.format(ns=ns)


def _status(ns: str, phase: str | None = None, validation: str | None = None) -> Matcher:
    """A status write of a decision in ``ns`` that sets ``phase`` or ``validation.<field>``."""

    def matches(method: str, path: str, body: object) -> bool:
        prefix = DECISIONS.format(ns=ns) + "/"
        if method != "PATCH" or not (path.startswith(prefix) and path.endswith("/status")):
            return False
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(status, dict):
            return False
        if phase is not None and status.get("phase") != phase:
            return False
        return validation is None or bool((status.get("validation") or {}).get(validation))

    return matches


def _workload_patch(ns: str) -> Matcher:
    """A patch of the workload ``fraud``, whichever its kind (one per namespace)."""
    paths = {
        f"/apis/apps/v1/namespaces/{ns}/deployments/fraud",
        f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/fraud",
    }
    return lambda method, p, _body: method == "PATCH" and p in paths


CRASH_POINTS: tuple[tuple[str, Callable[[str], Matcher]], ...] = (
    ("decision created", _created),
    ("PendingApproval persisted", lambda ns: _status(ns, "PendingApproval")),
    ("Approved persisted", lambda ns: _status(ns, "Approved")),
    ("Executing persisted", lambda ns: _status(ns, "Executing")),
    ("workload patched", _workload_patch),
    ("rollout completion persisted", lambda ns: _status(ns, validation="rolloutCompletedAt")),
    ("Succeeded persisted", lambda ns: _status(ns, "Succeeded")),
)


def _kill(operator: OperatorProcess) -> Callable[[], None]:
    def action() -> None:
        if operator.process is not None and operator.process.poll() is None:
            os.killpg(operator.process.pid, signal.SIGKILL)

    return action


def _died(operator: OperatorProcess) -> bool:
    return operator.process is not None and operator.process.poll() is not None


def _trail(proxy: ApiProxy, since: float) -> str:
    """The operator's requests through the proxy since ``since`` (writes, and its lists and
    watches of rollguard objects), for a failure message."""
    seen = [
        r
        for r in proxy.since(since)
        if r.method not in ("GET", "HEAD") or "rollguard.dev" in r.path or "peering" in r.path
    ]
    return "\n".join(
        f"{r.at - since:7.1f}s {r.method} {r.path}{' (watch)' if r.watch else ''} {r.status} "
        f"{r.phase}"
        for r in seen[-60:]
    )


def _proxied(
    local_environment: Environment | None, operator: OperatorProcess, env: EnvInfo, name: str
) -> tuple[ApiProxy, str]:
    """A new API proxy, and the session operator's kubeconfig pointed at it (from its next
    start); returns the proxy and the direct kubeconfig, to put back afterwards."""
    if local_environment is None:
        pytest.skip("needs the session's own CA to serve the proxy's certificate")
    proxy = ApiProxy(env.api_server, Path(env.work_dir) / "pki").start()
    direct = operator.env["KUBECONFIG"]
    operator.env["KUBECONFIG"] = str(
        proxy.kubeconfig(Path(direct), Path(direct).with_name(f"{name}.kubeconfig"))
    )
    return proxy, direct


@pytest.fixture
def tripping(
    local_environment: Environment | None, operator: OperatorProcess, env: EnvInfo
) -> Iterator[ApiProxy]:
    """The session operator reaching the API server through a proxy that can kill it, and put
    back on the direct path afterwards, above every priority the drill gives (so that no dead
    record pauses it)."""
    proxy, direct = _proxied(local_environment, operator, env, "tripping")
    try:
        yield proxy
    finally:
        operator.stop(signal.SIGKILL)
        operator.env["KUBECONFIG"] = direct
        operator.set_priority(max(operator.priority or 0, 1000 * (len(CRASH_POINTS) + 1)) + 1)
        operator.start()
        proxy.stop()


# Each drill that acts runs once on a Deployment and once on an Argo Rollout (promoted at once:
# its rollback is a template patch, as a Deployment's is).
KINDS = [pytest.param("Deployment", id="deployment"), pytest.param("Rollout", id="rollout")]


def _drill_name(name: str, kind: str) -> str:
    return name if kind == "Deployment" else f"{name}-{kind.lower()}"


def _setup(scenario: Scenario, kind: str, **options: Any) -> None:
    scenario.setup(kind=kind, steps=[] if kind == "Rollout" else None, **options)


@pytest.mark.parametrize("kind", KINDS)
def test_killed_after_every_step_of_a_decision_it_patches_once_and_finishes(
    tripping: ApiProxy,
    operator: OperatorProcess,
    scenario: Scenario,
    kubectl: Kubectl,
    env: EnvInfo,
    kind: str,
) -> None:
    grant(kubectl, scenario.ns, "rollguard-approver", user="alice")
    # Every transition is told to a webhook: each kill right after a write leaves its messages
    # Pending on the decision, for the restarted operator to deliver (at least once).
    hook = Sink().start()
    assert operator.receivers is not None
    operator.receivers.write_text(
        json.dumps({"receivers": [{"name": "hook", "webhook": {"url": hook.url}}]})
    )
    policy = needs_approval()
    policy["notify"] = [{"transitions": list(NOTIFY_ON), "receiver": "hook"}]
    _setup(scenario, kind, policy=policy)
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    created = _generation(scenario)  # 1; 2 for a Rollout, whose spec Argo's controller completes
    began = time.monotonic()
    kills, name, final = 0, "", None
    with drill(
        _drill_name("crash-every-step", kind),
        f"operator SIGKILLed right after each of {len(CRASH_POINTS)} writes of a decision"
        + ("" if kind == "Deployment" else f" ({kind} target)"),
    ) as figures:
        try:
            for index, (point, matcher) in enumerate(CRASH_POINTS):
                # The restart that must pick up the decision just created gets the lowest priority:
                # it waits, paused by peering, until its dead predecessor's record expires, and then
                # sees no further event for the decision. Later restarts outrank every dead record.
                priority = 1 if index == 1 else 1000 * (index + 1)
                wire = tripping.trip(point, matcher(scenario.ns), _kill(operator))
                operator.stop(signal.SIGKILL)
                operator.set_priority(priority)
                operator.start()
                if point == "Approved persisted":
                    name = scenario.decisions()[0]["metadata"]["name"]
                    argv = ["approve", name, "-n", scenario.ns, "--reason", "drill",
                            f"--kubeconfig={env.kubeconfig}", "--context=alice"]  # fmt: skip
                    assert rollguard_main(argv) == 0
                if index == 0:
                    scenario.set_profile("errors")
                # The lowest-priority restart first waits out its dead predecessor's peering record
                # (60 s) on a machine that may be busy: a generous limit, it is a condition wait.
                try:
                    wait_for(
                        f"the operator to be killed after: {point}",
                        lambda w=wire: w.fired and _died(operator),  # type: ignore[misc]
                        timeout=240 if priority == 1 else 120,
                        operator=operator,
                    )
                except AssertionError as err:
                    raise AssertionError(f"{err}\nits writes:\n{_trail(tripping, began)}") from None
                kills += 1
            operator.stop(signal.SIGKILL)
            operator.set_priority(1000 * (len(CRASH_POINTS) + 1))
            operator.start()
            [decision] = scenario.decisions()
            name = decision["metadata"]["name"]
            final_decision(scenario, name, operator, timeout=120)
            final = wait_for(
                "the final audit line",
                lambda: (
                    (d := scenario.get("rollbackdecisions", name))["status"]["audit"]["exported"]
                    and d
                ),
                operator=operator,
            )
            assert final["status"]["phase"] == "Succeeded", final["status"]
            # After creation: the errors revision, then the one rollback.
            assert _generation(scenario) == created + 2
            assert scenario.profile() == "healthy"
            kube = [f"--kubeconfig={env.kubeconfig}", "--context=admin"]
            assert rollguard_main(["audit", "verify", "-n", scenario.ns, *kube]) == 0
            told = wait_for(
                "every message delivered",
                lambda: (
                    (n := scenario.get("rollbackdecisions", name)["status"]["notifications"])
                    and all(e["state"] == "Delivered" for e in n)
                    and n
                ),
                operator=operator,
            )
            raised = [e["transition"] for e in told]
            assert raised == ["PendingApproval", "Approved", "Executed", "Succeeded"], told
            assert {p.body["event"] for p in hook.posted} == set(raised)  # at least once each
            print(f"Messages posted: {len(hook.posted)} for {len(raised)} transitions")
        finally:
            hook.stop()
            if operator.receivers is not None:
                operator.receivers.unlink(missing_ok=True)
            patches = [
                r
                for r in tripping.since(began)
                if _workload_patch(scenario.ns)(r.method, r.path, None) and 200 <= r.status < 300
            ]
            # A kill is survived when the restarted operator went on to the next write (or, after
            # the last one, to the sealed, exported decision).
            exported = final is not None and bool(final["status"]["audit"]["exported"])
            figures.faults = len(CRASH_POINTS)
            figures.survived = max(kills - 1, 0) + exported
            figures.duplicate_actions = max(len(patches) - 1, 0)
            figures.lost_decisions = (
                0 if final is not None and final["status"]["phase"] in FINAL else 1
            )


TOP_PRIORITY = 2**31  # above every `--priority=auto` (which picks from [1, 2**31))


def _pauses(operator: OperatorProcess) -> int:
    return operator.tail(100_000).count("Pausing operations in favour of")


@pytest.mark.parametrize("kind", KINDS)
def test_two_replicas_only_one_acts_and_the_other_takes_over(
    operator: OperatorProcess,
    scenario: Scenario,
    env: EnvInfo,
    kubectl: Kubectl,
    prometheus_proxy: FaultProxy,
    tmp_path: Path,
    kind: str,
) -> None:
    """The session's operator watches the service first, then a replica that outranks it
    starts: it pauses with caches that then go stale (the Deployment, its ReplicaSets, the
    ModelDeployment and its decisions all change while it is paused). The new replica acts
    and is SIGKILLed; the paused one takes over and must act once, on the API server's word,
    and keep the audit chain unforked."""
    with drill(
        _drill_name("two-replicas", kind),
        "two replicas, the acting one SIGKILLed; the other took over with stale caches"
        + ("" if kind == "Deployment" else f" ({kind} target)"),
    ) as figures:
        _setup(scenario, kind)
        wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
        created = _generation(scenario)
        paused_before = _pauses(operator)
        second = start_operator(
            env, kubectl, tmp_path, prometheus_url=prometheus_proxy.url,
            extra=[f"--priority={TOP_PRIORITY}"],
        )  # fmt: skip
        try:
            wait_for("the first replica to pause", lambda: _pauses(operator) > paused_before)
            scenario.set_profile("errors")
            first = final_decision(
                scenario, wait_for("a decision", scenario.decisions)[0]["metadata"]["name"], second
            )
            assert first["status"]["phase"] == "Succeeded"
            # The standby answers the verdict the acting replica wrote, not an error.
            base = operator.metrics_url.rsplit("/", 1)[0]
            url = f"{base}/verdicts/{scenario.ns}/fraud"
            with urllib.request.urlopen(url, timeout=5) as answer:
                verdict = json.loads(answer.read())
            assert (verdict["source"], verdict["name"]) == ("status", "fraud"), verdict
            both = [operator, second]
            assert [_events(p, scenario, "RollbackExecuted") for p in both] == [0, 1], [
                p.tail() for p in both
            ]
            # The acting replica dies; the paused one takes the next regression.
            second.stop(signal.SIGKILL)
            killed_at = time.monotonic()
            figures.faults, figures.lost_decisions = 1, 1  # until the second decision is final
            wait_for(
                "cooldown over and Healthy",
                lambda: scenario.phase() == "Healthy",
                timeout=120,
                operator=operator,
            )
            scenario.set_profile("errors")
            decisions = wait_for(
                "a second decision",
                lambda: len(scenario.decisions()) == 2 and scenario.decisions(),
                timeout=150,
                operator=operator,
            )
            second_name = next(
                d["metadata"]["name"]
                for d in decisions
                if d["metadata"]["name"] != first["metadata"]["name"]
            )
            second_final = final_decision(scenario, second_name, operator, timeout=150)
            takeover = time.monotonic() - killed_at
            figures.lost_decisions = 0
            figures.survived = int(second_final["status"]["phase"] == "Succeeded")
            # After creation: errors, the first rollback, errors, the second rollback.
            figures.duplicate_actions = max(_generation(scenario) - created - 4, 0)
            figures.label += f" within {takeover:.0f} s"
            assert second_final["status"]["phase"] == "Succeeded"
            trail = [
                (line.get("name"), line.get("event"))
                for line in operator.audit_lines()
                if line.get("namespace") == scenario.ns
            ]
            assert _events(operator, scenario, "RollbackExecuted") == 1, (trail, operator.tail())
            assert _generation(scenario) == created + 4
            kube = [f"--kubeconfig={env.kubeconfig}", "--context=admin"]
            assert rollguard_main(["audit", "verify", "-n", scenario.ns, *kube]) == 0
        finally:
            second.stop()
            if operator.process is None or operator.process.poll() is not None:
                operator.start()


def test_api_server_and_etcd_restart_mid_decision(
    local_environment: Environment | None,
    operator: OperatorProcess,
    scenario: Scenario,
    kubectl: Kubectl,
    env: EnvInfo,
) -> None:
    if local_environment is None:
        pytest.skip("needs the session's own control plane to restart (not an existing cluster)")
    with drill("api-server-restart", "kube-apiserver and etcd restarted mid-decision") as figures:
        grant(kubectl, scenario.ns, "rollguard-approver", user="alice")
        scenario.setup(policy=needs_approval())
        wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
        scenario.set_profile("errors")
        name = wait_for("a decision", scenario.decisions, operator=operator)[0]["metadata"]["name"]
        wait_for(
            "PendingApproval",
            lambda: (
                (scenario.get("rollbackdecisions", name).get("status") or {}).get("phase")
                == "PendingApproval"
            ),
            operator=operator,
        )
        generation = _generation(scenario)
        downtime = local_environment.bounce(down_for=5.0)
        figures.faults, figures.lost_decisions = 1, 1  # until the decision is final
        figures.label += f" (back in {downtime + 5:.0f} s)"
        argv = ["approve", name, "-n", scenario.ns, "--reason", "after the restart",
                f"--kubeconfig={env.kubeconfig}", "--context=alice"]  # fmt: skip
        assert rollguard_main(argv) == 0
        final = final_decision(scenario, name, operator, timeout=150)
        alive = operator.process is not None and operator.process.poll() is None
        figures.lost_decisions = 0
        figures.survived = int(alive and final["status"]["phase"] == "Succeeded")
        figures.duplicate_actions = max(_generation(scenario) - generation - 1, 0)
        assert final["status"]["phase"] == "Succeeded", final["status"]
        assert _generation(scenario) == 3
        assert alive


RETRY_AFTER = 3  # seconds: longer than the policy's 2 s interval, so honouring it shows


@pytest.fixture
def throttled(
    local_environment: Environment | None, operator: OperatorProcess, env: EnvInfo
) -> Iterator[ApiProxy]:
    """The session operator restarted to reach the API server through a throttling proxy, and
    put back on the direct path afterwards."""
    proxy, direct = _proxied(local_environment, operator, env, "throttled")
    operator.restart(signal.SIGTERM)
    try:
        yield proxy
    finally:
        operator.env["KUBECONFIG"] = direct
        operator.restart(signal.SIGTERM)
        proxy.stop()


def _patch_of(scenario: Scenario) -> tuple[str, str]:
    return ("PATCH", f"/apis/apps/v1/namespaces/{scenario.ns}/deployments/fraud")


def _early_retries(requests: list[Request]) -> list[tuple[str, str, float]]:
    """Writes repeated sooner than the Retry-After of the 429 just before on the same path."""
    early = []
    refused_at: dict[tuple[str, str], float] = {}
    for r in requests:
        key = (r.method, r.path)
        if key in refused_at and r.at - refused_at.pop(key) < RETRY_AFTER - 0.2:
            early.append((*key, r.at))
        if r.status == 429:
            refused_at[key] = r.at
    return early


def test_api_server_throttling_retry_after_is_honoured(
    throttled: ApiProxy, operator: OperatorProcess, scenario: Scenario
) -> None:
    with drill(
        "api-throttling", f"API server answering 429 (Retry-After {RETRY_AFTER} s)"
    ) as figures:
        scenario.setup()
        wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
        start = time.monotonic()
        # Every non-watch request path of the operator is refused twice before it is served,
        # reads and writes, as API Priority and Fairness does to a client over its share.
        throttled.arm(retry_after=RETRY_AFTER, per_path=2)
        scenario.set_profile("errors")
        generation = _generation(scenario)
        figures.lost_decisions = 1  # until the decision is final
        name = wait_for("a decision", scenario.decisions, timeout=120, operator=operator)[0]
        final = final_decision(scenario, name["metadata"]["name"], operator, timeout=180)
        refused = throttled.disarm()
        seen = throttled.since(start)
        figures.lost_decisions = 0
        figures.label += f" to {len(refused)} request paths"
        figures.faults = sum(refused.values())
        # A refusal is survived when the same request was served later.
        served = {(r.method, r.path) for r in seen if 200 <= r.status < 300}
        figures.survived = sum(n for key, n in refused.items() if key in served)
        patches = [r for r in seen if (r.method, r.path) == _patch_of(scenario) and r.status < 300]
        figures.duplicate_actions = max(len(patches) - 1, 0)
        assert final["status"]["phase"] == "Succeeded", final["status"]
        assert _generation(scenario) == generation + 1
        assert _events(operator, scenario, "RollbackExecuted") == 1
        create = ("POST", DECISIONS.format(ns=scenario.ns))
        assert refused[_patch_of(scenario)] == 2 and refused[create] == 2, refused
        # Updates of one object have one writer at a time; reads of one path, and creates in one
        # collection (Events from several threads), may be different requests.
        writes = [r for r in seen if r.method in ("PATCH", "PUT", "DELETE")]
        assert _early_retries(writes) == [], _early_retries(writes)
        assert operator.process is not None and operator.process.poll() is None
