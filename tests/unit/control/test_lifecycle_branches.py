"""The riskiest branches of a decision's lifecycle, run by the real cycle and lifecycle against
the in-memory API server (``reason_scenarios``): every answer to an approval request and its
timeout, a Deployment changed by someone else before or during execution, a pruned target, a
target already live, a rollout that never completes, and both ways validation fails.

A decision is made at T0 + 105 s (DECIDED); people answer at T0 + 165 s (ANSWERED); the
approval timeout is 2 m, so it runs out at T0 + 225 s. Times below are seconds after T0."""

from __future__ import annotations

from typing import Any

import pytest
import reason_scenarios as s
from fake_cluster import NAME, NAMESPACE, FakeCluster
from operator_harness import OperatorRun, run_operator

from rollguard.control import reasons
from rollguard.core.revisions import REVISION_ANNOTATION

DECIDED, ANSWERED, TIMED_OUT = s.DECIDED, s.ANSWERED, s.DECIDED + 120
V1, V2 = "registry.local/model:v1", "registry.local/model:v2"
EXECUTED = [reasons.EXECUTION_STARTED, reasons.ROLLBACK_EXECUTED, reasons.ROLLOUT_COMPLETED]
_OPENING = {reasons.ROLLBACK_RECOMMENDED, reasons.PAUSE_RECOMMENDED, reasons.APPROVAL_REQUIRED}


def _only_decision(run: OperatorRun) -> dict[str, Any]:
    [decision] = run.stored_decisions
    return decision


def _after_request(run: OperatorRun) -> list[tuple[float, str]]:
    """The decision's Events after it was recommended and, if it must be, sent for approval."""
    name = _only_decision(run)["metadata"]["name"]
    return [(t, r) for t, r in s.events_of(run, name) if t > DECIDED or r not in _OPENING]


def _live(run: OperatorRun) -> tuple[str, str, bool]:
    """The Deployment at the end: its revision, image, and whether it is paused."""
    d = run.deployment
    image = d["spec"]["template"]["spec"]["containers"][0]["image"]
    return d["metadata"]["annotations"][REVISION_ANNOTATION], image, bool(d["spec"].get("paused"))


def _escalated_at(run: OperatorRun) -> list[float]:
    return [t - s.T0 for t, _ in run.escalations]


# -- approval ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("by", "verdict", "on_timeout", "events", "phase", "patched_at"),
    [
        pytest.param(
            "alice", "Approve", "Reject",
            [(ANSWERED, reasons.APPROVAL_GRANTED)] + [(ANSWERED, r) for r in EXECUTED],
            "Validating", [ANSWERED], id="approved",
        ),
        pytest.param(
            "mallory", "Approve", "Reject", [(ANSWERED, reasons.APPROVER_NOT_ALLOWED)],
            "Rejected", [], id="approver-not-allowed",
        ),
        pytest.param(
            "alice", "Reject", "Reject", [(ANSWERED, reasons.APPROVAL_REJECTED)],
            "Rejected", [], id="rejected",
        ),
        pytest.param(
            None, "Approve", "Reject", [(TIMED_OUT, reasons.APPROVAL_EXPIRED)],
            "Expired", [], id="timeout-reject",
        ),
        pytest.param(
            None, "Approve", "Execute",
            [(TIMED_OUT, reasons.APPROVAL_TIMEOUT_EXECUTE)] + [(TIMED_OUT, r) for r in EXECUTED],
            "Validating", [TIMED_OUT], id="timeout-execute",
        ),
    ],
)  # fmt: skip
def test_a_decision_waiting_for_approval_follows_the_answer_or_its_timeout(
    by: str | None,
    verdict: str,
    on_timeout: str,
    events: list[tuple[float, str]],
    phase: str,
    patched_at: list[float],
) -> None:
    """Only alice is among the approvers: her approval executes, her rejection and anyone
    else's approval end the decision unexecuted; unanswered, onTimeout decides at 2 m."""
    run = s.approval(by, verdict, on_timeout)
    decision = _only_decision(run)
    assert decision["spec"]["requiresApproval"] is True
    assert _after_request(run) == events
    assert decision["status"]["phase"] == phase
    assert [p.time - s.T0 for p in run.deployment_patches] == patched_at
    assert _live(run)[1] == (V1 if patched_at else V2)
    assert run.escalations == []


def test_an_approval_by_someone_outside_the_approvers_is_refused_and_says_who_may() -> None:
    decision = _only_decision(s.approval("mallory"))
    assert decision["spec"]["approval"]["by"] == "mallory"
    assert decision["status"]["message"] == (
        "mallory is not among the policy's approvers (alice); nothing executed"
    )


