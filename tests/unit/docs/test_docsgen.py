"""The reference pages are generated from the code: the committed ones match it, a stale or
missing one is named by ``--check``, regenerating keeps the prose around a generated part, and
each page covers everything its source holds."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv import docsgen
from rollguard.api.crd import crd_for
from rollguard.api.kinds import KINDS
from rollguard.control import reasons
from rollguard.control.telemetry import REGISTRY
from rollguard.core.tiers import tier_table_markdown

DOCS = Path(__file__).resolve().parents[3] / "docs"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A copy of docs/ to spoil."""
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy)
    return copy


def check(docs: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = docsgen.main(["--check", "--docs", str(docs)])
    return code, capsys.readouterr().err


def test_committed_reference_pages_match_the_code() -> None:
    stale = [p.relative_to(DOCS).as_posix() for p in docsgen.stale(DOCS)]
    assert not stale, f"out of date: {stale}: run `make docs`"


def test_check_names_a_corrupted_page_in_one_line_and_fails(
    docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = docs / "reference" / "cli.md"
    page.write_text(page.read_text().replace("## simulate", "## simulate-old"))
    code, err = check(docs, capsys)
    assert code == 1
    assert err == "docs/reference/cli.md is out of date with the code: run `make docs`\n"


def test_check_names_every_stale_page_and_a_missing_one(
    docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (docs / "reference" / "crds.md").unlink()
    settings = docs / "reference" / "settings.md"
    settings.write_text(settings.read_text() + "\nedited by hand\n")
    code, err = check(docs, capsys)
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("docs/reference/crds.md, docs/reference/settings.md are out of date")


def test_regenerating_restores_the_pages_and_the_check_then_passes(
    docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (docs / "reference" / "crds.md").unlink()
    page = docs / "reference" / "events-and-metrics.md"
    page.write_text("# Events and metrics\n")
    assert docsgen.main(["--docs", str(docs)]) == 0
    written = capsys.readouterr().out.splitlines()
    assert sorted(written) == [
        "wrote docs/reference/crds.md",
        "wrote docs/reference/events-and-metrics.md",
    ]
    assert check(docs, capsys) == (0, "")
    assert page.read_text() == (DOCS / "reference" / "events-and-metrics.md").read_text()


def test_a_generated_part_is_replaced_and_the_prose_around_it_kept(
    docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = docs / "reference" / "risk-tiers.md"
    start, end = docsgen.markers("risk-tiers")
    head, rest = page.read_text().split(start)
    tail = rest.split(end)[1]
    page.write_text(f"{head}Prose written by hand.\n{start}\n| stale |\n{end}{tail}More prose.\n")
    assert check(docs, capsys)[0] == 1
    assert docsgen.main(["--docs", str(docs)]) == 0
    content = page.read_text()
    assert content.startswith(f"{head}Prose written by hand.\n{start}\n")
    assert content.endswith(f"{end}{tail}More prose.\n")
    assert tier_table_markdown().strip() in content and "| stale |" not in content


def test_a_page_that_lost_its_markers_is_named(
    docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = docs / "reference" / "risk-tiers.md"
    page.write_text(page.read_text().replace(docsgen.markers("risk-tiers")[1], ""))
    code, err = check(docs, capsys)
    assert code == 1
    assert err.startswith("docs: docs/reference/risk-tiers.md: needs one <!-- generated:risk-tiers")


def test_the_risk_tier_table_is_the_resolvers() -> None:
    assert tier_table_markdown().strip() in (DOCS / "reference" / "risk-tiers.md").read_text()


def test_the_cli_page_documents_every_subcommand_and_argument() -> None:
    page = docsgen.cli_page()
    for name, sub in docsgen.subcommands(docsgen._parser()).items():
        section = page.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            if action.help and action.option_strings and "-h" not in action.option_strings:
                assert f"`{action.option_strings[-1]}" in section or (
                    f", {action.option_strings[-1]}" in section
                ), f"{name}: {action.option_strings}"
            elif action.help and not action.option_strings:
                shown = action.metavar or action.dest
                if action.choices:
                    shown = "{" + ",".join(map(str, action.choices)) + "}"
                assert f"- `{shown}`: " in section, f"{name}: {action.dest}"


def test_pages_do_not_depend_on_the_environment_that_generates_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = (docsgen.cli_page(), docsgen.settings_page())
    monkeypatch.setenv("ROLLGUARD_METRICS_PORT", "9999")
    monkeypatch.setenv("ROLLGUARD_PRIORITY", "7")
    monkeypatch.setenv("COLUMNS", "40")
    assert (docsgen.cli_page(), docsgen.settings_page()) == before
    assert "| `--metrics-port` | `ROLLGUARD_METRICS_PORT` | `8080` |" in before[1]


def test_the_settings_page_names_every_option_of_run_with_its_variable() -> None:
    page = docsgen.settings_page()
    run = docsgen.subcommands(docsgen._parser())["run"]
    for action in run._actions:
        if action.option_strings and "-h" not in action.option_strings:
            assert f"| `{action.option_strings[-1]}` | `ROLLGUARD_" in page, action.option_strings


def test_the_events_page_lists_every_reason_under_its_kind() -> None:
    page = docsgen.events_and_metrics_page()
    constants = {k: v for k, v in vars(reasons).items() if k.isupper() and isinstance(v, str)}
    assert constants
    for constant, reason in constants.items():
        assert f"| `{reason}` | `{constant}` |" in page
    decisions = page.split("### Decisions\n", 1)[1].split("\n## ", 1)[0]
    assert f"| `{reasons.ROLLBACK_EXECUTED}` |" in decisions


def test_the_metrics_table_lists_every_metric_the_operator_exports() -> None:
    page = docsgen.events_and_metrics_page().split("## Metrics", 1)[1]
    for metric in REGISTRY.collect():
        name = f"{metric.name}_total" if metric.type == "counter" else metric.name
        assert f"| `{name}` | {metric.type} |" in page


def test_the_crds_page_has_every_field_of_every_kind() -> None:
    page = docsgen.crds_page()

    def paths(node: dict[str, Any], prefix: str) -> list[str]:
        found = []
        for name, sub in (node.get("properties") or {}).items():
            here = f"{prefix}.{name}" if prefix else name
            found += [here, *paths(sub, here)]
        if isinstance(node.get("items"), dict):
            found += paths(node["items"], f"{prefix}[]")
        if isinstance(node.get("additionalProperties"), dict):
            found += paths(node["additionalProperties"], prefix + "{key}")
        return found

    for info in KINDS:
        section = page.split(f"\n## {info.kind}\n", 1)[1].split("\n## ", 1)[0]
        schema = crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        for part in ("spec", "status"):
            table = section.split(f"### {part}\n", 1)[1].split("\n### ", 1)[0]
            for path in paths(schema[part], ""):
                assert f"| `{path}` |" in table, f"{info.kind}.{part}.{path}"


def test_the_mkdocs_nav_lists_every_page_and_only_pages_that_exist() -> None:
    config = yaml.safe_load((DOCS.parent / "mkdocs.yml").read_text())

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        items = nav.values() if isinstance(nav, dict) else nav if isinstance(nav, list) else []
        return [p for item in items for p in pages(item)]

    listed = pages(config["nav"])
    assert sorted(listed) == sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert set(docsgen.PAGES) | set(docsgen.PARTS) <= set(listed)


@pytest.mark.parametrize(
    ("raw", "markdown"),
    [
        ("a_b and _c_", r"a_b and \_c\_"),
        (
            "*not emphasis* [not a link](x) <not a tag>",
            r"\*not emphasis\* \[not a link\](x) &lt;not a tag&gt;",
        ),
        ("kept: `a_b *c* |`", "kept: `a_b *c* |`"),
        ("two\n   lines", "two lines"),
    ],
)
def test_text_from_the_code_is_escaped_outside_code_spans(raw: str, markdown: str) -> None:
    assert docsgen.text(raw) == markdown


def test_a_pipe_is_escaped_in_a_table_cell_except_inside_code() -> None:
    assert docsgen.cell("a | b `c|d`") == r"a \| b `c|d`"
