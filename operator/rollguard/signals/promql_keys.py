"""How a signal query's matchers name a deployment, and what one batch of them selects.

PURE; used by ``promql`` and ``promql_batch`` only, on templates whose placeholders are
``promql_ast.DUMMY`` stand-ins. A matcher whose value holds placeholders is a ``Span``. Its
**key** for a target is the placeholders' values with the literal text between them
(``${namespace}_${deployment}`` gives ``ml_fraud``): for ``label="…"`` and for a regex that is
nothing but placeholders and literal text, the label's whole value; for a regex with more
around them (``pod=~"$deployment-[a-z0-9]+-[a-z0-9]+"``), the part a capture group recovers.

Every selector of a batchable query names the deployment through the same key templates, one
matcher per template, and each template becomes one **key label** of the batched query: the
series' own label when every selector matches it whole on the same label (``namespace``,
Istio's ``destination_workload``), otherwise ``rollguard_<placeholder>`` (or
``rollguard_key<n>`` for a compound template) that a ``label_replace`` copies or captures. A
target's series in the batched result are exactly those whose key labels hold the target's
keys, so two targets with equal keys (``ns-a/web`` and ``ns-b/web`` when no matcher names the
namespace) both get them, as their own queries would.

A regex around the placeholders could let one series belong to two targets (``web`` and
``web-api`` under ``pod=~"$deployment-.*"``); a capture group can give it only one key. So
targets whose keys could meet share no batch (``promql_chunks``): where the text before the
placeholders is literal, no key of a batch is a prefix of another; where the text after is
literal, no key is a suffix of another; where neither is, the query runs per deployment.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rollguard.signals import promql_ast as ast
from rollguard.signals.promql_ast import DUMMY, restore
from rollguard.signals.promql_print import quote, to_promql

CAPTURE = "rollguard_key"  # the capture group's name in a generated label_replace regex
KEY_PREFIX = "rollguard_"
_STAND_IN = re.compile("|".join(re.escape(d) for d in DUMMY.values()))
_BY_DUMMY = {dummy: name for name, dummy in DUMMY.items()}
_REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")
META = set("\\.+*?()|[]{}^$")
_CASELESS = re.compile(r"\(\?[a-zA-Z]*i[a-zA-Z-]*[:)]")  # (?i), (?is), (?i:...)


class NotBatchableError(Exception):
    """The query must run per deployment; the message says why, in words for users."""


def regex_escape(value: str) -> str:
    """Escape RE2 metacharacters so a value matches itself only (Prometheus anchors regexes)."""
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def fill(template: str, values: Mapping[str, str], *, regex: bool = False) -> str:
    """``template`` with its stand-ins replaced by ``values`` (regex-escaped if ``regex``)."""

    def one(found: re.Match[str]) -> str:
        value = values[_BY_DUMMY[found.group(0)]]
        return regex_escape(value) if regex else value

    return _STAND_IN.sub(one, template)


@dataclass(frozen=True)
class Span:
    """A matcher whose value holds placeholders. ``template`` is its key (stand-ins and the
    literal text between them); ``pattern`` is the same part of the value as written (regex
    text for ``=~``); ``prefix`` and ``suffix`` are the regex around it (``=~`` only)."""

    label: str
    op: Literal["=", "=~"]
    template: str
    pattern: str
    prefix: str = ""
    suffix: str = ""

    @property
    def whole(self) -> bool:
        """The label's value is the key itself."""
        return not self.prefix and not self.suffix

    @property
    def conflict(self) -> Literal["none", "prefix", "suffix"]:
        """Which relation between two keys lets one series match both targets' matchers."""
        if self.whole or (_literal(self.prefix) and _literal(self.suffix)):
            return "none"
        return "prefix" if _literal(self.prefix) else "suffix"

    def key(self, values: Mapping[str, str]) -> str:
        return fill(self.template, values)

    def alternative(self, values: Mapping[str, str]) -> str:
        """Regex text matching this target's part of the value."""
        if self.op == "=":
            return regex_escape(fill(self.template, values))
        return fill(self.pattern, values, regex=True)

    def around(self, values: Mapping[str, str]) -> tuple[str, str]:
        """``prefix`` and ``suffix`` with the placeholders they repeat filled (a batch's
        targets share those values: ``chunks``)."""
        return fill(self.prefix, values, regex=True), fill(self.suffix, values, regex=True)

    def widened(
        self, alternatives: Sequence[str], keys: Sequence[str], values: Mapping[str, str]
    ) -> ast.Matcher:
        """The matcher for a batch whose targets have these alternatives and keys (``values``:
        any one target's, for the placeholders ``prefix`` and ``suffix`` repeat)."""
        if self.whole and len(set(keys)) == 1:
            return ast.Matcher(self.label, "=", keys[0])
        group = "|".join(alternatives)
        if self.whole:
            return ast.Matcher(self.label, "=~", group)
        prefix, suffix = self.around(values)
        return ast.Matcher(self.label, "=~", f"{prefix}(?:{group}){suffix}")

    def capture(self, alternatives: Sequence[str], values: Mapping[str, str]) -> str:
        """The label_replace regex whose group ``CAPTURE`` is the key of a batch's series."""
        prefix, suffix = self.around(values)
        return f"{prefix}(?P<{CAPTURE}>{'|'.join(alternatives)}){suffix}"


