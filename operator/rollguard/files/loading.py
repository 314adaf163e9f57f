"""Reading user-written input files (policies, scenarios) into validated models.

Called by the CLI and by the simulator's loaders. Every problem becomes an ``InputError``
whose message names the file, the field and what is wrong, one line per problem, so a command
can print it as it is and exit, never with a traceback. The operator's status writers use
``validation_summary`` for the same problems in one bounded line. The only I/O is reading the
named file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rollguard.api import API_VERSION
from rollguard.api.decision import RollbackDecisionSpec
from rollguard.api.kinds import RollbackPolicy
from rollguard.api.policy import EffectivePolicy, Notify, RollbackPolicySpec
from rollguard.core import tiers

# A resolver message that starts with a field path ("signals[p99-latency].critical: ...").
_FIELD_FIRST = re.compile(r"^[a-zA-Z][\w\[\].-]*: ")
# Status messages stay well under the API's limits and readable in `kubectl describe`.
STATUS_MESSAGE_LIMIT = 1024


class InputError(ValueError):
    """A user-supplied file is unreadable or invalid; the message is ready to print: one line,
    or a head line and one indented line per problem."""


def field_path(loc: tuple[int | str, ...], *, prefix: str = "") -> str:
    """``('spec', 'signals', 0, 'critical')`` as ``spec.signals[0].critical``.

    A refused mapping key (pydantic's ``(..., 'signals', 'bad-', '[key]')``) names the mapping
    it is a key of; the message quotes the key.
    """
    if len(loc) >= 2 and loc[-1] == "[key]":
        loc = loc[:-2]
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def one_line(text: str) -> str:
    """Collapse whitespace so a message always fits on one line."""
    return " ".join(text.split())


def validation_problems(
    err: ValidationError, *, prefix: str = "", skip: frozenset[str] = frozenset()
) -> list[str]:
    """Every pydantic error, in pydantic's order, as one line ``field.path: message`` (only
    the message when the problem is the whole object's).

    ``skip`` drops location parts pydantic inserts that are not fields (the tag of a
    discriminated union, for instance).
    """
    problems: list[str] = []
    for error in err.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p in skip))
        msg = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if error["type"] == "extra_forbidden":
            msg = "unknown field"
        where = field_path(loc, prefix=prefix)
        problem = one_line(f"{where}: {msg}" if where else msg)
        if problem not in problems:
            problems.append(problem)
    return problems


def format_validation_error(
    source: str, err: ValidationError, *, prefix: str = "", skip: frozenset[str] = frozenset()
) -> str:
    """Every pydantic error of a file, for a person to read: one problem as
    ``source: field.path: message``; several as ``source: N problems:`` followed by one
    indented ``field.path: message`` line each."""
    return format_problems(source, validation_problems(err, prefix=prefix, skip=skip))


def format_problems(source: str, problems: list[str]) -> str:
    """``problems`` of a file as ``format_validation_error`` prints them."""
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return "\n  ".join([f"{source}: {len(problems)} problems:", *problems])


def flatten_problems(message: str) -> str:
    """A message of ``format_validation_error`` (or any ``InputError``) in one line, for a
    table cell: the listed problems joined by ``; `` after the head line."""
    head, *problems = [one_line(line) for line in message.splitlines() if line.strip()] or [""]
    return f"{head} {'; '.join(problems)}" if problems else head


def validation_summary(
    err: ValidationError, *, prefix: str = "", limit: int = STATUS_MESSAGE_LIMIT
) -> str:
    """Every pydantic error in one line for a status condition: ``field.path: message``
    joined by ``; ``. Beyond ``limit`` characters the remaining problems are counted, not
    shown (``(3 more)``)."""
    return summarize_problems(validation_problems(err, prefix=prefix), limit=limit)


def summarize_problems(problems: list[str], *, limit: int = STATUS_MESSAGE_LIMIT) -> str:
    """``problems`` in one line of at most ``limit`` characters, the first always shown (cut
    with ``...`` if it alone is too long) and the rest counted once they no longer fit."""
    head = f"{len(problems)} problems: " if len(problems) > 1 else ""
    shown: list[str] = []
    for i, problem in enumerate(problems):
        rest = len(problems) - i - 1
        tail = f" ({rest} more)" if rest else ""
        text = head + "; ".join([*shown, problem]) + tail
        if len(text) <= limit:
            shown.append(problem)
            continue
        if not shown:
            # The first problem alone does not fit: cut it, keep the count of the others.
            room = limit - len(head) - len(tail) - 3
            return f"{head}{problem[: max(room, 0)]}...{tail}"[:limit]
        return f"{head}{'; '.join(shown)} ({len(problems) - len(shown)} more)"
    return head + "; ".join(shown)


def _yaml_problem(source: str, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f" line {mark.line + 1}" if mark is not None else ""
    return one_line(f"{source}{where}: invalid YAML: {problem}")


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path``; ``InputError`` when it cannot be read or is not text."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text") from err


def read_yaml(*, path: Path) -> Any:
    """The single YAML document in ``path``; ``InputError`` when unreadable or malformed."""
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(_yaml_problem(path.name, err)) from err


def check_policy_kind(doc: Any, *, source: str) -> dict[str, Any]:
    """``doc`` if it is a RollbackPolicy object of this API version; ``InputError`` naming the
    file if it is anything else, whose fields are then not worth checking one by one."""
    if not isinstance(doc, dict):
        raise InputError(f"{source}: expected a RollbackPolicy object, got {type(doc).__name__}")
    kind = doc.get("kind")
    if kind != "RollbackPolicy":
        raise InputError(f"{source}: kind: expected RollbackPolicy, got {kind!r}")
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        raise InputError(f"{source}: apiVersion: expected {API_VERSION}, got {api_version!r}")
    return doc


def resolve_problems(spec: RollbackPolicySpec) -> tuple[EffectivePolicy | None, list[str]]:
    """The effective policy of ``spec`` and no problems, or None and what stops the tier
    resolver, as ``spec.field.path: message`` lines."""
    try:
        return tiers.resolve(spec), []
    except ValidationError as err:
        return None, validation_problems(err, prefix="spec")
    except ValueError as err:
        # The resolver's messages start with the field ("triggers[0].minScore: ...").
        sep = "." if _FIELD_FIRST.match(str(err)) else ": "
        return None, [one_line(f"spec{sep}{err}")]


def parse_policy(doc: Any, *, source: str) -> EffectivePolicy:
    """A RollbackPolicy object (as parsed from YAML/JSON) resolved to its effective policy."""
    check_policy_kind(doc, source=source)
    try:
        policy = RollbackPolicy.model_validate(doc)
    except ValidationError as err:
        raise InputError(format_validation_error(source, err)) from err
    effective, problems = resolve_problems(policy.spec)
    if effective is None:
        raise InputError(format_problems(source, problems))
    return effective


def load_policy(*, path: Path) -> EffectivePolicy:
    """Read a RollbackPolicy YAML (or JSON) file and resolve its tier defaults."""
    return parse_policy(read_yaml(path=path), source=path.name)


def load_subscriptions(*, path: Path) -> list[Notify]:
    """The ``spec.notify`` list of a RollbackPolicy file ``load_policy`` accepted."""
    spec = RollbackPolicy.model_validate(read_yaml(path=path)).spec
    return list(spec.notify or ())


def load_decision_spec(text: str, *, source: str) -> RollbackDecisionSpec:
    """The spec of a RollbackDecision given as YAML or JSON text (a whole object, as
    ``kubectl get rbd NAME -o yaml`` prints it, or only its spec)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(_yaml_problem(source, err)) from err
    if not isinstance(doc, dict):
        raise InputError(f"{source}: expected a RollbackDecision object")
    if "kind" in doc and doc["kind"] != "RollbackDecision":
        raise InputError(f"{source}: kind: expected RollbackDecision, got {doc['kind']!r}")
    spec = doc.get("spec", doc) if "kind" in doc else doc
    try:
        decision = RollbackDecisionSpec.model_validate(spec)
    except ValidationError as err:
        raise InputError(format_validation_error(source, err, prefix="spec")) from err
    _check_effective(decision, source=source)
    return decision


def _check_effective(decision: RollbackDecisionSpec, *, source: str) -> None:
    """A decision file may have been edited: its effective policy must still be one the
    operator would accept (so replaying it fails with a message, not deep inside the scoring),
    and the figures replay feeds back in must be finite."""
    where = "spec.policy.effective"
    try:
        tiers.resolve(RollbackPolicySpec.model_validate(decision.policy.effective.wire()))
    except ValidationError as err:
        raise InputError(format_validation_error(source, err, prefix=where)) from err
    except ValueError as err:
        raise InputError(one_line(f"{source}: {where}.{err}")) from err
    money = decision.impact.money_at_risk
    revenue = money.revenue_per_hour if money is not None else None
    if revenue is not None and not math.isfinite(revenue):
        raise InputError(
            f"{source}: spec.impact.moneyAtRisk.revenuePerHour: must be a finite number, "
            f"got {revenue}"
        )
