"""Reading audit.jsonl by cursor: the file backend's side of ``AuditReader``.

Callers hold ``AuditCursor(seq, hash)``; the byte offset of an entry is found
here. Entry ``k`` is line ``k`` of the log (the chain makes seq contiguous), so
a cursor is located by counting newlines (in C) from whichever end is nearer,
then checked against its hash: a cursor whose entry was rewritten or rolled
back is an IntegrityError, never a silent re-read from elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from glasskey.core import canonical
from glasskey.core.audit import AuditLog, Head, line_hash, line_length_before
from glasskey.core.errors import IntegrityError
from glasskey.core.storage.interface import AuditCursor, AuditPage, Doc

BLOCK = 1 << 20
#: The one-day report reads in blocks of this size and splits them in C.
BATCH = 1 << 22
#: A line that does not parse is shown as this (the viewer must still show its place).
UNREADABLE: Doc = {"seq": "?", "event": "(unreadable line)", "details": {}}


def parse_lines(lines: list[bytes]) -> list[Doc]:
    out: list[Doc] = []
    for raw in lines:
        try:
            entry = canonical.loads(raw)
        except IntegrityError:
            entry = dict(UNREADABLE)
        if isinstance(entry, dict):
            out.append(entry)
    return out


def cursor_of(raw: bytes) -> AuditCursor:
    try:
        seq = canonical.loads(raw).get("seq")
    except (IntegrityError, AttributeError):
        seq = None
    if not isinstance(seq, int):
        raise IntegrityError("an audit line has no readable sequence number; run "
                             "'glasskey audit verify'")
    return AuditCursor(seq, line_hash(raw))


def _tail_block(log: AuditLog, count: int) -> tuple[list[bytes], int]:
    """The last ``count`` complete lines and the offset just after them."""
    try:
        fh = open(log.path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return [], 0
    with fh:
        size = fh.seek(0, os.SEEK_END)
        pos, data = size, b""
        while pos > 0 and data.count(b"\n") <= count:
            step = min(BLOCK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    end = data.rfind(b"\n") + 1  # a torn (incomplete) last line is not an entry
    lines = data[:end].split(b"\n")[:-1]
    if pos > 0:
        lines = lines[1:]  # the first one may be cut
    return (lines[-count:] if count > 0 else []), pos + end


def tail(log: AuditLog, count: int) -> AuditPage:
    lines, _ = _tail_block(log, max(count, 1))
    cursor = AuditCursor()
    for raw in reversed(lines):  # an unreadable last line is shown, not a cursor
        try:
            cursor = cursor_of(raw)
            break
        except IntegrityError:
            continue
    return AuditPage(parse_lines(lines[-count:] if count > 0 else []), cursor)


def _skip_forward(fh: BinaryIO, lines: int) -> int:
    """Offset after the first ``lines`` lines (reading from the start)."""
    pos = 0
    fh.seek(0)
    while lines > 0:
        block = fh.read(BLOCK)
        if not block:
            return -1
        n = block.count(b"\n")
        if n < lines:
            lines -= n
            pos += len(block)
            continue
        cut = -1
        for _ in range(lines):
            cut = block.index(b"\n", cut + 1)
        return pos + cut + 1
    return pos


def _skip_backward(fh: BinaryIO, end: int, lines: int) -> int:
    """Offset just after the ``lines``-th newline before offset ``end`` (0 if the file
    start is reached with one to go; -1 if the file has too few lines)."""
    pos = end
    while True:
        start = max(0, pos - BLOCK)
        fh.seek(start)
        block = fh.read(pos - start)
        cut = len(block)
        while lines > 0:
            cut = block.rfind(b"\n", 0, cut)
            if cut < 0:
                break
            lines -= 1
        if lines == 0:
            return start + cut + 1 if cut >= 0 else start
        if start == 0:
            return 0 if lines == 1 else -1
        pos = start


def locate(log: AuditLog, cursor: AuditCursor) -> int:
    """The byte offset just after ``cursor``'s entry (IntegrityError if it is not there)."""
    if cursor.seq <= 0:
        return 0
    lines, end = _tail_block(log, 1)
    if not lines:
        raise _gone(cursor)
    last = cursor_of(lines[-1])
    if cursor.seq > last.seq:
        raise _gone(cursor)
    with open(log.path, "rb") as fh:
        if cursor.seq * 2 >= last.seq:
            # the newline ending the last line is at end - 1; one more newline back
            # per entry between the cursor's and the last
            start = _skip_backward(fh, end - 1, last.seq - cursor.seq + 1)
        else:
            start = _skip_forward(fh, cursor.seq - 1)
        if start < 0:
            raise _gone(cursor)
        fh.seek(start)
        raw = fh.readline()
    if not raw.endswith(b"\n") or line_hash(raw[:-1]) != cursor.hash:
        raise _gone(cursor)
    return start + len(raw)


def _gone(cursor: AuditCursor) -> IntegrityError:
    return IntegrityError(
        f"audit entry {cursor.seq} is not the one this reader saw: the log was rewritten "
        "or rolled back; run 'glasskey audit verify'")


def lines_after(log: AuditLog, offset: int) -> Iterator[bytes]:
    for _, raw in log.lines_from(offset):
        yield raw


def batches(log: AuditLog) -> Iterator[list[bytes]]:
    """Complete lines in blocks of about BATCH bytes (a torn last line is not read)."""
    try:
        fh = open(log.path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    with fh:
        rest = b""
        while True:
            block = fh.read(BATCH)
            if not block:
                return
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            rest = block[cut + 1:]
            yield block[:cut].split(b"\n")


def line_before(log: AuditLog, offset: int) -> str | None:
    """Hash of the complete line that ends at byte ``offset`` (None if there is none)."""
    if offset <= 0:
        return None
    raw = log.line_at(offset - line_length_before(log, offset))
    return line_hash(raw) if raw is not None else None


class CursorReader:
    """The file backend's ``AuditReader`` methods: cursors in, offsets kept inside.

    Mixed into FileStore, which provides ``audit`` (the AuditLog) and
    ``unverified_meta``; ``_cursors`` remembers where recent cursors end, so a
    viewer polling ``audit_since`` does not locate its cursor every time.
    """

    audit: AuditLog
    _cursors: dict[AuditCursor, int]

    def unverified_meta(self) -> Doc:
        raise NotImplementedError

    def audit_head(self) -> AuditCursor:
        head = Head.from_doc(self.unverified_meta().get("audit"))
        return AuditCursor(head.seq, head.hash)

    def audit_tail(self, count: int) -> AuditPage:
        return tail(self.audit, count)

    def _offset_after(self, cursor: AuditCursor) -> int:
        offset = self._cursors.get(cursor)
        if offset is None or line_before(self.audit, offset) != cursor.hash:
            offset = locate(self.audit, cursor)
        return offset

    def audit_since(self, cursor: AuditCursor) -> AuditPage:
        offset = self._offset_after(cursor)
        lines: list[bytes] = []
        for end, raw in self.audit.lines_from(offset):
            lines.append(raw)
            offset = end
        if not lines:
            return AuditPage([], cursor)
        after = cursor_of(lines[-1])
        if len(self._cursors) > 64:
            self._cursors.clear()
        self._cursors[after] = offset
        return AuditPage(parse_lines(lines), after)

    def audit_lines(self, since: AuditCursor | None = None) -> Iterator[bytes]:
        offset = self._offset_after(since) if since is not None else 0
        return lines_after(self.audit, offset)

    def audit_batches(self) -> Iterator[list[bytes]]:
        return batches(self.audit)