def span_of(matcher: ast.Matcher, shown: str) -> Span | None:
    """The span of one matcher, None when its value holds no placeholder; raises
    ``NotBatchableError`` for a shape that cannot be widened to a batch."""
    value = matcher.value
    stand_ins = list(_STAND_IN.finditer(value))
    if not stand_ins:
        return None
    where = f"selector {shown} matches {matcher.name}{matcher.op}{quote(restore(value))}"
    if matcher.op in ("!=", "!~"):
        raise NotBatchableError(f"{where}: a negative matcher with a placeholder cannot batch")
    if matcher.name == "__name__":
        raise NotBatchableError(f"{where}: a metric name cannot tell deployments apart")
    if matcher.op == "=":
        return Span(matcher.name, "=", value, value)
    if _CASELESS.search(value):
        raise NotBatchableError(
            f"{where}: the regex ignores case, so a series' name may differ from the "
            "deployment's and could not be told apart by it"
        )
    first, last = _main_group(value, stand_ins)
    prefix, pattern, suffix = value[:first], value[first:last], value[last:]
    pieces = [_unescape(piece) or "" for piece in _STAND_IN.split(pattern)]
    keys = [m.group(0) for m in _STAND_IN.finditer(pattern)]
    joined = pieces[0] + "".join(k + p for k, p in zip(keys, pieces[1:], strict=True))
    prefix = prefix[1:] if prefix.startswith("^") else prefix
    suffix = suffix[:-1] if suffix.endswith("$") and not suffix.endswith("\\$") else suffix
    problem = _unsafe(prefix, suffix)
    if problem:
        raise NotBatchableError(f"{where}: {problem}")
    span = Span(matcher.name, "=~", joined, pattern, prefix, suffix)
    if not span.whole and not _literal(span.prefix) and not _literal(span.suffix):
        raise NotBatchableError(
            f"{where}: with patterns on both sides of the placeholders, one series could "
            "match two deployments' names"
        )
    return span


def _main_group(value: str, stand_ins: list[re.Match[str]]) -> tuple[int, int]:
    """Where the key of a regex value lies: the run of placeholders joined by literal text
    (``${namespace}_${deployment}``) with the most placeholders, the one naming the
    deployment on a tie. Placeholders outside it are fixed per batch (``chunks``)."""
    groups: list[list[re.Match[str]]] = [[stand_ins[0]]]
    for before, found in itertools.pairwise(stand_ins):
        if _unescape(value[before.end() : found.start()]) is None:
            groups.append([found])
        else:
            groups[-1].append(found)

    def rank(group: list[re.Match[str]]) -> tuple[int, bool]:
        names = {m.group(0) for m in group}
        return len(names), DUMMY["deployment"] in names

    best = max(groups, key=rank)  # max keeps the first of equals
    return best[0].start(), best[-1].end()


