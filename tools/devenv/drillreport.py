"""The drill report: each drill of the test suite records what it injected and what came of
it; this renders the figures as the Markdown table the README carries.

Drills call ``record`` (a no-op unless ``ROLLGUARD_DRILL_REPORT_DIR`` is set; ``make test``
sets it). ``python -m devenv.drillreport DIR [--readme README.md]`` prints the table and, with
``--readme``, replaces the README's table between its markers."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

START, END = "<!-- drill-report:start -->", "<!-- drill-report:end -->"
FIELDS = ("faults", "survived", "duplicate_actions", "lost_decisions", "bad_inputs", "handled")


def record(
    drill: str,
    *,
    faults: int = 0,
    survived: int = 0,
    duplicate_actions: int = 0,
    lost_decisions: int = 0,
    bad_inputs: int = 0,
    handled: int = 0,
    note: str = "",
) -> None:
    """Write one drill's figures to the report directory, if there is one."""
    folder = os.environ.get("ROLLGUARD_DRILL_REPORT_DIR")
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", drill.lower()).strip("-")
    figures = dict(
        zip(
            FIELDS,
            (faults, survived, duplicate_actions, lost_decisions, bad_inputs, handled),
            strict=True,
        )
    )
    (path / f"{slug}.json").write_text(json.dumps({"drill": drill, "note": note, **figures}))


def table(folder: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    lines = [
        "| drill | faults injected | survived | duplicate actions | lost decisions "
        "| bad inputs | handled |",
        "|---|---|---|---|---|---|---|",
    ]
    totals = dict.fromkeys(FIELDS, 0)
    for r in rows:
        for f in FIELDS:
            totals[f] += int(r.get(f, 0))
        cells = [str(r.get(f, 0)) for f in FIELDS]
        name = f"{r['drill']} ({r['note']})" if r.get("note") else r["drill"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{totals[f]}**" for f in FIELDS) + " |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, text: str) -> None:
    content = readme.read_text()
    start, end = content.index(START) + len(START), content.index(END)
    readme.write_text(content[:start] + "\n" + text + content[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv.drillreport")
    parser.add_argument("folder", type=Path, help="the drills' report directory")
    parser.add_argument("--readme", type=Path, help="replace the table in this README")
    args = parser.parse_args(argv)
    if not any(args.folder.glob("*.json")):
        print(f"no drill figures in {args.folder}", file=sys.stderr)
        return 1
    text = table(args.folder)
    print(text, end="")
    if args.readme:
        update_readme(args.readme, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
