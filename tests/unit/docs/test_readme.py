"""The README states what the code does: its tables are checked against the code."""

from __future__ import annotations

from pathlib import Path

from rollguard.core.tiers import tier_table_markdown

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_risk_tier_table_matches_the_resolver() -> None:
    assert tier_table_markdown().strip() in README.read_text()


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.read_text().split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands[-1] == "make test"
