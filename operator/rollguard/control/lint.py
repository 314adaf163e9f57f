"""``rollguard lint``: a RollbackPolicy file checked offline, by the operator's own checks.

Called by ``rollguard.cli`` only. A policy meets the same checks here as in the cluster: the
API models (schema), the risk tier's defaults (``tiers.resolve``, through
``rollguard.files.loading``) and the PromQL parser and batch planner (``rollguard.signals.promql.plan``), and
each problem reads as the ``Invalid`` condition or another command would say it, with its
field path from the top of the object (``spec.signals[1].query (p99): ...``). Unlike the
operator, which stops at the first refusal, lint goes on and reports every problem it finds,
and for every query the parser accepts, whether it runs Batched (one query for all
ModelDeployments) or PerDeployment, and why.

PURE apart from reading the named file: it decides and renders text, the command prints.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollguard.api.kinds import RollbackPolicy
from rollguard.api.policy import QueryMode
from rollguard.control.policy_context import query_problem
from rollguard.files.loading import (
    InputError,
    check_policy_kind,
    one_line,
    read_yaml,
    resolve_problems,
    validation_problems,
)
from rollguard.signals.promql import InvalidQuery, plan

# Human output stays readable in a 100-column terminal or CI log.
WIDTH = 100
_MAX_NAME_COLUMN = 40


@dataclass(frozen=True)
class SignalPlan:
    """How one signal's query runs; ``reason`` says why it is not batched ("" if it is)."""

    name: str
    mode: QueryMode
    reason: str


@dataclass(frozen=True)
class LintReport:
    """What lint found in one file. ``parsed`` is False when the file could not be read or
    does not hold a RollbackPolicy at all; ``problems`` then holds one line naming the file."""

    signals: tuple[SignalPlan, ...] = ()
    problems: tuple[str, ...] = ()
    parsed: bool = True

    @property
    def valid(self) -> bool:
        return not self.problems

    def wire(self) -> dict[str, Any]:
        """The ``--json`` object of one file."""
        return {
            "signals": [
                {"name": s.name, "query": s.mode, "reason": s.reason} for s in self.signals
            ],
            "problems": list(self.problems),
        }


def lint_file(*, path: Path) -> LintReport:
    """Read ``path`` (YAML or JSON, as the other commands do) and lint the policy in it."""
    try:
        doc = check_policy_kind(read_yaml(path=path), source=path.name)
    except InputError as err:
        return LintReport(problems=(one_line(str(err)),), parsed=False)
    return lint_policy(doc)


def lint_policy(doc: Mapping[str, Any]) -> LintReport:
    """Every problem of a RollbackPolicy object, in order: schema, then (once the schema
    holds) the tier defaults, then each query; and how each accepted query runs."""
    problems: list[str] = []
    try:
        policy = RollbackPolicy.model_validate(doc)
    except ValidationError as err:
        problems += validation_problems(err)
        queries = _queries_of_refused(doc, err)
    else:
        problems += resolve_problems(policy.spec)[1]
        queries = [(i, s.name, s.query) for i, s in enumerate(policy.spec.signals)]
    signals: list[SignalPlan] = []
    for index, name, query in queries:
        try:
            batch = plan(query)
        except InvalidQuery as err:
            problems.append(one_line(query_problem(index, name, err, prefix="spec")))
            continue
        signals.append(SignalPlan(name, batch.mode, batch.reason))
    return LintReport(tuple(signals), tuple(problems))


def _queries_of_refused(doc: Mapping[str, Any], err: ValidationError) -> list[tuple[int, str, str]]:
    """The queries of a policy the schema refused, checked all the same (a schema error in
    one signal should not hide a broken query in another), except those refused themselves."""
    refused = {
        loc[2]
        for loc in (e["loc"] for e in err.errors(include_url=False))
        if loc[:2] == ("spec", "signals") and loc[3:4] == ("query",)
    }
    spec = doc.get("spec")
    raw = spec.get("signals") if isinstance(spec, dict) else None
    if not isinstance(raw, list):
        return []
    queries: list[tuple[int, str, str]] = []
    for index, signal in enumerate(raw):
        if not isinstance(signal, dict) or index in refused:
            continue
        name, query = signal.get("name"), signal.get("query")
        if isinstance(query, str):
            queries.append((index, name if isinstance(name, str) else "?", query))
    return queries


def render(report: LintReport, *, source: str) -> str:
    """The human report of a parsed file: one line per signal, one per problem, a verdict;
    a line longer than ``WIDTH`` continues indented below."""
    column = min(max((len(s.name) for s in report.signals), default=0), _MAX_NAME_COLUMN) + 2
    lines: list[str] = []
    for s in report.signals:
        how = f"{s.mode}: {s.reason}" if s.reason else s.mode
        lines += _wrap(f"{s.name:<{column - 2}}  {how}", indent=column)
    for problem in report.problems:
        lines += _wrap(problem, indent=4)
    lines.append(f"{source}: {_verdict(report)}")
    return "\n".join(lines)


def _verdict(report: LintReport) -> str:
    if not report.valid:
        count = len(report.problems)
        return f"invalid: {count} problem{'' if count == 1 else 's'}"
    batched = sum(s.mode == "Batched" for s in report.signals)
    return (
        f"valid: {len(report.signals)} signals, {batched} batched, "
        f"{len(report.signals) - batched} per deployment"
    )


def _wrap(text: str, *, indent: int) -> list[str]:
    # Words are never broken: a selector or a field path stays whole even when it is long.
    return textwrap.wrap(
        text,
        width=WIDTH,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [text]


def to_json(reports: Mapping[str, LintReport]) -> str:
    """``--json``: the object of the one file linted, or an object of them by path."""
    if len(reports) == 1:
        data: dict[str, Any] = next(iter(reports.values())).wire()
    else:
        data = {path: report.wire() for path, report in reports.items()}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
