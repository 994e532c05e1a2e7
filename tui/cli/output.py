"""Everything the command line writes: one escaped line, one JSON document, a note.

Every line built from text goes through :func:`emit` or :func:`note`, which pass it
through :func:`printable`: a control character someone typed into a reason, a ticket
or a receiver's error reaches the terminal as a visible escape, never as a control
sequence. JSON output is inert by construction (``json.dumps`` escapes controls).
The two exceptions are a revealed secret and a kit part, written verbatim by their
commands on purpose.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from glasskey.core.api import iso, printable

#: Keys of JSON documents that hold a time: written as ISO 8601 UTC, never epoch seconds.
TIME_KEYS = frozenset({"created", "revealed_at", "lease_expires", "ended_at", "expires_at",
                       "since", "locked_until", "rotated_at", "at", "expires", "time"})


def _time_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return iso(value) if value > 0 else None


def isoize(doc: Any) -> Any:
    """Epoch-second times in ``doc`` (by key, see TIME_KEYS) as ISO 8601 UTC strings."""
    if isinstance(doc, dict):
        return {k: _time_value(v) if k in TIME_KEYS else isoize(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [isoize(v) for v in doc]
    return doc


def out_json(doc: Any) -> None:
    # json.dumps escapes every control character (\u001b), so JSON output is inert too.
    sys.stdout.write(json.dumps(isoize(doc), indent=2, sort_keys=True, default=str) + "\n")


def note(text: str) -> None:
    """A message for the person at the terminal, on stderr (stdout stays for data)."""
    sys.stderr.write(printable(text, keep_newlines=True) + "\n")


def emit(text: str) -> None:
    """One line for a person on stdout, with any control character visibly escaped."""
    sys.stdout.write(printable(text) + "\n")


def show(as_json: bool, doc: Any, *lines: str) -> None:
    """The usual ending of a command: ``doc`` under ``--json``, else ``lines``."""
    if as_json:
        out_json(doc)
    else:
        for line in lines:
            emit(line)


def progress_printer(label: str) -> Callable[[int, int], None] | None:
    """A progress bar on stderr for long operations, only when a person watches it."""
    if not sys.stderr.isatty():
        return None

    def show_progress(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show_progress


def show_qr(uri: str, stream: TextIO) -> None:
    try:
        import segno

        segno.make(uri, error="m").terminal(out=stream, compact=True)
    except Exception:
        stream.write("(QR code unavailable in this terminal)\n")
