"""Exports of the audit log (JSONL, CSV) and the text hygiene every export shares.

Why a module of its own: an export is read by other programs (a SIEM, a
spreadsheet, ``splitlines()`` in a script), each with its own idea of what
ends a record or starts a formula. Text in the log is partly typed by people
(reasons, tickets, notes) and partly by attackers (the credential argument of
a refused ``kit use`` is recorded as typed), so every export must keep **one
record per entry** whatever the text holds:

* :func:`escape_controls` shows every control character (C0, DEL, C1, which
  includes U+0085 NEL), the Unicode line and paragraph separators (U+2028,
  U+2029) and the bidirectional overrides as a visible ``\\uXXXX``;
* JSONL lines are the stored lines with exactly those characters written as
  JSON escapes, so a line parses to the same value and
  ``canonical.dumps(json.loads(line))`` gives back the stored bytes (the hash
  chain can still be checked from an export);
* CSV cells that a spreadsheet would run as a formula (``= + - @`` TAB CR at
  the start) get a leading apostrophe (the OWASP CSV-injection advice).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from typing import Any, Protocol

from glasskey.core import canonical

#: C0, DEL, C1 (U+0085 NEL included), line/paragraph separators, bidi controls.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: What a JSONL line may still hold raw after json.dumps(ensure_ascii=False).
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: First characters that make a spreadsheet cell a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _u(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control/separator character shown as ``\\uXXXX``."""
    return _CONTROLS.sub(_u, text)


def has_controls(text: str) -> bool:
    return _CONTROLS.search(text) is not None


def jsonl_line(raw: bytes) -> str:
    """A stored line as one JSONL record that no line splitter can cut.

    JSON already escapes C0; DEL, C1 and the separators are legal raw inside
    a JSON string, so they are replaced by their JSON escapes (inside strings
    is the only place they can occur in canonical JSON).
    """
    return _JSON_RAW.sub(_u, raw.decode("utf-8"))


def escape_json_text(text: str) -> str:
    """JSON text with DEL, C1, U+2028/2029 and bidi controls written as JSON escapes."""
    return _JSON_RAW.sub(_u, text)


def csv_cell(value: Any) -> str:
    """A CSV cell that is inert in a spreadsheet and holds no control character."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if text.startswith(FORMULA_START):
        text = "'" + text
    return escape_controls(text)


class _Writer(Protocol):
    def write(self, text: str, /) -> Any: ...


def export(lines: Iterable[bytes], fmt: str, out: _Writer) -> int:
    """Write the log's raw ``lines`` (``vault.audit_lines()``) as jsonl (the stored lines,
    separators escaped) or csv; returns the count."""
    count = 0
    if fmt == "jsonl":
        for raw in lines:
            out.write(jsonl_line(raw) + "\n")
            count += 1
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(["seq", "time", "actor", "event", "subject", "details", "hash"])
        for entry in map(canonical.loads, lines):
            writer.writerow([csv_cell(v) for v in (
                entry["seq"], entry["time"], entry["actor"], entry["event"],
                entry["subject"], json.dumps(entry["details"], sort_keys=True), entry["hash"])])
            count += 1
    else:
        raise ValueError(fmt)
    return count


__all__ = ["FORMULA_START", "csv_cell", "escape_controls", "escape_json_text", "export",
           "has_controls", "jsonl_line"]