# -- the Deployment at execution -----------------------------------------------------------


def test_a_deployment_changed_elsewhere_before_execution_supersedes_the_decision() -> None:
    """Someone deploys a hotfix (revision 3) while the decision waits; when alice approves,
    the operator finds the Deployment no longer at the revision it judged and leaves it."""
    run = s.interfered("hotfix")
    decision = _only_decision(run)
    assert _after_request(run) == [
        (ANSWERED, reasons.APPROVAL_GRANTED),
        (ANSWERED, reasons.EXECUTION_STARTED),
        (ANSWERED, reasons.SUPERSEDED),
    ]
    assert decision["status"]["phase"] == "Superseded"
    assert "is at revision 3, not 2 as judged" in decision["status"]["message"]
    assert decision["status"]["execution"]["patched"] is False
    assert run.deployment_patches == [] and _live(run) == ("3", s.HOTFIX, False)
    assert [e["type"] for e in run.cluster.events if e["reason"] == reasons.SUPERSEDED] == [
        "Warning"
    ]
    assert run.escalations == []


def test_a_pruned_target_revision_fails_the_decision_and_escalates() -> None:
    """Revision 1's ReplicaSet is gone (revisionHistoryLimit) when the rollback executes."""
    run = s.interfered("prune")
    decision = _only_decision(run)
    assert _after_request(run)[-1] == (ANSWERED, reasons.TARGET_MISSING)
    assert decision["status"]["phase"] == "Failed"
    assert "revisionHistoryLimit" in decision["status"]["message"]
    assert run.deployment_patches == [] and _live(run) == ("2", V2, False)
    assert _escalated_at(run) == [ANSWERED]
    assert run.model_deployment["status"]["phase"] == "Escalated"


def test_a_deployment_already_at_the_target_is_validated_without_a_patch() -> None:
    """A human ran `kubectl rollout undo --to-revision 1` first: nothing to patch, the
    rollback counts as done (as after a crash between the patch and its record) and is
    validated like one."""
    run = s.interfered("undo")
    decision = _only_decision(run)
    assert _after_request(run) == [
        (ANSWERED, reasons.APPROVAL_GRANTED),
        (ANSWERED, reasons.EXECUTION_STARTED),
        (ANSWERED, reasons.ALREADY_AT_TARGET),
        (ANSWERED, reasons.ROLLOUT_COMPLETED),
    ]
    assert decision["status"]["phase"] == "Validating"
    assert decision["status"]["execution"]["patched"] is True
    assert run.deployment_patches == [] and _live(run) == ("3", V1, False)


@pytest.mark.parametrize(
    ("action", "race", "live"),
    [
        pytest.param("Rollback", "422", ("3", s.HOTFIX, False), id="rollback-422"),
        pytest.param("Pause", "422", ("3", s.HOTFIX, False), id="pause-422"),
    ],
)
def test_a_patch_that_loses_a_race_overwrites_nothing_and_supersedes_the_decision(
    action: str, race: str, live: tuple[str, str, bool]
) -> None:
    """The API server answers 422 because another writer's new pod template (a hotfix)
    landed between the operator's read and its patch (the generation test): the re-read
    sees the new template, the decision ends Superseded, and the Deployment keeps whatever
    the other writer left."""
    run = s.raced(action, race)
    decision = _only_decision(run)
    assert decision["spec"]["recommended"]["action"] == action
    assert _after_request(run) == [
        (DECIDED, reasons.AUTO_APPROVED),
        (DECIDED, reasons.EXECUTION_STARTED),
        (DECIDED, reasons.SUPERSEDED),
    ]
    assert decision["status"]["phase"] == "Superseded"
    assert f"(HTTP {race}" in decision["status"]["message"]
    assert decision["status"]["execution"]["patched"] is False
    assert run.deployment_patches == [] and _live(run) == live


@pytest.mark.parametrize(
    ("action", "done", "live"),
    [
        pytest.param("Rollback", reasons.ROLLBACK_EXECUTED, ("3", V1, False), id="rollback"),
        pytest.param("Pause", reasons.ROLLOUT_PAUSED, ("2", V2, True), id="pause"),
    ],
)
def test_a_patch_refused_with_409_and_nothing_changed_is_retried(
    action: str, done: str, live: tuple[str, str, bool]
) -> None:
    """A 409 on the PATCH with the Deployment as judged: the re-read finds the same revision
    and pod template, and the second patch goes through."""
    run = s.raced(action, "409")
    decision = _only_decision(run)
    assert decision["spec"]["recommended"]["action"] == action
    assert (DECIDED, done) in _after_request(run)
    assert decision["status"]["execution"]["patched"] is True
    assert len(run.deployment_patches) == 1 and _live(run) == live