def _unescape(piece: str) -> str | None:
    """The text a regex fragment matches when it is literal (``\\.`` is a dot), else None."""
    out, i = [], 0
    while i < len(piece):
        ch = piece[i]
        if ch == "\\":
            if i + 1 < len(piece) and not piece[i + 1].isalnum():
                out.append(piece[i + 1])
                i += 2
                continue
            return None
        if ch in META:
            return None
        out.append(ch)
        i += 1
    return "".join(out)


def _literal(fragment: str) -> bool:
    return _unescape(fragment) is not None


def _unsafe(prefix: str, suffix: str) -> str:
    """Why ``prefix (?:…) suffix`` would not read as the value did, "" when it would."""
    for part, text in (("before", prefix), ("after", suffix)):
        depth, i = 0, 0
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "[":
                i = _class_end(text, i)
                if i < 0:
                    return f"the placeholders sit inside a character class ({part} them)"
                continue
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == "|" and depth == 0:
                return f"the regex has an alternative '|' {part} its placeholders"
            if depth < 0:
                break
            i += 1
        if depth or i > len(text):
            return f"the placeholders sit inside a group of the regex ({part} them)"
    if suffix[:1] in ("*", "+", "?", "{"):
        return "a repetition follows the last placeholder"
    return ""


def _class_end(text: str, start: int) -> int:
    """The index after the character class opening at ``start``, -1 if it does not close."""
    i = start + 1
    if text[i : i + 1] == "^":
        i += 1
    if text[i : i + 1] == "]":
        i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "]":
            return i + 1
        else:
            i += 1
    return -1


# ------------------------------------------------------------------------------------------
# The key labels of a query
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """The key labels of a batchable query: ``labels[i]`` holds the key of ``templates[i]``;
    ``raw[i]`` says it is the series' own label (else a label_replace writes it)."""

    labels: tuple[str, ...]
    templates: tuple[str, ...]
    raw: tuple[bool, ...]

    def label_of(self, template: str) -> str:
        return self.labels[self.templates.index(template)]

    def of(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """A target's keys, in ``labels`` order."""
        return tuple(fill(t, values) for t in self.templates)


def selector_spans(selector: ast.Selector) -> tuple[Span, ...]:
    """The spans of one selector; raises ``NotBatchableError`` unless it names the
    deployment in a way a batch can widen and split."""
    shown = restore(to_promql(selector))
    if selector.or_groups:
        raise NotBatchableError(f"selector {shown} uses 'or' between matchers")
    spans = tuple(s for m in selector.matchers if (s := span_of(m, shown)) is not None)
    if not spans:
        raise NotBatchableError(
            f"selector {shown} has no placeholder, so its series cannot be attributed to "
            "one deployment"
        )
    templates = [s.template for s in spans]
    for template in templates:
        if templates.count(template) > 1:
            raise NotBatchableError(
                f"selector {shown} names {restore(template)!r} in two matchers; a batch can use one"
            )
    return spans


def plan_keys(selectors: Sequence[ast.Selector]) -> Keys:
    """The key labels shared by every selector; raises ``NotBatchableError``."""
    per_selector = [selector_spans(s) for s in selectors]
    first = {s.template for s in per_selector[0]}
    for selector, spans in zip(selectors, per_selector, strict=True):
        if {s.template for s in spans} != first:
            a, b = restore(to_promql(selectors[0])), restore(to_promql(selector))
            raise NotBatchableError(
                f"selectors {a} and {b} name the deployment through different placeholders, "
                "so their series cannot be matched in one query"
            )
    ordered = [DUMMY[n] for n in ("namespace", "deployment", "revision") if DUMMY[n] in first]
    ordered += sorted(t for t in first if t not in ordered)
    labels, raw = [], []
    for n, template in enumerate(ordered):
        matching = [s for group in per_selector for s in group if s.template == template]
        own = {s.label for s in matching}
        others = {s.label for group in per_selector for s in group if s.template != template}
        if all(s.whole for s in matching) and len(own) == 1 and not own & others:
            labels.append(own.pop())
            raw.append(True)
        else:
            single = _BY_DUMMY.get(template)
            labels.append(KEY_PREFIX + (single if single else f"key{n}"))
            raw.append(False)
    return Keys(tuple(labels), tuple(ordered), tuple(raw))
