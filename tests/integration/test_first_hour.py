"""The first hour on a cluster of one's own, on a fresh control plane (not the session's, where
everything is installed): each documented way to install and to run the operator, in the
order a new user meets them.

1. No CRDs: `rollguard run` exits at once, naming the command that installs them; an
   identity without the rights is told every verb it lacks.
2. The quick start's own commands (docs/getting-started/quick-start.md): `kubectl apply -f
   crds/` accepts the directory as plain files; with CRDs only, `--namespace` and one's own
   credentials there are no peering CRDs, so it runs standalone and says so; within one
   evaluation interval it says what it watches, the policies are Ready, the example is judged
   and a regression is rolled back.
3. `kubectl apply -k deploy/` in one pass; its server-side dry run then passes too.
4. Everything installed, cluster-wide, as admin: it creates its peering object, warns at
   start that the admission policy will refuse its decisions, and when it does, says so once
   (no traceback loop), with readiness and the state metric showing why.
5. "Run it outside the cluster" (docs/operating/running.md), its own commands: as the
   ServiceAccount, the refused regression is acted on.
6. `--standalone` with peering installed really runs without peering (and says when
   Prometheus does not answer).
7. Two replicas started together, as the Deployment in deploy/ runs them, with no peering
   object yet: one creates it, one acts and the other stands by, both ready."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from operator_fixtures import Scenario, final_decision, wait_for

from devenv.launcher import REPO, EnvInfo, Environment, build_controlplane
from devenv.operatorproc import OperatorProcess, two_free_ports
from devenv.testing import Kubectl, api_client_for, kubectl_for

pytestmark = pytest.mark.integration


def _env(info: EnvInfo) -> dict[str, str]:
    """A user's environment: their kubeconfig, no ROLLGUARD_* settings."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("ROLLGUARD_")}
    return {**keep, "KUBECONFIG": info.kubeconfig}


QUICK_START = REPO / "docs" / "getting-started" / "quick-start.md"
RUNNING = REPO / "docs" / "operating" / "running.md"


def documented_commands(page: Path, heading: str) -> list[str]:
    """The commands of the first bash block under ``heading`` in a docs page, continuation
    lines joined."""
    text = page.read_text()
    start = text.index("```bash\n", text.index(f"{heading}\n")) + len("```bash\n")
    block = text[start : text.index("```", start)]
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def step(commands: list[str], number: int) -> str:
    (found,) = [c for c in commands if f"# {number}." in c]
    return found


class Fresh:
    def __init__(self, info: EnvInfo, work: Path) -> None:
        self.info, self.work = info, work
        self.kubectl: Kubectl = kubectl_for(info)
        self.api = api_client_for(info, "admin")

    def operator(self, name: str, *extra: str, kubeconfig: str | None = None) -> OperatorProcess:
        """`rollguard run`, with the admin kubeconfig (as someone trying it out would) unless
        given another."""
        audit = self.work / f"{name}.audit.jsonl"
        argv = [
            sys.executable, "-m", "rollguard.cli", "run",
            f"--prometheus-url={self.info.prometheus_url}",
            f"--metrics-port={two_free_ports()}", f"--audit-log={audit}",
            "--scrape-interval=1", "--decision-poll=1", *extra,
        ]  # fmt: skip
        proc = OperatorProcess(
            argv=argv,
            env={**_env(self.info), "KUBECONFIG": kubeconfig or self.info.kubeconfig},
            log=self.work / f"{name}.log",
            audit=audit,
        )
        proc.start()
        return proc

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        """A documented command as a user types it: in a directory of their own beside the
        checkout's crds/, deploy/ and examples/, with kubectl on the PATH."""
        home = self.work / "user"
        if not home.exists():
            home.mkdir()
            for name in ("crds", "deploy", "examples"):
                (home / name).symlink_to(REPO / name)
        kubectl_dir = str(Path(self.info.binaries["kubectl"]).parent)
        env = {**_env(self.info), "PATH": f"{kubectl_dir}:{os.environ['PATH']}"}
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command], cwd=home, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}: {result.stderr}"
        return result

    def namespace(self, name: str) -> str:
        self.kubectl("create", "namespace", name)
        return name


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    work = tmp_path_factory.mktemp("fresh")
    environment = Environment(work_dir=work / "env", bin_dir=build_controlplane())
    info = environment.start()
    try:
        yield Fresh(info, work)
    finally:
        environment.stop()


def _readyz(proc: OperatorProcess) -> tuple[int, str]:
    url = proc.metrics_url.replace("/metrics", "/readyz")
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def _refusals(proc: OperatorProcess) -> float:
    metrics = urllib.request.urlopen(proc.metrics_url, timeout=5).read().decode()
    line = 'rollguard_errors_total{kind="refused"} '
    return sum(float(x[len(line) :]) for x in metrics.splitlines() if x.startswith(line))


def _log_has(proc: OperatorProcess, text: str) -> bool:
    return text in proc.log.read_text(errors="replace") if proc.log.exists() else False