def test_a_scale_between_the_read_and_the_patch_does_not_cost_the_rollback() -> None:
    """An edit of spec.replicas (kubectl scale, an autoscaler) moves metadata.generation but
    leaves revision 2 live, as judged: the rollback still happens."""

    def scale(now: float, fake: FakeCluster) -> None:
        fake.edit_before_next_deployment_patch(
            namespace=NAMESPACE,
            name=NAME,
            operations=[{"op": "replace", "path": "/spec/replicas", "value": 5}],
        )

    run = run_operator(
        s.AUTO_ROLLBACK,
        s.series((s.BAD, 9)),
        eval_times=s.times(DECIDED, 120),
        act=s.at(DECIDED, scale),
    )
    assert _live(run)[1] == V1
    assert _only_decision(run)["status"]["phase"] == "Validating"


# -- validation ----------------------------------------------------------------------------


def test_a_rollout_that_never_completes_times_out_fails_and_escalates() -> None:
    """rolloutTimeout 1m: the Deployment controller never finishes the rollback's rollout."""
    run = s.stalled_rollback()
    decision = _only_decision(run)
    assert _after_request(run)[-2:] == [
        (DECIDED, reasons.ROLLBACK_EXECUTED),
        (DECIDED + 75, reasons.ROLLOUT_TIMED_OUT),  # the first evaluation more than 1m after
    ]
    validation = decision["status"]["validation"]
    assert (decision["status"]["phase"], validation["verdict"]) == ("Failed", "Failed")
    assert validation["message"] == "Rollout not available within rolloutTimeout 1m"
    assert "rolloutCompletedAt" not in validation
    assert _escalated_at(run) == [DECIDED + 75]


@pytest.mark.parametrize(
    ("scenario", "failed_at", "message", "evaluations"),
    [
        pytest.param(
            s.rollback_that_stays_bad, DECIDED + 135,
            "impact score 0.800 at 2023-11-14T22:04:00+00:00 is not below clearBelow 0.05",
            1, id="score-not-below-clearBelow",
        ),
        pytest.param(
            s.rollback_never_judged, DECIDED + 315,
            "no conclusive evaluation within the validation window 3m",
            None, id="no-conclusive-evaluation",
        ),
    ],
)  # fmt: skip
def test_validation_fails_and_escalates_on_a_bad_score_or_on_no_conclusive_evaluation(
    scenario: Any, failed_at: float, message: str, evaluations: int | None
) -> None:
    """The first evaluation that sees only the rolled-back revision (window + scrape interval
    after the rollout) fails validation at once if its score is not below clearBelow; with
    no conclusive evaluation in the 3m validation window, validation fails at its end."""
    run: OperatorRun = scenario()
    decision = _only_decision(run)
    assert decision["status"]["execution"]["patched"] is True
    assert _after_request(run)[-1] == (failed_at, reasons.VALIDATION_FAILED)
    validation = decision["status"]["validation"]
    assert (decision["status"]["phase"], validation["verdict"]) == ("Failed", "Failed")
    assert validation["message"] == message
    assert validation.get("evaluations") == evaluations
    assert _escalated_at(run) == [failed_at]


def test_validation_succeeds_when_the_score_stays_below_clear_below_for_the_window() -> None:
    run = s.rollback_that_recovers()
    decision = _only_decision(run)
    assert _after_request(run) == [
        (DECIDED, reasons.AUTO_APPROVED),
        *((DECIDED, r) for r in EXECUTED),
        (DECIDED + 315, reasons.VALIDATION_SUCCEEDED),
    ]
    validation = decision["status"]["validation"]
    assert (decision["status"]["phase"], validation["verdict"]) == ("Succeeded", "Passed")
    assert validation["observedMaxScore"] == 0.0 and validation["evaluations"] == 13
    assert run.escalations == []


def test_a_human_clearing_the_escalation_lets_the_operator_act_again() -> None:
    """After the failed validation escalated it, `rollguard clear` at T0 + 300 s: the next
    cycle says so and the ModelDeployment is no longer Escalated."""
    run = s.rollback_that_stays_bad()
    assert [(t, r) for t, r in s.events_of(run) if t >= DECIDED + 135] == [
        (DECIDED + 135, reasons.ESCALATED),
        (300, reasons.ESCALATION_CLEARED),
        (300, reasons.BECAME_DEGRADED),
    ]
    status = run.model_deployment["status"]
    assert status["phase"] == "Degraded" and "escalatedAt" not in status
