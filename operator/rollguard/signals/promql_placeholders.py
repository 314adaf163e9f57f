"""The placeholders of a signal query, found in its text before it is parsed.

PURE; used by ``rollguard.signals.promql`` only. A query is written for one deployment
with ``$namespace``, ``$deployment`` and ``$revision``, or their braced forms
``${namespace}``, ``${deployment}`` and ``${revision}``, which may only appear inside label
matcher values. ``substitute`` swaps each one for an inert stand-in (``promql_ast.DUMMY``) so
that the query can be parsed; what is left that looks like a placeholder but is not one is
refused with a message that shows how to write it:

* ``$namespace_x`` would read as a placeholder named ``namespace_x``: write ``${namespace}_x``;
* ``$cluster``, ``${env}``, ``$__rate_interval`` are not placeholders (dashboard variables are
  not filled by rollguard);
* a placeholder outside any string (a label name, a range, a metric name) is misplaced.

A ``$`` not followed by a letter, ``_`` or ``{`` stays as written: in a regex it is the end
anchor (``path=~".*/predict$"``). Function arguments such as ``label_replace``'s replacement
may hold ``$1``, ``${1}`` or ``$name`` (capture-group references); only the three placeholder
names are refused there.
"""

from __future__ import annotations

import re

from rollguard.signals.promql_ast import DUMMY, PLACEHOLDERS, STAND_IN


class PlaceholderError(ValueError):
    """A placeholder is misspelled or misplaced; the message says how to write it."""


# $name or ${name}: the forms that can be placeholders. ``name`` may be anything between
# braces so that ${env} or ${1} are seen (and judged) whole.
_DOLLAR = re.compile(r"\$(?:\{(?P<braced>[^{}\"'`]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_NAMES = ", ".join(f"${{{n}}}" for n in PLACEHOLDERS[:-1]) + f" and ${{{PLACEHOLDERS[-1]}}}"


def substitute(query: str) -> str:
    """The query with every placeholder inside a string replaced by its stand-in; raises
    ``PlaceholderError`` for one outside any string."""
    out: list[str] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch in "\"'`":
            end = _string_end(query, i)
            out.append(_fill(query[i:end]))
            i = end
        elif ch == "#":
            newline = query.find("\n", i)
            end = len(query) if newline < 0 else newline
            out.append(query[i:end])
            i = end
        else:
            found = _DOLLAR.match(query, i)
            if found:
                raise PlaceholderError(_outside_strings(found))
            out.append(ch)
            i += 1
    return "".join(out)


def check_matcher_value(value: str) -> None:
    """Refuse what is left of a ``$`` in a matcher value (placeholders are stand-ins by now)
    that a reader would take for a placeholder."""
    for found in _DOLLAR.finditer(value):
        raise PlaceholderError(_not_a_placeholder(found))


def _string_end(query: str, start: int) -> int:
    quote = query[start]
    end = start + 1
    while end < len(query) and query[end] != quote:
        end += 2 if quote != "`" and query[end] == "\\" else 1
    return min(end + 1, len(query))


def _fill(text: str) -> str:
    def one(found: re.Match[str]) -> str:
        name = found.group("braced") if found.group("braced") is not None else found["bare"]
        return DUMMY[name] if name in DUMMY else found.group(0)

    return _DOLLAR.sub(one, text)


def _not_a_placeholder(found: re.Match[str]) -> str:
    name = found.group("braced") if found.group("braced") is not None else found["bare"]
    if found.group("bare"):
        # A stand-in the name ran into ($namespace_$deployment) is not part of what was written.
        name = name.split(STAND_IN, 1)[0]
    written = f"${{{name}}}" if found.group("braced") is not None else f"${name}"
    for placeholder in PLACEHOLDERS:
        rest = name[len(placeholder) :]
        if found.group("bare") and name.startswith(placeholder) and rest:
            return (
                f"{written} is not a placeholder: to follow ${{{placeholder}}} with {rest!r}, "
                f"write ${{{placeholder}}}{rest}"
            )
    return (
        f"{written} is not a placeholder: rollguard fills only {_NAMES} (or $namespace, "
        "$deployment, $revision), inside label matcher values"
    )


def _outside_strings(found: re.Match[str]) -> str:
    name = found.group("braced") if found.group("braced") is not None else found["bare"]
    if name in PLACEHOLDERS:
        return (
            f"{found.group(0)} may only appear inside a label matcher value, like "
            f'{{{name}="${{{name}}}"}}'
        )
    return _not_a_placeholder(found)
