"""Free text typed by people: how long it may be, and how it is shown.

Two rules, shared by the core services, the CLI and the TUI:

* **Caps.** Every free-text field (reason, ticket, note, identity, channel,
  deny reason, label, ...) has a length limit checked at the service entry
  point, before anything is written. An unbounded reason once made every later
  audit write fail; a clear "too long" (exit 2) with nothing stored is the
  fix at the door, whatever the storage layer can cope with.
* **Escaping.** Text someone else typed is data, never terminal control. Any
  C0/C1 control character, ESC, DEL and the Unicode bidi/line-separator
  controls are shown as visible escapes (``\\x1b``, ``\\x9b``, ``\\u202e``) by
  :func:`printable`, so an OSC 52 clipboard write, a CSI "clear screen" or a
  retitle planted in a reason stays inert text on every screen that shows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from glasskey.core.errors import UsageError

#: Field -> largest number of characters accepted. Generous for people, small
#: enough that one audit line stays far below any storage limit.
CAPS: Mapping[str, int] = {
    "reason": 1000,
    "ticket": 200,
    "note": 2000,
    "identity": 200,
    "channel": 200,
    "deny reason": 1000,
    "label": 200,
    "target": 2000,
    "summary": 1000,
}

#: Used for a field the table above does not name.
DEFAULT_CAP = 1000

# C0 controls (tab and newline included: a newline in a list row forges a row),
# DEL, C1 controls, and the Unicode format controls that reorder or break lines.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_NL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def cap(value: str, field: str, limit: int | None = None) -> str:
    """Return ``value`` unchanged, or refuse it (exit 2) when it is too long.

    The message names the field and both lengths and never echoes the text.
    """
    most = limit if limit is not None else CAPS.get(field, DEFAULT_CAP)
    if value is not None and len(value) > most:
        raise UsageError(
            f"the {field} is {len(value):,} characters long; at most {most:,} are accepted")
    return value


def cap_all(**fields: str | None) -> None:
    """Cap several fields at once: ``cap_all(reason=r, ticket=t)``.

    Underscores in the keyword name become spaces (``deny_reason`` -> "deny reason").
    """
    for name, value in fields.items():
        if value is not None:
            cap(value, name.replace("_", " "))


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as text with every control character visibly escaped.

    ``keep_newlines`` keeps plain line feeds for multi-line detail views; lists
    and one-line messages escape them too, so nobody can forge an extra row.
    A backslash is left alone: an escape written by hand looks the same as an
    escaped control, which is harmless (both are inert text).
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _CONTROL_KEEP_NL if keep_newlines else _CONTROL
    return pattern.sub(_escape, text)


def has_controls(value: str) -> bool:
    """True when ``value`` holds a character :func:`printable` would escape."""
    return _CONTROL.search(value) is not None
