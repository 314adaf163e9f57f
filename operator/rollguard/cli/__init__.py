"""The ``rollguard`` command line (also installed as the kubectl plugin ``kubectl-rollguard``).

Thin by design: parse arguments, call the packages below (core, simulation, governance, kube,
through ``rollguard.commands`` for the cluster), print, return an exit code. The commands live
in modules by room: ``simulate`` (simulate, backtest), ``offline`` (lint, replay, crds),
``cluster`` (approve, reject, review, explain, clear, audit), ``dashboard``, ``governance``
(playbook, inventory, journal, calibrate) and ``run``. Each defines a ``Command`` (help, a function that
adds its arguments, a function that runs it); add one there and list it in ``COMMANDS`` below,
in the order ``--help`` shows.

Exit codes: 0 success; 1 the command ran and found a problem (``simulate --check``: the
policy got worse); 2 bad input or usage. Bad input gets a message on stderr naming the file,
the field and the problem (a file with several problems: one indented line for each), never a
traceback.
"""

from __future__ import annotations

import argparse
import sys

from rollguard import __version__
from rollguard.cli import cluster, dashboard, governance, offline, run, simulate
from rollguard.cli.base import EXIT_FOUND, EXIT_OK, EXIT_USAGE, Command, Parser, UsageError
from rollguard.commands import CommandError
from rollguard.files.loading import InputError, one_line
from rollguard.files.png import PlotUnavailableError

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

COMMANDS: dict[str, Command] = {
    "simulate": simulate.SIMULATE,
    "backtest": simulate.BACKTEST,
    "replay": offline.REPLAY,
    "lint": offline.LINT,
    "crds": offline.CRDS,
    "run": run.RUN,
    "approve": cluster.APPROVE,
    "reject": cluster.REJECT,
    "review": cluster.REVIEW,
    "explain": cluster.EXPLAIN,
    "journal": governance.JOURNAL,
    "calibrate": governance.CALIBRATE,
    "audit": cluster.AUDIT,
    "inventory": governance.INVENTORY,
    "playbook": governance.PLAYBOOK,
    "clear": cluster.CLEAR,
    "dashboard": dashboard.DASHBOARD,
}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one subparser per entry of ``COMMANDS``."""
    parser = Parser(
        prog="rollguard",
        description="Decides when a model deployment must be rolled back, and does it.",
    )
    parser.add_argument("--version", action="version", version=f"rollguard {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for name, command in COMMANDS.items():
        command.configure(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def _problem_lines(message: str) -> str:
    """An input error as printed: each line's whitespace tidied, the lines after the first (the
    problems listed under a file's name) indented under it."""
    lines = [one_line(line) for line in message.splitlines()]
    return "\n  ".join(line for line in lines if line)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command].run(args)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    except InputError as err:
        print(f"error: {_problem_lines(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, PlotUnavailableError, CommandError) as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {one_line(where + str(err.strerror or err))}", file=sys.stderr)
        return EXIT_FOUND
    except KeyboardInterrupt:
        return 130
