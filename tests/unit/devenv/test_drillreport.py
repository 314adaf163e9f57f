"""The drill report fails when a drill is missing, raised, or shows a failure in its own
figures, so a broken drill cannot leave a clean table behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv import drillreport
from devenv.drillreport import EXPECTED, drill

RELIABILITY = Path(__file__).resolve().parents[3] / "docs" / "reliability.md"


def _all_held(folder: Path, monkeypatch: pytest.MonkeyPatch, skip: str = "") -> None:
    monkeypatch.setenv("ROLLGUARD_DRILL_REPORT_DIR", str(folder))
    for drill_id in EXPECTED:
        if drill_id == skip:
            continue
        with drill(drill_id, drill_id) as figures:
            figures.faults = figures.survived = 2


def test_every_drill_held_gives_a_clean_table_and_exit_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _all_held(tmp_path, monkeypatch)
    assert drillreport.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("| held |") == len(EXPECTED) and "FAILED" not in out


def test_a_missing_drill_is_a_failed_row_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _all_held(tmp_path, monkeypatch, skip="crash-every-step")
    assert drillreport.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "| crash-every-step | - |" in out and "no figures (failed or not run)" in out


def test_a_drill_that_raised_is_recorded_and_fails_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _all_held(tmp_path, monkeypatch)
    with pytest.raises(AssertionError), drill("two-replicas", "two replicas") as figures:
        figures.faults = 1
        raise AssertionError("the second decision never came")
    page = tmp_path / "reliability.md"
    page.write_text(f"{drillreport.START}\nold\n{drillreport.END}\n")
    assert drillreport.main([str(tmp_path), "--page", str(page)]) == 1
    out = capsys.readouterr().out
    assert "FAILED: did not complete; survived 0 of 1 faults" in out
    assert "old" in page.read_text()  # a failed run never rewrites the page's table


def test_a_clean_run_replaces_only_the_table_of_the_reliability_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = tmp_path / "drills"
    _all_held(figures, monkeypatch)
    page = tmp_path / "reliability.md"
    page.write_text(RELIABILITY.read_text())
    assert drillreport.main([str(figures), "--page", str(page)]) == 0
    table = capsys.readouterr().out
    before, after = RELIABILITY.read_text(), page.read_text()
    assert f"{drillreport.START}\n{table}{drillreport.END}" in after
    assert after.split(drillreport.START)[0] == before.split(drillreport.START)[0]
    assert after.split(drillreport.END)[1] == before.split(drillreport.END)[1]


def test_a_page_without_the_markers_is_refused_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = tmp_path / "drills"
    _all_held(figures, monkeypatch)
    page = tmp_path / "reliability.md"
    page.write_text(f"# Reliability\n{drillreport.END}\n{drillreport.START}\n")
    assert drillreport.main([str(figures), "--page", str(page)]) == 1
    assert "needs one <!-- drill-report:start --> line" in capsys.readouterr().err
    assert page.read_text() == f"# Reliability\n{drillreport.END}\n{drillreport.START}\n"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("duplicate_actions", 1, "1 duplicate action(s)"),
        ("lost_decisions", 1, "1 lost decision(s)"),
        ("survived", 1, "survived 1 of 2 faults"),
    ],
)
def test_figures_that_show_a_failure_fail_the_report(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: int,
    problem: str,
) -> None:
    _all_held(tmp_path, monkeypatch)
    with drill("audit-tamper", "audit tamper") as figures:
        figures.faults = figures.survived = 2
        setattr(figures, field, value)
    assert drillreport.main([str(tmp_path)]) == 1
    assert problem in capsys.readouterr().out


def test_an_unknown_drill_is_refused() -> None:
    with pytest.raises(ValueError, match="EXPECTED"), drill("made-up", "x"):
        pass
