"""Commands on files, without a cluster or Prometheus: ``lint`` (policy files), ``replay`` (a
recorded decision, from its own evidence) and ``crds`` (write the CustomResourceDefinitions).

Registered in ``rollguard.cli``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollguard.api.crd import write_crds
from rollguard.cli.base import EXIT_FOUND, EXIT_OK, EXIT_USAGE, Command
from rollguard.control import lint
from rollguard.core.replay import replay
from rollguard.files.loading import InputError, load_decision_spec, read_text

# --- lint ---------------------------------------------------------------------------------


def _lint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "policies", type=Path, nargs="+", metavar="POLICY", help="RollbackPolicy file, YAML or JSON"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _lint(args: argparse.Namespace) -> int:
    reports = {str(path): lint.lint_file(path=path) for path in dict.fromkeys(args.policies)}
    if args.json:
        print(lint.to_json(reports), end="")
    else:
        for i, (source, found) in enumerate(reports.items()):
            if found.parsed:
                print(("\n" if i else "") + lint.render(found, source=source))
            else:
                print(f"error: {found.problems[0]}", file=sys.stderr)
    return EXIT_OK if all(found.valid for found in reports.values()) else EXIT_USAGE


LINT = Command(
    "check policy files offline: schema, tier defaults, queries and how they run",
    _lint_args,
    _lint,
)


# --- replay -------------------------------------------------------------------------------


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "decision",
        help="a RollbackDecision as YAML or JSON (for example `kubectl get rbd NAME -o yaml`), "
        "or - for standard input",
    )


def _replay(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.decision == "-" else args.decision
    if args.decision == "-":
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as err:
            raise InputError("<stdin>: not UTF-8 text") from err
    else:
        text = read_text(Path(args.decision))
    spec = load_decision_spec(text, source=source)
    result = replay(spec)
    rec = spec.recommended
    target = f" to revision {rec.to_revision}" if rec.to_revision is not None else ""
    if result.same:
        print(
            f"Replayed {source}: same recommendation, bit for bit ({rec.action}{target}, "
            f"score {spec.impact.score:.4f})"
        )
        return EXIT_OK
    print(f"Replayed {source}: the recorded decision is NOT reproduced")
    for difference in result.differences:
        print(f"  - {difference}")
    return EXIT_FOUND


REPLAY = Command("re-evaluate a recorded decision from its own evidence", _replay_args, _replay)


# --- crds ---------------------------------------------------------------------------------


def _crds_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("crds"), help="directory (crds/)")


def _crds(args: argparse.Namespace) -> int:
    for path in write_crds(args.out):
        print(f"Wrote {path}")
    return EXIT_OK


CRDS = Command("write the CustomResourceDefinitions", _crds_args, _crds)
