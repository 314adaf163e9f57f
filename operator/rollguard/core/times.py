"""Time in its three forms, converted in one place: Unix seconds (how rollguard computes),
aware UTC datetimes (the API models' time type) and RFC 3339 text (what users, files and the
API server write).

PURE: the standard library only, and no clock: callers pass the time they mean. Every layer
above ``rollguard.api`` may call it: the decision machine (``evidence``, ``decide``,
``revisions``), ``files.series``, ``simulation.recorded``, ``governance`` (journal and
calibration), the operator's loops and the command line. Go-style durations (``90s``,
``1h30m``) are read and written by ``rollguard.api.base``, which the models validate with and
which sits below ``core``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def to_datetime(seconds: float) -> datetime:
    """Unix seconds as an aware UTC datetime (the API's time type)."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def to_seconds(moment: datetime) -> float:
    """A datetime as Unix seconds; one without a time zone is read as UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def format_time(moment: datetime) -> str:
    """RFC 3339 text of an aware datetime as the API writes it: UTC as ``Z``, a fraction as
    the datetime holds it (``2024-05-01T12:00:00Z``, ``2024-05-01T12:00:00.250000Z``)."""
    return moment.isoformat().replace("+00:00", "Z")


def format_seconds(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC text for reports: milliseconds only when there is a
    fraction (``2024-05-01T12:00:00Z``, ``2024-05-01T12:00:00.250Z``)."""
    moment = to_datetime(seconds)
    text = moment.isoformat(timespec="milliseconds" if seconds % 1 else "seconds")
    return text.replace("+00:00", "Z")


def parse_timestamp(text: Any) -> float:
    """Unix seconds from a number or an RFC 3339 string (with ``Z`` or an offset); ValueError
    with the reason. What users write: series files, ``--start``, ``--since``."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a timestamp")
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = str(text).strip()
        try:
            value = float(raw)
        except ValueError:
            match = _RFC3339.match(raw)
            if not match:
                raise ValueError(
                    f"{raw!r} is not Unix seconds or an RFC 3339 time like 2024-05-01T12:00:00Z"
                ) from None
            day, clock, frac, offset = match.groups()
            offset = "+00:00" if offset in ("Z", "z") else offset
            try:
                whole = datetime.fromisoformat(f"{day}T{clock}{offset}")
            except ValueError as err:
                raise ValueError(f"{raw!r} is not a valid time: {err}") from None
            # The fraction is added as written, not rounded to microseconds by datetime.
            return whole.timestamp() + (float(frac) if frac else 0.0)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number of seconds")
    return value


def api_seconds(raw: object) -> float | None:
    """An API server's timestamp (RFC 3339 text, or a datetime from a client model) as Unix
    seconds; None when it is missing or unreadable. Times without a zone are UTC."""
    if isinstance(raw, datetime):
        return to_seconds(raw)
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return to_seconds(moment)
