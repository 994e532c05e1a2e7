"""Lenient readers of audit-entry fields, and the report's date parsing.

Why lenient: a report must be built even from a log some client wrote oddly;
a field of the wrong type reads as absent rather than stopping the report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from glasskey.core.errors import UsageError
from glasskey.core.report.rules import DAY


def _ts(value: Any) -> float | None:
    """An RFC 3339 instant as epoch seconds (None if it is not one)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _s(value: Any) -> str:
    """Text of a field ('' for absent)."""
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _i(value: Any) -> int | None:
    """A whole number (booleans and fractions are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _f(value: Any) -> float | None:
    """A number as float (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _in(t: float | None, since: float, until: float) -> bool:
    return t is not None and since <= t <= until


def parse_date(text: str, *, end: bool = False) -> float:
    """``YYYY-MM-DD`` (the whole day, UTC) or an RFC 3339 instant -> epoch seconds.

    With ``end``, a bare date means the end of that day (for ``--until``).
    """
    raw = (text or "").strip()
    try:
        if len(raw) == 10:
            start = datetime.fromisoformat(raw + "T00:00:00+00:00").timestamp()
            return start + DAY - 1 if end else start
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"date {text!r} is not understood; use YYYY-MM-DD or "
                         "YYYY-MM-DDTHH:MM:SSZ") from None
    if value.tzinfo is None:
        raise UsageError(f"date {text!r} has no time zone; add Z for UTC")
    return value.timestamp()
