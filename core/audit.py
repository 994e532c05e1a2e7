"""The tamper-evident audit log (``audit.jsonl``).

One canonical-JSON entry per line::

    {"actor", "actor_prev", "details", "event", "hash", "prev", "seq", "sig",
     "subject", "time"}

* ``hash`` is SHA-256 over the canonical entry without ``hash`` and ``sig``;
  ``sig`` is the actor's Ed25519 signature over that hash (``null`` only for
  the few ``system`` events written without an unlocked operator, such as an
  authentication failure or a quarantined torn tail).
* ``prev`` is the SHA-256 of the previous *line* (signature included), so any
  byte changed anywhere breaks the next link; ``actor_prev`` links each actor's
  own entries the same way.
* The state records the head (seq, line hash, byte offset, each actor's last
  line hash) and every client keeps the last head it saw (a witness
  checkpoint), so truncation and rollback are detected.

Verification (core/chain.py) checks every link of both chains and every
signature, under the key the *signed roster* gives the actor at that point of
the log; clients do it incrementally from their own checkpoint before they
read or append, and ``audit verify`` does it for the whole log with the
signatures spread over every core. The per-actor chain makes a deleted or
reordered entry of one actor visible even where the global chain was rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glasskey.core import canonical
from glasskey.core.crypto import sign
from glasskey.core.errors import IntegrityError, StorageError
from glasskey.core.fsutil import FILE_MODE, fsync_dir

GENESIS = "0" * 64
AUDIT_FILE = "audit.jsonl"
QUARANTINE_DIR = "audit.quarantine"
SYSTEM = "system"
#: Events that may be written unsigned by the ``system`` actor. They carry no
#: authority: they record that something was refused or recovered.
SYSTEM_EVENTS = frozenset(
    {
        "auth.failed",
        "auth.locked",
        "audit.tail-quarantined",
        "audit.uncommitted",
        "lease.overdue",
    }
)
ENTRY_FIELDS = (
    "actor", "actor_prev", "details", "event", "hash", "prev", "seq", "sig", "subject", "time",
)
#: Events whose details introduce an actor's signing key.
ENROL_EVENT = "operator.enrolled"


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


@dataclass
class Head:
    """Where the log ends: what the state and the witnesses remember."""

    seq: int = 0
    hash: str = GENESIS
    offset: int = 0
    actors: dict[str, str] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "offset": self.offset,
                "actors": dict(self.actors)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Head:
        if not doc:
            return cls()
        return cls(int(doc["seq"]), str(doc["hash"]), int(doc["offset"]),
                   dict(doc.get("actors", {})))


@dataclass(frozen=True)
class Signer:
    """Who signs an entry: an unlocked operator's name and Ed25519 key."""

    name: str
    key: bytes | None  # None only for the system actor


SYSTEM_SIGNER = Signer(SYSTEM, None)


def build_entry(head: Head, signer: Signer, event: str, subject: str,
                details: dict[str, Any], now: float) -> tuple[bytes, Head]:
    """The next line after ``head`` and the head after it."""
    if signer.key is None and (signer.name != SYSTEM or event not in SYSTEM_EVENTS):
        raise IntegrityError(f"event {event} must be signed by an operator")
    body = {
        "seq": head.seq + 1,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "actor": signer.name,
        "event": event,
        "subject": subject,
        "details": details,
        "prev": head.hash,
        "actor_prev": head.actors.get(signer.name, GENESIS),
    }
    digest = hashlib.sha256(canonical.dumps(body)).hexdigest()
    sig = None
    if signer.key is not None:
        sig = canonical.b64e(sign.sign(signer.key, bytes.fromhex(digest)))
    line = canonical.dumps({**body, "hash": digest, "sig": sig})
    h = line_hash(line)
    actors = dict(head.actors)
    actors[signer.name] = h
    return line, Head(head.seq + 1, h, head.offset + len(line) + 1, actors)


