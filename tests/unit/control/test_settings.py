"""`rollguard run` settings: every one documented, a wrong one refused at once by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollguard.cli import build_parser, main
from rollguard.cli.run import settings_from
from rollguard.control.settings import Settings, SettingsError


def test_run_help_documents_every_setting_with_its_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, env in [
        ("--prometheus-url", "ROLLGUARD_PROMETHEUS_URL"),
        ("--namespace", "ROLLGUARD_NAMESPACES"),
        ("--metrics-port", "ROLLGUARD_METRICS_PORT"),
        ("--audit-log", "ROLLGUARD_AUDIT_LOG"),
        ("--keep-decisions", "ROLLGUARD_KEEP_DECISIONS"),
        ("--query-offset", "ROLLGUARD_QUERY_OFFSET"),
    ]:
        assert flag in text and env in text


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ([], "--prometheus-url"),
        (["--prometheus-url", "prometheus:9090"], "--prometheus-url"),
        (["--prometheus-url", "http://p:9090", "--keep-decisions", "0"], "--keep-decisions"),
        (["--prometheus-url", "http://p:9090", "--metrics-port", "70000"], "--metrics-port"),
        (["--prometheus-url", "http://p:9090", "--metrics-port", "eighty"], "--metrics-port"),
        (["--prometheus-url", "http://p:9090", "--query-timeout", "inf"], "--query-timeout"),
        (["--prometheus-url", "http://p:9090", "--decision-poll", "nan"], "--decision-poll"),
        (["--prometheus-url", "http://p:9090", "--query-offset", "-1"], "--query-offset"),
        (["--prometheus-url", "http://p:9090", "--query-offset", "nan"], "--query-offset"),
        (["--prometheus-url", "http://p:9090", "--priority", "high"], "--priority"),
        (
            ["--prometheus-url", "http://p:9090", "--audit-log", "/no/such/dir/audit.jsonl"],
            "--audit-log",
        ),
    ],
)
def test_a_wrong_setting_fails_fast_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLGUARD_PROMETHEUS_URL", raising=False)
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROLLGUARD_PROMETHEUS_URL", "http://prometheus.monitoring:9090")
    monkeypatch.setenv("ROLLGUARD_NAMESPACES", "ml,payments")
    monkeypatch.setenv("ROLLGUARD_KEEP_DECISIONS", "7")
    monkeypatch.setenv("ROLLGUARD_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("ROLLGUARD_PRIORITY", "42")
    settings = settings_from(build_parser().parse_args(["run"]))
    assert settings == Settings(
        prometheus_url="http://prometheus.monitoring:9090",
        namespaces=("ml", "payments"),
        keep_decisions=7,
        audit_log=str(tmp_path / "audit.jsonl"),
        priority=42,
    )


def test_a_malformed_environment_variable_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROLLGUARD_KEEP_DECISIONS", "lots")
    assert main(["run", "--prometheus-url", "http://p:9090"]) == 2
    assert "--keep-decisions" in capsys.readouterr().err


def test_auto_priority_draws_distinct_priorities_so_replicas_never_tie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ROLLGUARD_PRIORITY", raising=False)
    drawn = {build_parser().parse_args(["run"]).priority for _ in range(20)}
    assert len(drawn) == 20 and all(1 <= p < 2**31 for p in drawn)


def test_settings_validate_rejects_a_negative_scrape_interval() -> None:
    with pytest.raises(SettingsError, match="--scrape-interval"):
        Settings(prometheus_url="http://p:9090", scrape_interval=0).validate()