def _refused_start(fresh: Fresh, kubeconfig: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`rollguard run` that must stop at once with the usage exit code."""
    result = subprocess.run(
        [sys.executable, "-m", "rollguard.cli", "run", "--metrics-port=0",
         f"--prometheus-url={fresh.info.prometheus_url}", *extra],
        env={**_env(fresh.info), "KUBECONFIG": kubeconfig},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    return result


def test_without_crds_the_operator_exits_naming_the_command(fresh: Fresh) -> None:
    result = _refused_start(fresh, fresh.info.kubeconfig)
    assert "rollguard run: cannot start:" in result.stderr
    assert "rollbackpolicies, modeldeployments, rollbackdecisions" in result.stderr
    assert "kubectl apply -f crds/" in result.stderr
    assert "Traceback" not in result.stderr


def test_quick_start_step_1_applies_the_crds_as_plain_files(fresh: Fresh) -> None:
    quick = documented_commands(QUICK_START, "# Quick start on your own cluster")
    assert step(quick, 1).startswith("kubectl apply -f crds/")
    fresh.shell(step(quick, 1))
    fresh.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def test_an_identity_without_the_rights_is_told_each_missing_verb(fresh: Fresh) -> None:
    """mallory, authenticated but granted nothing: the SelfSubjectAccessReviews name every verb
    the operator would need, in the namespace it would watch."""
    config = yaml.safe_load(Path(fresh.info.kubeconfig).read_text())
    config["current-context"] = "mallory"
    kubeconfig = fresh.work / "mallory.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    result = _refused_start(fresh, str(kubeconfig), "--namespace=default")
    assert "Running as mallory" in result.stderr
    assert "mallory may not list/watch/patch rollbackpolicies.rollguard.dev," in result.stderr
    assert "list/watch/create/patch/delete rollbackdecisions.rollguard.dev" in result.stderr
    assert "get/list/watch/patch deployments.apps" in result.stderr
    assert "in namespace default. Fix: run as the operator's ServiceAccount" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_crds_only_it_runs_standalone_says_what_it_watches_and_rolls_back(
    fresh: Fresh,
) -> None:
    quick = documented_commands(QUICK_START, "# Quick start on your own cluster")
    ns = fresh.namespace("ml")
    # Step 3, with the test's Prometheus and ports.
    assert step(quick, 3).startswith(
        "rollguard run --prometheus-url http://PROMETHEUS:9090 --namespace ml"
    )
    proc = fresh.operator("crds-only", f"--namespace={ns}")
    try:
        wait_for("the standalone warning", lambda: _log_has(proc, "runs standalone"),
                 timeout=60, operator=proc)  # fmt: skip
        assert _log_has(proc, "kubectl apply -f deploy/peering.yaml")
        scenario = Scenario(fresh.api, ns)
        scenario.setup()
        wait_for(
            "the summary of what it watches",
            lambda: _log_has(
                proc, "Watching 1 RollbackPolicy(s) (1 ready), 1 ModelDeployment(s) bound to them, "
                "targets: Deployment ml/fraud"
            ),
            timeout=30, operator=proc,
        )  # fmt: skip

        def ready() -> bool:
            status = scenario.get("rollbackpolicies", "fraud-policy").get("status") or {}
            return any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in status.get("conditions") or []
            )

        wait_for("the policy Ready", ready, timeout=30, operator=proc)
        assert _readyz(proc) == (200, "ready\n")
        # Steps 4 and 5: the example guarded, its policy Ready and its ModelDeployment judged.
        fresh.shell(step(quick, 4))

        def example_judged() -> bool:
            listed = fresh.shell(step(quick, 5)).stdout
            lines = {ln.split()[0]: ln for ln in listed.splitlines() if ln.strip()}
            policy = lines.get("rollbackpolicy.rollguard.dev/fraud-high", "")
            mdep = lines.get("modeldeployment.rollguard.dev/fraud-scorer", "")
            return " True " in policy and ("Healthy" in mdep or "Inconclusive" in mdep)

        wait_for("the example judged", example_judged, timeout=90, operator=proc)
        scenario.set_profile("errors")
        decisions = wait_for("a decision", scenario.decisions, timeout=120, operator=proc)
        decision = final_decision(scenario, decisions[0]["metadata"]["name"], proc, timeout=150)
        assert decision["status"]["phase"] == "Succeeded", decision["status"]
        assert "Pausing the watch-stream" not in proc.log.read_text()
    finally:
        proc.stop()


def test_deploy_applies_in_one_pass_and_then_dry_runs_clean(fresh: Fresh) -> None:
    deploy = str(REPO / "deploy")
    # Kubernetes cannot dry-run objects into a namespace the same dry run creates
    # (kubernetes/kubernetes#83562): before the install, that is the only complaint.
    dry = fresh.kubectl("apply", "--dry-run=server", "-k", deploy, check=False)
    errors = [line for line in dry.stderr.splitlines() if line.strip()]
    assert errors and all('namespaces "rollguard-system" not found' in e for e in errors), errors
    fresh.kubectl("apply", "-k", deploy)  # one pass
    again = fresh.kubectl("apply", "--dry-run=server", "-k", deploy)
    assert "deployment.apps/rollguard unchanged (server dry run)" in again.stdout, again.stdout


def test_as_admin_a_refused_decision_is_said_once_with_the_fix(fresh: Fresh) -> None:
    ns = fresh.namespace("shop")
    proc = fresh.operator("admin")
    try:
        wait_for("start-up", lambda: _log_has(proc, "Started rollguard"), timeout=60,
                 operator=proc)  # fmt: skip
        text = proc.log.read_text()
        assert "Running as admin" in text
        assert "Created ClusterKopfPeering rollguard" in text
        assert "every decision would be refused" in text
        custom = client.CustomObjectsApi(fresh.api)
        assert custom.get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", "rollguard"
        )
        scenario = Scenario(fresh.api, ns)
        scenario.setup()
        wait_for("an evaluation", lambda: scenario.phase() == "Healthy", timeout=60,
                 operator=proc)  # fmt: skip
        scenario.set_profile("errors")
        wait_for("the refusal", lambda: _log_has(proc, "refused to create a RollbackDecision"),
                 timeout=120, operator=proc)  # fmt: skip
        wait_for("readiness to drop", lambda: _readyz(proc)[0] == 503, timeout=10)
        _, body = _readyz(proc)
        assert body.startswith("refused: the API server refuses decisions:"), body
        assert "created by the rollguard operator only, not by admin" in body
        metrics = urllib.request.urlopen(proc.metrics_url, timeout=5).read().decode()
        assert 'rollguard_operator_state{rollguard_operator_state="refused"} 1.0' in metrics
        # It keeps trying every cycle: still one line, and no traceback.
        wait_for("more refusals", lambda: _refusals(proc) >= 3, timeout=30, operator=proc)
        text = proc.log.read_text()
        assert text.count("refused to create a RollbackDecision") == 1, proc.tail()
        assert "Traceback" not in text, proc.tail()
        message = (scenario.get("modeldeployments", "fraud").get("status") or {}).get("message")
        assert "refused its RollbackDecision" in str(message), message
        assert not scenario.decisions()
    finally:
        proc.stop()


def test_run_outside_the_cluster_as_the_docs_say_and_the_refused_regression_is_acted_on(
    fresh: Fresh,
) -> None:
    """The fix the refusal names, exactly as the docs give it: the shop regression that
    was refused is rolled back by the operator running as its ServiceAccount."""
    commands = documented_commands(RUNNING, "## Run it outside the cluster")
    *setup, last = commands
    for command in setup:
        fresh.shell(command)
    assert (
        last
        == "KUBECONFIG=rollguard.kubeconfig rollguard run --prometheus-url http://PROMETHEUS:9090"
    )
    proc = fresh.operator(
        "as-serviceaccount", kubeconfig=str(fresh.work / "user" / "rollguard.kubeconfig")
    )
    try:
        wait_for("start-up", lambda: _log_has(proc, "Started rollguard"), timeout=60,
                 operator=proc)  # fmt: skip
        text = proc.log.read_text()
        assert "Running as system:serviceaccount:rollguard-system:rollguard" in text
        assert "every decision would be refused" not in text
        scenario = Scenario(fresh.api, "shop")
        decisions = wait_for("the decision", scenario.decisions, timeout=120, operator=proc)
        decision = final_decision(scenario, decisions[0]["metadata"]["name"], proc, timeout=150)
        assert decision["status"]["phase"] == "Succeeded", decision["status"]
    finally:
        proc.stop()
        fresh.kubectl("delete", "namespace", "shop", "--wait=false")


def test_standalone_runs_without_peering_when_peering_is_installed(fresh: Fresh) -> None:
    # Pointed at a port where no Prometheus answers, as after a typo in the URL.
    proc = fresh.operator("standalone", "--standalone", "--prometheus-url=http://127.0.0.1:9")
    try:
        wait_for(
            "the summary", lambda: _log_has(proc, "RollbackPolicy(s)"), timeout=60, operator=proc
        )
        text = proc.log.read_text()
        assert "Peering off (--standalone)" in text and "Pausing the watch-stream" not in text
        assert "Prometheus at http://127.0.0.1:9 does not answer" in text
        assert _readyz(proc) == (200, "ready\n")
    finally:
        proc.stop()


def test_two_replicas_started_together_create_the_peering_once_and_one_acts(fresh: Fresh) -> None:
    custom = client.CustomObjectsApi(fresh.api)
    custom.delete_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "rollguard")
    kubeconfig = str(fresh.work / "user" / "rollguard.kubeconfig")
    replicas = [fresh.operator(f"replica-{i}", kubeconfig=kubeconfig) for i in (1, 2)]
    try:
        for proc in replicas:
            wait_for("start-up", lambda p=proc: _log_has(p, "Started rollguard"), timeout=60,
                     operator=proc)  # fmt: skip
        assert custom.get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", "rollguard"
        )

        def states() -> list[str] | None:
            found = sorted(_readyz(p)[1].strip() for p in replicas)
            return found if found == ["ready", "standby"] else None

        wait_for("one replica acting, one standing by", states, timeout=60)
        assert all(_readyz(p)[0] == 200 for p in replicas)
    finally:
        for proc in replicas:
            proc.stop()
