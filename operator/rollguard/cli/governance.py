"""Reports for the people who answer for the models: ``playbook``, ``inventory``, ``journal``
and ``calibrate``.

They read policies and decisions from files or the cluster (through ``rollguard.commands``, as
the caller) and render them with ``rollguard.governance``. Registered in ``rollguard.cli``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from rollguard import commands
from rollguard.cli.base import EXIT_OK, Command, cluster_from, kube_args, positive
from rollguard.files.loading import InputError, read_yaml
from rollguard.governance import calibration, inventory, journal
from rollguard.governance.playbook import playbook_of
from rollguard.governance.plot import render_calibration_png


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text}")
    return value


# --- playbook -----------------------------------------------------------------------------


def _playbook_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "policy",
        help="a RollbackPolicy YAML file, or the name of a RollbackPolicy in the cluster",
    )
    p.add_argument("-n", "--namespace", default="default", help="its namespace (cluster object)")
    p.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    kube_args(p)


def _playbook(args: argparse.Namespace) -> int:
    path = Path(args.policy)
    if path.is_file():
        doc = read_yaml(path=path)
        source = path.name
    else:
        doc = commands.get_policy(
            cluster=cluster_from(args), namespace=args.namespace, name=args.policy
        )
        source = f"RollbackPolicy {args.namespace}/{args.policy}"
    text = playbook_of(doc, source=source)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return EXIT_OK


PLAYBOOK = Command(
    "render a policy's rollback playbook as Markdown (tier defaults applied)",
    _playbook_args,
    _playbook,
)


# --- inventory ----------------------------------------------------------------------------


def _inventory_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", default=None, help="only this namespace (default: all)")
    p.add_argument(
        "--format", choices=sorted(inventory.RENDERERS), default="markdown", help="output format"
    )
    kube_args(p)


def _inventory(args: argparse.Namespace) -> int:
    mdeps, policies = commands.list_for_inventory(
        cluster=cluster_from(args), namespace=args.namespace
    )
    print(inventory.RENDERERS[args.format](inventory.inventory(mdeps, policies)), end="")
    return EXIT_OK


INVENTORY = Command(
    "list every ModelDeployment with owners, tier, figures, signals, revisions, phase",
    _inventory_args,
    _inventory,
)


# --- journal ------------------------------------------------------------------------------


def _journal_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", default=None, help="only this namespace (default: all)")
    p.add_argument(
        "--since",
        default=None,
        help="only decisions since: a span (30m, 12h, 7d) or an RFC 3339 time",
    )
    p.add_argument(
        "--audit-log",
        type=Path,
        default=None,
        help="read the operator's exported audit log (JSON lines) instead of the cluster; it "
        "keeps decisions that were garbage-collected",
    )
    kube_args(p)


def _read_journal(args: argparse.Namespace) -> tuple[journal.Journal, str]:
    """The decisions ``_journal_source_args`` selected, and a phrase naming where they came
    from."""
    if args.audit_log is not None:
        with args.audit_log.open(encoding="utf-8", errors="replace") as lines:
            book = journal.from_audit_log(lines, source=args.audit_log.name)
        if args.namespace:
            book = journal.Journal(
                [e for e in book.entries if e.namespace == args.namespace], book.skipped
            )
        source = f"audit log {args.audit_log.name}"
    else:
        book = journal.from_objects(
            commands.list_decisions(cluster=cluster_from(args), namespace=args.namespace)
        )
        source = f"namespace {args.namespace}" if args.namespace else "all namespaces"
    if args.since:
        start = journal.parse_since(args.since, now=datetime.now(tz=UTC).timestamp())
        book = journal.since(book, start)
        source += f", since {args.since}"
    return book, source


def _journal_args(p: argparse.ArgumentParser) -> None:
    _journal_source_args(p)
    p.add_argument(
        "--format", choices=sorted(journal.RENDERERS), default="text", help="output format"
    )


def _journal(args: argparse.Namespace) -> int:
    book, _ = _read_journal(args)
    print(journal.RENDERERS[args.format](book), end="")
    return EXIT_OK


JOURNAL = Command(
    "decisions with expected vs observed impact, validation and review",
    _journal_args,
    _journal,
)


# --- calibrate ----------------------------------------------------------------------------


def _calibrate_args(p: argparse.ArgumentParser) -> None:
    _journal_source_args(p)
    p.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    p.add_argument(
        "--png", action="store_true", help="also plot the report, next to --out (needs matplotlib)"
    )
    p.add_argument(
        "--target-false-rollbacks",
        type=_rate,
        default=0.1,
        help="tolerated false-rollback rate (0.1)",
    )
    p.add_argument(
        "--target-missed", type=_rate, default=0.1, help="tolerated missed-regression rate (0.1)"
    )
    p.add_argument(
        "--min-reviews",
        type=positive,
        default=5,
        help="reviews a policy needs before its margins are judged (5)",
    )


def _calibrate(args: argparse.Namespace) -> int:
    if args.png and args.out is None:
        raise InputError("--png: needs --out FILE; the image is written next to it")
    book, source = _read_journal(args)
    targets = calibration.Targets(
        false_rollback_rate=args.target_false_rollbacks,
        missed_regression_rate=args.target_missed,
        min_reviews=args.min_reviews,
    )
    image = None
    if args.png:
        png = render_calibration_png(
            calibration.impact_points(book.entries),
            calibration.readings(book.entries, targets),
        )
        image = args.out.with_suffix(".png")
        image.write_bytes(png)
    text = calibration.render(
        book, source=source, targets=targets, image=image.name if image else None
    )
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}" + (f" and {image}" if image else ""))
    else:
        print(text, end="")
    return EXIT_OK


CALIBRATE = Command(
    "how well expectations matched outcomes; margins too tight or too loose (Markdown)",
    _calibrate_args,
    _calibrate,
)
