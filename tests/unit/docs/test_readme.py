"""The README is the short way in: the two commands first, a line for every package, and links
that lead to every page of the docs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
README = REPO / "README.md"
PACKAGE = REPO / "operator" / "rollguard"


def _links() -> list[str]:
    return re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    if isinstance(nav, list):
        return [p for value in nav for p in _nav_pages(value)]
    return []


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.read_text().split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) <= 150


def test_the_package_map_has_a_line_for_every_package_and_top_level_module() -> None:
    shown = set(re.findall(r"^\| `([a-z_]+/|[a-z_]+\.py)` \|", README.read_text(), re.MULTILINE))
    present = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    present |= {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert shown == present


def test_every_link_of_the_readme_leads_to_a_file() -> None:
    links = [link for link in _links() if "://" not in link]
    assert links
    missing = [link for link in links if not (REPO / link).is_file()]
    assert not missing, f"the README links to files that do not exist: {missing}"


def test_the_readme_links_to_every_page_of_the_docs() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    pages = {f"docs/{page}" for page in _nav_pages(config["nav"])} - {"docs/index.md"}
    unlinked = sorted(pages - set(_links()))
    assert not unlinked, f"pages the README does not link to: {unlinked}"
