"""Which targets of a batched query may share one query: those whose keys no series could
match both of (``promql_keys.Span.conflict``), and, where a regex repeats a placeholder around
its key, those with one value for it.

PURE; used by ``promql.BatchPlan.batches`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rollguard.signals.promql_keys import META, Span


def chunks(spans: Sequence[Span], keys: Sequence[Mapping[str, str]]) -> list[list[int]]:
    """Groups of target indexes (into ``keys``: each target's placeholder values) such that
    no series can match two targets of one group with different keys, and the placeholders
    a span repeats around its key (``Span.around``) have one value per group."""
    fixed: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for index, values in enumerate(keys):
        fixed.setdefault(tuple(s.around(values) for s in spans), []).append(index)
    out: list[list[int]] = []
    for _, members in sorted(fixed.items()):
        out += [
            [members[i] for i in group] for group in _unconfused(spans, [keys[m] for m in members])
        ]
    return out


def _unconfused(spans: Sequence[Span], keys: Sequence[Mapping[str, str]]) -> list[list[int]]:
    level: list[tuple[int, ...]] = [() for _ in keys]
    for span in spans:
        if span.conflict == "none":
            continue
        own = [span.key(v) for v in keys]
        prefix, suffix = span.around(keys[0])
        if span.conflict == "prefix":
            depth = _chain_depth(set(own), _lead(suffix))
        else:  # the same question read backwards
            reversed_depth = _chain_depth({k[::-1] for k in own}, _lead(prefix, tail=True))
            depth = {k: reversed_depth[k[::-1]] for k in own}
        level = [(*lv, depth[k]) for lv, k in zip(level, own, strict=True)]
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, lv in enumerate(level):
        groups.setdefault(lv, []).append(index)
    return [groups[lv] for lv in sorted(groups)]


def _chain_depth(keys: set[str], lead: str) -> dict[str, int]:
    """Per key, the length of the longest chain of keys below it, where ``a`` is below ``b``
    when ``b = a + rest`` and one string could be read both ways: ``a`` then the pattern
    after it (which starts with ``lead``), or ``b`` then the pattern again. Keys of one depth
    are never below one another.

    Both readings start with ``lead`` after their key, so ``rest + lead`` must begin with
    ``lead``: under ``pod=~"$deployment-[a-z0-9]+"``, ``model-1`` and ``model-10`` cannot be
    confused (``"0-"`` does not begin with ``"-"``); ``web`` and ``web-api`` could be."""
    depth: dict[str, int] = {}
    for key in sorted(keys, key=len):
        below = [
            depth[key[:i]] + 1
            for i in range(len(key))
            if key[:i] in depth and (key[i:] + lead).startswith(lead)
        ]
        depth[key] = max(below, default=0)
    return depth


def _lead(fragment: str, *, tail: bool = False) -> str:
    """The literal text every match of ``fragment`` starts with (ends with, reversed, if
    ``tail``): "" where unsure (flags, a repeated or optional first character)."""
    if "(?" in fragment:
        return ""
    pieces: list[str | None] = []
    i = 0
    while i < len(fragment):
        ch = fragment[i]
        if ch == "\\" and i + 1 < len(fragment) and not fragment[i + 1].isalnum():
            piece: str | None = fragment[i + 1]
            i += 2
        elif ch in META:
            piece = None
            i += 1
        else:
            piece = ch
            i += 1
        if fragment[i : i + 1] in ("*", "+", "?", "{"):
            piece = None
        pieces.append(piece)
    if tail:
        pieces.reverse()
    out = []
    for piece in pieces:
        if piece is None:
            break
        out.append(piece)
    return "".join(out)
