"""``make demo``: the local environment, the operator, and the fraud-model story narrated.

Starts the environment if it is not running (``make dev-up``), applies deploy/, starts the
operator in the background as the ServiceAccount from deploy/ (it keeps running after the demo,
until ``make dev-down``), then tells devenv.story step by step.
"""

from __future__ import annotations

import sys
import textwrap

from devenv.__main__ import DEFAULT_DIR, _running_pid, _up
from devenv.launcher import EnvInfo
from devenv.operatorproc import start_operator, stop_detached
from devenv.story import NAMESPACE, Story, StoryError
from devenv.testing import kubectl_for

OPERATOR_DIR = DEFAULT_DIR / "operator"
OPERATOR_PID = DEFAULT_DIR / "operator.pid"


def say(text: str) -> None:
    print(text, flush=True)


def chapter(title: str, text: str) -> None:
    say(f"\n\033[1m==> {title}\033[0m")
    for line in textwrap.dedent(text).strip().splitlines():
        say(f"    {line}")


def main() -> int:
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

        chapter("4. Why", "rollguard explain prints the evidence and the arithmetic.")
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
        tail {operator.audit}
        Prometheus: {env.prometheus_url}   operator metrics: {operator.metrics_url}
        make dev-down    # stops the operator and the environment
        """,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
