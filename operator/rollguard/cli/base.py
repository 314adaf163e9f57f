"""What the command modules share: exit codes, the usage error, the registry's record of a
command, argument types, and the options of every command that reads the cluster.

Imported by the modules of ``rollguard.cli`` only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from rollguard import commands
from rollguard.kube.client import Cluster

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """argparse refused the command line, or a command refused a value argparse let through."""


class Parser(argparse.ArgumentParser):
    """Raises ``UsageError`` instead of exiting, so that ``main`` reports it as one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, what adds its arguments, and what runs it (returning
    the exit code)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def kube_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: KUBECONFIG)")
    p.add_argument("--context", default=None, help="kubeconfig context")


def cluster_from(args: argparse.Namespace) -> Cluster:
    """The cluster ``kube_args`` named, spoken to as the caller."""
    return commands.cluster_for(kubeconfig=args.kubeconfig, context=args.context)
