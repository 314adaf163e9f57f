"""The decision journal and the calibration report, from decision objects and from an
exported audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from recorded_decision import recorded

from rollguard.api.decision import Review, RollbackDecisionSpec
from rollguard.cli import main
from rollguard.files.loading import InputError
from rollguard.governance import calibration, intervals, journal

SPEC = recorded()


def _review(verdict: str = "Achieved", regression: str = "Real", by: str = "alice") -> Review:
    return Review(
        verdict=verdict,  # type: ignore[arg-type]
        regression=regression,  # type: ignore[arg-type]
        by=by,
        notes="looked at the dashboards",
        reviewed_at=datetime(2023, 11, 15, 9, 0, tzinfo=UTC),
    )


def decision(
    name: str,
    *,
    phase: str = "Succeeded",
    patched: bool = True,
    review: Review | None = None,
    expected: float | None = 0.76,
    observed: float | None = 0.8,
    minutes: int = 0,
    action: str = "Rollback",
    policy: str = "p",
    spec: RollbackDecisionSpec = SPEC,
) -> dict[str, Any]:
    at = datetime.fromtimestamp(spec.evaluated_at.timestamp() + 60 * minutes, tz=UTC)
    spec = spec.model_copy(
        update={
            "review": review,
            "evaluated_at": at,
            "recommended": spec.recommended.model_copy(update={"action": action}),
            "policy": spec.policy.model_copy(update={"name": policy}),
        }
    )
    status: dict[str, Any] = {
        "phase": phase,
        "execution": {"patched": patched},
        "audit": {"sequence": 1, "hash": "sha256:x", "previousHash": "sha256:0"},
    }
    if observed is not None:
        status["outcome"] = {
            "expectedScoreAfter": 0.0,
            "observedScoreAfter": 0.04,
            "expectedLossAvoided": expected,
            "observedLossAvoided": observed,
        }
        status["validation"] = {
            "criteria": {"rolloutTimeout": "5m", "window": "1m", "clearBelow": 0.1},
            "verdict": "Passed",
        }
    return {
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RollbackDecision",
        "metadata": {"namespace": "ml", "name": name},
        "spec": spec.wire(),
        "status": status,
    }


def test_journal_lists_expected_against_observed_validation_and_review() -> None:
    book = journal.from_objects(
        [
            decision("fraud-2", minutes=5),
            decision("fraud-1", review=_review("Partial", "Real", "bob")),
        ]
    )
    assert [e.name for e in book.entries] == ["fraud-1", "fraud-2"]  # oldest first
    text = journal.to_text(book)
    assert "Rollback 4->3  phase Succeeded  score 0.845" in text
    assert "loss avoided (impact-hours): expected 0.760, observed 0.800" in text
    assert "validation: Passed;  review: Partial, regression Real, by bob" in text
    assert "review: not reviewed" in text
    markdown = journal.to_markdown(book)
    assert markdown.splitlines()[1].count("---") == 11
    rows = json.loads(journal.to_json(book))["decisions"]
    assert rows[0]["review"]["by"] == "bob" and rows[1]["review"] is None
    assert rows[0]["observedLossAvoided"] == 0.8


def test_a_broken_object_is_reported_not_fatal() -> None:
    book = journal.from_objects([decision("ok"), {"metadata": {"name": "bad"}, "spec": {}}])
    assert [e.name for e in book.entries] == ["ok"]
    assert book.skipped and "None/bad: not a readable decision" in book.skipped[0]


def test_the_audit_log_gives_the_same_journal_with_late_reviews_joined(tmp_path: Path) -> None:
    reviewed = decision("fraud-1")
    lines = [
        "kopf: some unrelated log line",
        json.dumps({"event": "RollbackExecuted", "namespace": "ml", "name": "fraud-1"}),
        json.dumps(
            {"event": "DecisionFinal", "namespace": "ml", "name": "fraud-1", "decision": reviewed}
        ),
        json.dumps(
            {
                "event": "DecisionFinal",
                "namespace": "ml",
                "name": "fraud-2",
                "decision": decision("fraud-2"),
            }
        ),
        json.dumps(
            {
                "event": "DecisionReviewed",
                "namespace": "ml",
                "name": "fraud-1",
                "review": _review("NotAchieved", "FalseAlarm").wire(),
            }
        ),
        '{"event": "DecisionFinal", broken',
        json.dumps({"event": "DecisionReviewed", "namespace": "ml", "name": "gone", "review": {}}),
    ]
    book = journal.from_audit_log(lines, source="audit.log")
    assert [e.name for e in book.entries] == ["fraud-1", "fraud-2"]
    review = book.entries[0].review
    assert review is not None and review.regression == "FalseAlarm"
    assert book.entries[0].false_rollback
    assert book.skipped == [
        "audit.log:6: not JSON",
        "ml/gone: a review without its DecisionFinal line",
    ]


def test_since_takes_spans_and_times() -> None:
    now = 1_700_000_000.0
    assert journal.parse_since("30m", now=now) == now - 1800
    assert journal.parse_since("7d", now=now) == now - 7 * 86400
    assert journal.parse_since("2023-11-14T22:13:20Z", now=now) == 1_700_000_000.0
    with pytest.raises(InputError, match=r"--since: .*30m, 12h or 7d"):
        journal.parse_since("last tuesday", now=now)


def _not_rolled_back(name: str, regression: str, **fields: Any) -> dict[str, Any]:
    return decision(
        name, patched=False, observed=None, review=_review("NotAchieved", regression), **fields
    )


def test_false_rollbacks_and_missed_regressions_come_from_reviews() -> None:
    book = journal.from_objects(
        [
            decision("a", review=_review(regression="FalseAlarm")),
            decision("b", review=_review(regression="Real")),
            _not_rolled_back("c", "Real", action="Hold"),
            _not_rolled_back("d", "Real", phase="Rejected"),
            _not_rolled_back("e", "FalseAlarm", phase="Expired"),
            decision("f"),
        ]
    )
    by = {e.name: e for e in book.entries}
    assert [n for n, e in by.items() if e.false_rollback] == ["a"]
    assert [n for n, e in by.items() if e.missed_regression] == ["c", "d"]
    reading = calibration.read_policy("ml/p", book.entries, calibration.Targets(min_reviews=3))
    assert (reading.reviewed_rollbacks, reading.false_rollbacks) == (2, 1)
    assert (reading.real_regressions, reading.missed) == (3, 2)


def test_wilson_and_bootstrap_intervals() -> None:
    interval = intervals.wilson(0, 10)
    assert interval is not None and interval.value == 0.0 and interval.low == 0.0
    assert 0.27 < interval.high < 0.29  # the textbook value is 0.2775
    half = intervals.wilson(5, 10)
    assert half is not None and half.low == pytest.approx(1 - half.high)
    assert intervals.wilson(0, 0) is None
    mean = intervals.bootstrap_mean([1.0, 2.0, 3.0, 4.0])
    assert mean.value == 2.5 and mean.low < 2.5 < mean.high
    assert intervals.bootstrap_mean([1.0, 2.0, 3.0, 4.0]) == mean  # fixed seed


def _many_false_alarms() -> journal.Journal:
    objects = [
        decision(f"fa-{i}", minutes=i, review=_review("NotAchieved", "FalseAlarm"))
        for i in range(8)
    ] + [decision("real-1", minutes=10, review=_review())]
    return journal.from_objects(objects)


def test_a_policy_with_many_false_rollbacks_reads_too_tight_with_the_widening_per_signal() -> None:
    book = _many_false_alarms()
    [reading] = calibration.readings(book.entries, calibration.Targets())
    assert reading.verdict.startswith("too tight")
    assert reading.false_rate is not None and reading.false_rate.low > 0.1
    error_rate = next(s for s in reading.signals if s.name == "error_rate")
    excess = SPEC.signals[0].lower - 0.011  # type: ignore[operator]
    assert error_rate.false_alarm_excess == pytest.approx([excess] * 8)
    assert f"widening the margin by {excess:.4g}" in error_rate.advice()
    report = calibration.render(book, source="test")
    assert "### ml/p" in report
    assert "Margins: **too tight" in report
    assert "False rollbacks (rolled back, no real regression): 8 of 9" in report


def test_few_reviews_are_not_judged_and_missed_regressions_read_too_loose() -> None:
    few = journal.from_objects([decision("a", review=_review(regression="FalseAlarm"))])
    [reading] = calibration.readings(few.entries, calibration.Targets())
    assert reading.verdict == "too few reviews to judge (1 of the 5 needed)"
    missed = journal.from_objects(
        [_not_rolled_back(f"h-{i}", "Real", minutes=i, action="Hold") for i in range(6)]
    )
    [reading] = calibration.readings(missed.entries, calibration.Targets())
    assert reading.verdict.startswith("too loose")


def test_the_report_shows_expected_against_observed_with_an_interval_and_a_plot() -> None:
    book = journal.from_objects(
        [decision(f"d{i}", minutes=i, expected=0.7, observed=0.7 + 0.1 * i) for i in range(1, 5)]
    )
    report = calibration.render(book, source="test")
    assert "| ml/d1 | ml/p | 0.700 | 0.800 | +0.100 |" in report
    assert "Mean error (observed - expected) over 4 decision(s): +0.250 (95% CI" in report
    assert "Positive: decisions avoided more than they expected" in report
    assert "```text" in report and " expected" in report
    assert calibration.render(book, source="test") == report  # deterministic
    one = calibration.render(journal.Journal(book.entries[:1]), source="test")
    assert "+0.100; too few decisions for an interval or a reading of bias" in one


def test_an_empty_journal_renders() -> None:
    assert "No decisions in the journal." in calibration.render(
        journal.Journal([]), source="nothing"
    )
    assert journal.to_text(journal.Journal([])) == "no decisions found\n"


def test_journal_and_calibrate_read_an_audit_log_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.log"
    log.write_text(
        "\n".join(
            json.dumps({"event": "DecisionFinal", "namespace": "ml", "name": n, "decision": d})
            for n, d in [("a", decision("a", review=_review())), ("b", decision("b", minutes=3))]
        )
        + "\n"
    )
    assert main(["journal", "--audit-log", str(log), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["decisions"]
    assert [r["name"] for r in rows] == ["a", "b"]
    out = tmp_path / "calibration.md"
    assert main(["calibrate", "--audit-log", str(log), "--out", str(out), "--png"]) == 0
    text = out.read_text()
    assert text.startswith("# Calibration report: audit log audit.log")
    assert "![expected against observed; review rates per policy](calibration.png)" in text
    assert (tmp_path / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["calibrate", "--audit-log", str(log), "--png"]) == 2
    assert "--png: needs --out FILE" in capsys.readouterr().err
    assert main(["journal", "--audit-log", str(tmp_path / "missing.log")]) != 0
    assert main(["calibrate", "--audit-log", str(log), "--target-missed", "2"]) == 2
    assert "must be a fraction between 0 and 1" in capsys.readouterr().err


def test_review_needs_a_verdict_and_notes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["review", "d", "--notes", "x"]) == 2
    assert "--verdict" in capsys.readouterr().err
    assert main(["review", "d", "--verdict", "maybe", "--notes", "x"]) == 2
    assert main(["review", "d", "--verdict", "achieved", "--notes", "  "]) == 2
    assert "--notes: say what the review found" in capsys.readouterr().err
