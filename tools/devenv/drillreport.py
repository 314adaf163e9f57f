"""The drill report: each drill of the test suite records what it injected and what came of
it, counted from what it observed; this renders the figures as the Markdown table
docs/reliability.md carries, and fails when a drill is missing or did not hold.

A drill runs inside ``with drill(ID, label) as figures:`` (a no-op unless
``ROLLGUARD_DRILL_REPORT_DIR`` is set; ``make test`` sets it), sets the figures as it observes
them, and the figures are written when the block ends, whether it passed or raised: a drill
that raised is recorded as not completed. ``python -m devenv.drillreport DIR [--page
docs/reliability.md]`` prints the table, with ``--page`` replaces the page's table between its
markers (never after a failed run), and exits 1 when a drill of ``EXPECTED`` has no figures,
did not complete, or shows a failure (fewer survived than injected, a duplicate action, a lost
decision, a bad input not handled)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

START, END = "<!-- drill-report:start -->", "<!-- drill-report:end -->"
FIELDS = ("faults", "survived", "duplicate_actions", "lost_decisions", "bad_inputs", "handled")

# Every drill of the suite, by id: one missing from a run is a failed row.
EXPECTED = (
    "prometheus-faults",
    "crash-every-step",
    "crash-every-step-rollout",
    "two-replicas",
    "two-replicas-rollout",
    "api-server-restart",
    "api-throttling",
    "audit-tamper",
    "bad-input",
    "forged-reviews",
    "operator-rights",
    "viewer-patch",
)


@dataclass
class Figures:
    """One drill's figures, set by the drill as it observes them."""

    drill: str
    label: str
    note: str = ""
    faults: int = 0
    survived: int = 0
    duplicate_actions: int = 0
    lost_decisions: int = 0
    bad_inputs: int = 0
    handled: int = 0
    completed: bool = False
    extra: dict[str, object] = field(default_factory=dict)


@contextmanager
def drill(drill_id: str, label: str) -> Iterator[Figures]:
    """The figures of drill ``drill_id``, written when the block ends, passed or not."""
    if drill_id not in EXPECTED:
        raise ValueError(f"unknown drill {drill_id!r}: add it to devenv.drillreport.EXPECTED")
    figures = Figures(drill=drill_id, label=label)
    try:
        yield figures
        figures.completed = True
    finally:
        write(figures)


def write(figures: Figures) -> None:
    """``<drill>.json`` in the report directory, if there is one."""
    folder = os.environ.get("ROLLGUARD_DRILL_REPORT_DIR")
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{figures.drill}.json").write_text(json.dumps(asdict(figures), indent=2) + "\n")


def problems(row: dict[str, object]) -> list[str]:
    """Why a drill's row is a failure; empty when it held."""
    n = {f: int(str(row.get(f, 0))) for f in FIELDS}
    found = []
    if not row.get("completed"):
        found.append("did not complete")
    if n["survived"] < n["faults"]:
        found.append(f"survived {n['survived']} of {n['faults']} faults")
    if n["duplicate_actions"]:
        found.append(f"{n['duplicate_actions']} duplicate action(s)")
    if n["lost_decisions"]:
        found.append(f"{n['lost_decisions']} lost decision(s)")
    if n["handled"] < n["bad_inputs"]:
        found.append(f"handled {n['handled']} of {n['bad_inputs']} bad inputs")
    if not n["faults"] and not n["bad_inputs"]:
        found.append("injected nothing")
    return found


def rows(folder: Path) -> list[dict[str, object]]:
    """Every expected drill's row (a missing one as a failure), then any unexpected ones."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    out = [found.pop(d, {"drill": d, "label": d, "missing": True}) for d in EXPECTED]
    return out + list(found.values())


def table(folder: Path) -> tuple[str, bool]:
    """The Markdown table, and whether every drill held."""
    lines = [
        "| drill | faults injected | survived | duplicate actions | lost decisions "
        "| bad inputs | handled | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    totals = dict.fromkeys(FIELDS, 0)
    held = True
    for r in rows(folder):
        label = str(r.get("label") or r["drill"])
        name = f"{label} ({r['note']})" if r.get("note") else label
        if r.get("missing"):
            held = False
            cells = " | ".join("-" for _ in FIELDS)
            lines.append(f"| {name} | {cells} | **FAILED: no figures (failed or not run)** |")
            continue
        for f in FIELDS:
            totals[f] += int(str(r.get(f, 0)))
        wrong = problems(r)
        held = held and not wrong
        verdict = f"**FAILED: {'; '.join(wrong)}**" if wrong else "held"
        cells = " | ".join(str(r.get(f, 0)) for f in FIELDS)
        lines.append(f"| {name} | {cells} | {verdict} |")
    lines.append("| **total** | " + " | ".join(f"**{totals[f]}**" for f in FIELDS) + " | |")
    return "\n".join(lines) + "\n", held


def update_page(page: Path, text: str) -> None:
    """Replace the table between the page's markers."""
    content = page.read_text()
    if (
        content.count(START) != 1
        or content.count(END) != 1
        or content.index(START) > content.index(END)
    ):
        raise ValueError(f"{page}: needs one {START} line and, after it, one {END} line")
    start, end = content.index(START) + len(START), content.index(END)
    page.write_text(content[:start] + "\n" + text + content[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv.drillreport")
    parser.add_argument("folder", type=Path, help="the drills' report directory")
    parser.add_argument(
        "--page", type=Path, help="replace the table in this page (docs/reliability.md)"
    )
    args = parser.parse_args(argv)
    text, held = table(args.folder)
    print(text, end="")
    if not held:
        print("drill report: a drill failed or is missing (see the result column)", file=sys.stderr)
        return 1
    if args.page:
        try:
            update_page(args.page, text)
        except ValueError as err:
            print(f"drill report: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
