"""``make demo``: the local environment, the operator, and the fraud-model story narrated.

Starts the environment if it is not running (``make dev-up``), applies deploy/, starts the
operator in the background as the ServiceAccount from deploy/ (it keeps running after the demo,
until ``make dev-down``), then tells devenv.story step by step.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import sys
import textwrap
import time

from devenv.__main__ import DEFAULT_DIR, _running_pid, _up
from devenv.launcher import (
    REPO,
    EnvInfo,
    build_dir,
    controlplane_build_log,
    controlplane_cached,
)
from devenv.operatorproc import start_operator, stop_detached
from devenv.receivers import Sink
from devenv.story import NAMESPACE, Story, StoryError
from devenv.testing import kubectl_for
from rollguard.cli import main as rollguard_main

OPERATOR_DIR = DEFAULT_DIR / "operator"
OPERATOR_PID = DEFAULT_DIR / "operator.pid"


def say(text: str) -> None:
    print(text, flush=True)


def chapter(title: str, text: str) -> None:
    say(f"\n\033[1m==> {title}\033[0m")
    for line in textwrap.dedent(text).strip().splitlines():
        say(f"    {line}")


def _while_it_builds() -> None:
    """On a fresh machine the control plane is still building (``make demo`` starts it in the
    background): show meanwhile what rollguard would do on the fraud model's recorded bad
    release, offline, then follow the build until it is done."""
    if controlplane_cached():
        return
    chapter(
        "0. While the control plane builds",
        f"""
        The demo runs a real Kubernetes control plane, built once per machine from its Go
        modules (progress below, full log {controlplane_build_log()}). Meanwhile, offline:
        what rollguard would do with the fraud model's policy on a recorded bad release
        (examples/series/), if alice approved each decision a minute after it was made:

        $ rollguard simulate --policy examples/fraud/policy.yaml \\
            --series examples/series/fraud-bad-release.csv --approve-after 1m
        """,
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rollguard_main(
            ["simulate", "--policy", str(REPO / "examples/fraud/policy.yaml"),
             "--series", str(REPO / "examples/series/fraud-bad-release.csv"),
             "--approve-after", "1m"]
        )  # fmt: skip
    for line in out.getvalue().splitlines():
        say(f"    {line}")
    say("\n    The same policy on live data, once the build is done:")
    log, seen = controlplane_build_log(), 0
    while not controlplane_cached():
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        for line in lines[seen:]:
            if line.startswith("[controlplane]"):
                say(f"    {line}")
        seen = len(lines)
        if not _build_running():
            return  # failed or never started: the foreground build says why
        time.sleep(2)


def _build_running() -> bool:
    """A build holds the lock beside its cache directory while it runs."""
    out = build_dir()
    lock = out.with_name(out.name + ".lock")
    if not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def main() -> int:
    _while_it_builds()
    if _running_pid(DEFAULT_DIR) is None and _up(DEFAULT_DIR, seed=7, timeout=300) != 0:
        return 1
    env = EnvInfo.load(DEFAULT_DIR / "env.json")
    kubectl = kubectl_for(env)
    story = Story(env=env, kubectl=kubectl, say=say)

    chapter(
        "1. The operator",
        """
        deploy/ is applied as a platform team would (kubectl apply -k deploy/): CRDs, the
        least-privilege ServiceAccount, the approval admission policy. The operator runs as a
        local process with that ServiceAccount's token, scraping a Prometheus every second.
        """,
    )
    stop_detached(OPERATOR_PID)
    OPERATOR_DIR.mkdir(parents=True, exist_ok=True)
    # The on-call channel: a Slack-format webhook on loopback, for as long as the story runs.
    story.channel = Sink().start()
    receivers = {"receivers": [{"name": "oncall", "slack": {"url": story.channel.url}}]}
    (OPERATOR_DIR / "receivers.yaml").write_text(json.dumps(receivers))
    operator = start_operator(env, kubectl, OPERATOR_DIR, extra=["--keep-decisions=20"])
    assert operator.process is not None
    OPERATOR_PID.write_text(f"{operator.process.pid}\n")
    story.reset()  # with the operator running: it releases its finalizers on the old objects
    say(f"    operator pid {operator.process.pid}, log {operator.log}, audit log {operator.audit}")
    say(f"    metrics {operator.metrics_url}")

    try:
        chapter(
            "2. A high-risk model, healthy",
            """
            examples/fraud/ (with demo timings from examples/demo/): the fraud-scoring
            Deployment (release 1.4.2), its ModelDeployment with owners and business figures,
            and a high-tier RollbackPolicy watching error rate, p99 latency and the value of
            approved payments. Every rollback of this model needs alice or bob; the on-call
            group is bound to the rollguard-approver role in the namespace.
            """,
        )
        story.deploy_healthy()

        chapter(
            "3. A bad release",
            """
            Release 1.5.0 answers 12% of scoring requests with a 5xx. rollguard measures every
            signal with a confidence interval and only counts what lies beyond objective +
            margin; the impact score climbs as the evidence firms up.
            """,
        )
        story.bad_release()
        story.await_decision()
        say(f"    decision {story.decision} after {story.seen['detected_after']:.0f}s")

        chapter(
            "4. Who hears of it, and why",
            """
            The policy's notify list tells the on-call channel (a Slack-format webhook) of a
            decision that waits for approval, with the command that approves it. rollguard
            explain prints the evidence and the arithmetic.
            """,
        )
        story.notified()
        story.explain()

        chapter(
            "5. Who may approve",
            """
            A rollback of the fraud model lies outside the auto-approval boundary, so it waits
            for a named approver. The API server verifies who that is: mallory has no right to
            approve, and alice cannot approve in bob's name (a ValidatingAdmissionPolicy).
            """,
        )
        story.forged_approvals_are_refused()
        story.approve()

        chapter(
            "6. Rollback and validation",
            """
            The operator patches the Deployment back to the approved revision (a JSON Patch
            that tests metadata.generation, so a concurrent edit is never overwritten), waits
            for the rollout, then checks that the impact score stays below clearBelow.
            """,
        )
        story.await_rollback()
        story.await_final()
        story.outcome()

        chapter("7. The audit chain", "Each decision is hash-chained to the one before it.")
        story.audit()

        chapter(
            "8. Review, journal and calibration",
            """
            After the incident alice records a review (set once, in her own name, checked by
            the API server). The journal lists decisions with expected against observed
            impact, validation and review; calibrate turns the journal into the report of a
            calibration meeting (it needs more than one reviewed decision to judge margins).
            """,
        )
        story.review()
        story.journal()
        story.calibrate()
    except StoryError as err:
        say(f"\ndemo failed: {err}\n--- operator log (last lines) ---\n{operator.tail()}")
        return 1

    chapter(
        "Look around",
        f"""
        export KUBECONFIG={env.kubeconfig}
        kubectl get rbd,mdep,rbp -A -o wide
        kubectl -n {NAMESPACE} describe rbd {story.decision}
        kubectl -n {NAMESPACE} get events --sort-by=.lastTimestamp
        .venv/bin/rollguard replay <(kubectl -n {NAMESPACE} get rbd {story.decision} -o yaml)
        .venv/bin/rollguard dashboard --context alice -n {NAMESPACE}   # decisions in a browser
        tail {operator.audit}
        Prometheus: {env.prometheus_url}   operator metrics: {operator.metrics_url}
        make dev-down    # stops the operator and the environment
        """,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
