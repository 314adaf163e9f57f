"""Commands for people, against a cluster: ``approve``, ``reject``, ``review``, ``explain``,
``clear`` and ``audit verify``.

Each turns its parsed arguments into a call of ``rollguard.commands`` (which speaks as the
caller) and prints the outcome. Registered in ``rollguard.cli``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rollguard import commands
from rollguard.api.decision import RegressionFinding, ReviewVerdict
from rollguard.cli.base import EXIT_FOUND, EXIT_OK, Command, UsageError, cluster_from, kube_args

# The spellings of review's options, and the values they stand for in spec.review.
REVIEW_VERDICTS: dict[str, ReviewVerdict] = {
    "achieved": "Achieved",
    "partial": "Partial",
    "not-achieved": "NotAchieved",
}
REGRESSION_FINDINGS: dict[str, RegressionFinding] = {
    "real": "Real",
    "false-alarm": "FalseAlarm",
    "unclear": "Unclear",
}


def _decision_args(
    p: argparse.ArgumentParser, *, reason: bool, kind: str = "RollbackDecision"
) -> None:
    p.add_argument("name", help=f"{kind} name")
    p.add_argument("-n", "--namespace", default="default", help="its namespace")
    if reason:
        p.add_argument("--reason", required=True, help="why (recorded in the decision)")
    kube_args(p)


# --- approve, reject ----------------------------------------------------------------------


def _approval_args(p: argparse.ArgumentParser) -> None:
    _decision_args(p, reason=True)


def _approve(args: argparse.Namespace) -> int:
    user = commands.set_approval(
        cluster=cluster_from(args),
        namespace=args.namespace,
        name=args.name,
        verdict="Approve",
        reason=args.reason,
    )
    print(f"Approved RollbackDecision {args.namespace}/{args.name} as {user}")
    return EXIT_OK


def _reject(args: argparse.Namespace) -> int:
    user = commands.set_approval(
        cluster=cluster_from(args),
        namespace=args.namespace,
        name=args.name,
        verdict="Reject",
        reason=args.reason,
    )
    print(f"Rejected RollbackDecision {args.namespace}/{args.name} as {user}")
    return EXIT_OK


APPROVE = Command("approve a pending decision, as yourself", _approval_args, _approve)
REJECT = Command("reject a pending decision, as yourself", _approval_args, _reject)


# --- review -------------------------------------------------------------------------------


def _review_args(p: argparse.ArgumentParser) -> None:
    _decision_args(p, reason=False)
    p.add_argument(
        "--verdict",
        required=True,
        choices=sorted(REVIEW_VERDICTS),
        help="did the decision achieve what it expected",
    )
    p.add_argument(
        "--regression",
        default="unclear",
        choices=sorted(REGRESSION_FINDINGS),
        help="was the regression real, or a false alarm (default: unclear); calibration counts "
        "false rollbacks and missed regressions from this",
    )
    p.add_argument("--notes", required=True, help="what the review found (recorded)")


def _review(args: argparse.Namespace) -> int:
    if not args.notes.strip():
        raise UsageError("--notes: say what the review found")
    user = commands.set_review(
        cluster=cluster_from(args),
        namespace=args.namespace,
        name=args.name,
        verdict=REVIEW_VERDICTS[args.verdict],
        regression=REGRESSION_FINDINGS[args.regression],
        notes=args.notes,
        now=datetime.now(tz=UTC),
    )
    print(f"Reviewed RollbackDecision {args.namespace}/{args.name} as {user}")
    return EXIT_OK


REVIEW = Command(
    "record a post-decision review of an ended decision, as yourself", _review_args, _review
)


# --- explain, clear -----------------------------------------------------------------------


def _explain_args(p: argparse.ArgumentParser) -> None:
    _decision_args(p, reason=False)


def _explain(args: argparse.Namespace) -> int:
    print(commands.explain(cluster=cluster_from(args), namespace=args.namespace, name=args.name))
    return EXIT_OK


EXPLAIN = Command("why a decision was made, in plain words", _explain_args, _explain)


def _clear_args(p: argparse.ArgumentParser) -> None:
    _decision_args(p, reason=False, kind="ModelDeployment")


def _clear(args: argparse.Namespace) -> int:
    commands.clear_escalation(
        cluster=cluster_from(args),
        namespace=args.namespace,
        name=args.name,
        now=datetime.now(tz=UTC),
    )
    print(f"Cleared the escalation of ModelDeployment {args.namespace}/{args.name}")
    return EXIT_OK


CLEAR = Command("let automatic actions resume on an Escalated ModelDeployment", _clear_args, _clear)


# --- audit --------------------------------------------------------------------------------


def _audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["verify"], help="verify: walk the hash chains")
    p.add_argument("-n", "--namespace", default=None, help="one namespace (default: all)")
    kube_args(p)


def _audit(args: argparse.Namespace) -> int:
    report, intact = commands.audit_verify(cluster=cluster_from(args), namespace=args.namespace)
    print(report)
    return EXIT_OK if intact else EXIT_FOUND


AUDIT = Command("verify the decision hash chains", _audit_args, _audit)
