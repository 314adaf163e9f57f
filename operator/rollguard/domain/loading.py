"""Reading user-written input files (policies, scenarios) into validated models.

Called by the CLI and by the simulator's loaders. Every problem becomes an ``InputError``
whose message is one line naming the file, the field and what is wrong, so a command can
print it as it is and exit, never with a traceback. The only I/O is reading the named file.
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
from rollguard.api.policy import EffectivePolicy, RollbackPolicySpec
from rollguard.domain import tiers

_FIELD_FIRST = re.compile(r"^[a-zA-Z][\w\[\].]*: ")


class InputError(ValueError):
    """A user-supplied file is unreadable or invalid; the message is one line, ready to print."""


def field_path(loc: tuple[int | str, ...], *, prefix: str = "") -> str:
    """``('spec', 'signals', 0, 'critical')`` as ``spec.signals[0].critical``."""
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


def format_validation_error(
    source: str, err: ValidationError, *, prefix: str = "", skip: frozenset[str] = frozenset()
) -> str:
    """The first pydantic error as ``source: field.path: message`` (one line).

    ``skip`` drops location parts pydantic inserts that are not fields (the tag of a
    discriminated union, for instance).
    """
    errors = err.errors(include_url=False)
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in skip))
    msg = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    where = field_path(loc, prefix=prefix)
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    head = f"{source}: {where}: " if where else f"{source}: "
    return one_line(f"{head}{msg}{more}")


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


def parse_policy(doc: Any, *, source: str) -> EffectivePolicy:
    """A RollbackPolicy object (as parsed from YAML/JSON) resolved to its effective policy."""
    if not isinstance(doc, dict):
        raise InputError(f"{source}: expected a RollbackPolicy object, got {type(doc).__name__}")
    kind = doc.get("kind")
    if kind != "RollbackPolicy":
        raise InputError(f"{source}: kind: expected RollbackPolicy, got {kind!r}")
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        raise InputError(f"{source}: apiVersion: expected {API_VERSION}, got {api_version!r}")
    try:
        policy = RollbackPolicy.model_validate(doc)
    except ValidationError as err:
        raise InputError(format_validation_error(source, err)) from err
    try:
        return tiers.resolve(policy.spec)
    except ValidationError as err:
        raise InputError(format_validation_error(source, err, prefix="spec")) from err
    except ValueError as err:
        # The resolver's messages start with the field ("triggers[0].minScore: ...").
        sep = "." if _FIELD_FIRST.match(str(err)) else ": "
        raise InputError(one_line(f"{source}: spec{sep}{err}")) from err


def load_policy(*, path: Path) -> EffectivePolicy:
    """Read a RollbackPolicy YAML (or JSON) file and resolve its tier defaults."""
    return parse_policy(read_yaml(path=path), source=path.name)


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
