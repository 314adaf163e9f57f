"""Write deploy/requirements.txt: rollguard's runtime dependencies, every one pinned.

The closure is read from the installed distribution metadata (the venv the tests ran in), so
the image is built from exactly what was tested; tools/install-deps.sh installs the venv with
this file as constraints, which keeps the two equal. Run after changing a dependency:

    .venv/bin/python -m lockdeps            # rewrite deploy/requirements.txt
    .venv/bin/python -m lockdeps --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lockdeps.closure import render, runtime_closure

TARGET = Path(__file__).resolve().parents[2] / "deploy" / "requirements.txt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lockdeps", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    args = parser.parse_args(argv)
    text = render(runtime_closure("rollguard"))
    if args.check:
        if TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run python -m lockdeps", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
