"""The text exposition format (0.0.4) as the workload simulator's modules spell it: label
escaping, the ``le`` label of a bucket bound, and the ``# HELP``/``# TYPE`` lines that open a
family.

PURE. Called by ``devenv.workload.counters``, ``devenv.workload.families`` and the unit tests.
"""

from __future__ import annotations

from collections.abc import Mapping


def escape_label_value(value: str) -> str:
    """Escape per the text exposition format: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_le(bound: float) -> str:
    """A bucket bound as an ``le`` label value."""
    # Same spelling as the official client ("1.0", not "1"); Prometheus 3 normalises `le`
    # anyway, but older servers compare it as a plain string.
    return repr(float(bound))


def family_header(name: str, families: Mapping[str, tuple[str, str]]) -> list[str]:
    """The ``# HELP`` and ``# TYPE`` lines that open family ``name`` of ``families`` (name ->
    type and help)."""
    kind, help_text = families[name]
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