class AuditLog:
    """Appends under the vault lock (the caller holds it) and reads lock-free."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / AUDIT_FILE
        #: Test hook, called before the append's write and fsync (fault injection).
        self.fault: Any = None

    def ensure(self) -> None:
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
            os.close(fd)
            fsync_dir(self.root)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, lines: list[bytes], expected_offset: int) -> None:
        """Durably append ``lines`` at ``expected_offset`` (fail closed).

        On any error the file is cut back to ``expected_offset`` so that a
        half-written record never counts, and StorageError reaches the caller:
        the action it describes must not happen.
        """
        data = b"".join(line + b"\n" for line in lines)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        except OSError as exc:
            raise StorageError(
                f"the audit log cannot be opened ({exc.strerror}); action refused"
            ) from None
        try:
            if os.fstat(fd).st_size != expected_offset:
                raise IntegrityError(
                    "the audit log does not end where the vault state says it does"
                )
            try:
                if self.fault:
                    self.fault("write")
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if self.fault:
                    self.fault("fsync")
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, expected_offset)
                    os.fsync(fd)
                except OSError:
                    pass
                reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
                raise StorageError(
                    f"the audit record could not be written ({reason}); action refused, "
                    "nothing was changed"
                ) from None
        finally:
            os.close(fd)

    # -- recovery (caller holds the lock) -----------------------------------------
    def recover_tail(self, head: Head) -> tuple[list[dict[str, Any]], bytes | None]:
        """Lines past ``head`` (an append whose state commit was lost) and a torn tail.

        Returns the complete extra entries (already chained from ``head``) and
        the partial last line, if any, after moving it to the quarantine dir and
        cutting the file back to the last complete line.
        """
        size = self.size()
        if size < head.offset:
            raise IntegrityError(
                f"the audit log is shorter than the vault state records "
                f"({size} < {head.offset} bytes): it was truncated"
            )
        if size == head.offset:
            return [], None
        with open(self.path, "rb") as fh:
            fh.seek(head.offset)
            extra = fh.read()
        partial = None
        cut = extra.rfind(b"\n") + 1
        if cut < len(extra):
            partial = extra[cut:]
            qdir = self.root / QUARANTINE_DIR
            qdir.mkdir(mode=0o700, exist_ok=True)
            qpath = qdir / f"tail-{head.offset + cut}-{time.time_ns()}.partial"
            fd = os.open(qpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            try:
                os.write(fd, partial)
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(qdir)
            with open(self.path, "r+b") as fh:
                fh.truncate(head.offset + cut)
                fh.flush()
                os.fsync(fh.fileno())
        entries: list[dict[str, Any]] = []
        prev = head.hash
        for raw in extra[:cut].splitlines():
            entry = canonical.loads_canonical(raw)
            if entry.get("prev") != prev or entry.get("seq") != head.seq + len(entries) + 1:
                raise IntegrityError("the audit log's unacknowledged tail does not chain")
            prev = line_hash(raw)
            entries.append({"entry": entry, "line": raw})
        return entries, partial

    # -- reading --------------------------------------------------------------------
    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(byte offset, line without newline) of every complete line."""
        offset = 0
        try:
            fh = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return
        with fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return  # torn tail: reported by verify, quarantined on next write
                yield offset, raw[:-1]
                offset += len(raw)

    def lines_from(self, offset: int, stop: int | None = None
                   ) -> Iterator[tuple[int, bytes]]:
        """(offset after the line, line without newline) of every complete line from
        byte ``offset`` up to byte ``stop`` (None: the end); a torn tail ends it."""
        try:
            fh = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return
        with fh:
            fh.seek(offset)
            pos = offset
            for raw in fh:
                if (stop is not None and pos >= stop) or not raw.endswith(b"\n"):
                    return
                pos += len(raw)
                yield pos, raw[:-1]

    def entries(self) -> Iterator[dict[str, Any]]:
        for _, raw in self.lines():
            yield canonical.loads(raw)

    def line_at(self, offset: int) -> bytes | None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                raw = fh.readline()
        except FileNotFoundError:
            return None
        return raw[:-1] if raw.endswith(b"\n") else None

    def line_ending_at(self, offset: int) -> bytes | None:
        """The complete line that ends at byte ``offset`` (None if there is none)."""
        return self.line_at(offset - line_length_before(self, offset))


def line_length_before(log: AuditLog, offset: int) -> int:
    """Length (newline included) of the line that ends at byte ``offset``.

    Reads backwards in growing windows, so a line of any legal size is found
    (a fixed look-back once made a single 70 kB reason break every write).
    """
    if offset <= 0:
        return 0
    window = 65536
    try:
        with open(log.path, "rb") as fh:
            while True:
                start = max(0, offset - window)
                fh.seek(start)
                chunk = fh.read(offset - start)
                if not chunk.endswith(b"\n"):
                    return 0
                cut = chunk.rfind(b"\n", 0, len(chunk) - 1)
                if cut >= 0 or start == 0:
                    return len(chunk) - (cut + 1)
                window *= 4
    except FileNotFoundError:
        return 0

