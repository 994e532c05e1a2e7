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

Why two chains: Ed25519 verification costs ~0.1 ms in Python, so checking a
million signatures would take minutes. Because every line is bound into the
global chain and every actor's lines into that actor's chain, checking the
links of every line plus the signature of each actor's *last* line
authenticates the whole log (a forged or altered line would have to be
re-linked all the way to some actor's last, signed line). ``verify`` does that
fast pass and, if anything fails, an exact pass that checks every signature so
it can name the first bad entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import canonical
from core.crypto import sign
from core.errors import IntegrityError, StorageError
from core.fsutil import FILE_MODE, fsync_dir

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


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    first_bad: int | None = None  # seq (1-based index) of the first bad entry
    reason: str = ""
    torn_tail_bytes: int = 0
    head: Head = field(default_factory=Head)
    mode: str = "fast"

    def to_doc(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_bad": self.first_bad,
                "reason": self.reason, "torn_tail_bytes": self.torn_tail_bytes,
                "head": {"seq": self.head.seq, "hash": self.head.hash}}


class _Bad(Exception):
    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


def _learn_key(index: int, who: str, details: dict[str, Any], keys: dict[str, bytes]) -> None:
    pub = details.get("sign_pub")
    try:
        keys[who] = canonical.b64d(pub)  # type: ignore[arg-type]
    except IntegrityError:
        raise _Bad(index, "enrolment carries a malformed key") from None


def _check_line(index: int, raw: bytes, head: Head, keys: dict[str, bytes],
                last_sig_of: dict[str, tuple[int, bytes]] | None,
                exact: bool, founding: bool) -> Head:
    """Check one line against the head before it; return the head after it."""
    # The fast pass may use the C parser: every byte is bound by the hash
    # links, and anything odd sends verify to the strict, exact pass.
    try:
        entry = canonical.loads_canonical(raw) if exact else json.loads(raw)
    except IntegrityError as exc:
        raise _Bad(index, f"not a valid entry ({exc})") from None
    except ValueError:
        raise _Bad(index, "not a valid entry (not JSON)") from None
    if not isinstance(entry, dict):
        raise _Bad(index, "not a valid entry")
    if exact:
        try:
            canonical.require_fields(entry, ENTRY_FIELDS, "audit entry")
        except IntegrityError as exc:
            raise _Bad(index, str(exc)) from None
    if entry.get("seq") != index:
        raise _Bad(index, f"sequence number {entry.get('seq')!r} where {index} was expected")
    if entry.get("prev") != head.hash:
        raise _Bad(index, "does not chain to the entry before it (deleted, inserted or altered)")
    actor = entry.get("actor")
    if not isinstance(actor, str):
        raise _Bad(index, "has no actor")
    if entry.get("actor_prev") != head.actors.get(actor, GENESIS):
        raise _Bad(index, f"does not chain to {actor}'s previous entry")
    event = entry.get("event")
    details = entry.get("details")
    if (event == ENROL_EVENT and actor not in keys and entry.get("subject") == actor
            and isinstance(details, dict) and details.get("founder") is True
            and founding):
        # A founding operator vouches for themselves: nobody exists yet to do it.
        _learn_key(index, actor, details, keys)
    body = {k: entry[k] for k in entry if k not in ("hash", "sig")}
    digest = hashlib.sha256(canonical.dumps(body)).hexdigest() if exact else entry.get("hash")
    if exact and entry.get("hash") != digest:
        raise _Bad(index, "its hash does not match its content")
    sig = entry.get("sig")
    if actor == SYSTEM:
        if sig is not None or entry.get("event") not in SYSTEM_EVENTS:
            raise _Bad(index, "a system entry that is signed or not a system event")
    else:
        key = keys.get(actor)
        if key is None:
            raise _Bad(index, f"actor {actor!r} was never enrolled in this log")
        if not isinstance(sig, str) or not isinstance(digest, str):
            raise _Bad(index, "is not signed")
        if exact:
            try:
                ok = sign.verify(key, bytes.fromhex(digest), canonical.b64d(sig))
            except (ValueError, IntegrityError):
                ok = False
            if not ok:
                raise _Bad(index, f"signature is not {actor}'s")
        elif last_sig_of is not None:
            last_sig_of[actor] = (index, raw)
    if event == ENROL_EVENT and isinstance(details, dict):
        who = entry.get("subject")
        if isinstance(who, str) and who not in keys:
            _learn_key(index, who, details, keys)
    h = line_hash(raw)
    actors = head.actors
    actors[actor] = h
    return Head(index, h, head.offset + len(raw) + 1, actors)


def _check_final(index: int, raw: bytes, keys: dict[str, bytes]) -> None:
    """Exact check of one line's own content: canonical, hash, signature."""
    try:
        entry = canonical.loads_canonical(raw)
        canonical.require_fields(entry, ENTRY_FIELDS, "audit entry")
    except (IntegrityError, TypeError) as exc:
        raise _Bad(index, f"not a valid entry ({exc})") from None
    body = {k: entry[k] for k in entry if k not in ("hash", "sig")}
    digest = hashlib.sha256(canonical.dumps(body)).hexdigest()
    if entry["hash"] != digest:
        raise _Bad(index, "its hash does not match its content")
    actor = entry["actor"]
    if actor == SYSTEM:
        return
    key = keys.get(actor)
    sig = entry["sig"]
    try:
        ok = key is not None and isinstance(sig, str) and sign.verify(
            key, bytes.fromhex(digest), canonical.b64d(sig))
    except (ValueError, IntegrityError):
        ok = False
    if not ok:
        raise _Bad(index, f"signature is not {actor}'s")


def verify_log(log: AuditLog, state_head: Head | None = None,
               witness: Head | None = None) -> VerifyResult:
    """Verify the whole log; name the first bad entry (1-based seq)."""
    result = _verify_pass(log, exact=False)
    if result.ok:
        result = _check_heads(log, result, state_head, witness)
    if not result.ok and result.first_bad is not None and result.mode == "fast":
        exact = _verify_pass(log, exact=True)
        if not exact.ok:
            return exact
    return result


def _verify_pass(log: AuditLog, exact: bool) -> VerifyResult:
    head = Head()
    keys: dict[str, bytes] = {}
    last_sig: dict[str, tuple[int, bytes]] = {}
    index = 0
    last_raw = b""
    try:
        founding = True
        for _, raw in log.lines():
            index += 1
            head = _check_line(index, raw, head, keys, last_sig, exact, founding)
            last_raw = raw
            if founding and b'"founder":true' not in raw:
                founding = False
        if not exact:
            # The fast pass takes each line's ``hash`` field on trust. Every
            # other line is bound by the next line's ``prev``, so the lines
            # nothing links to are checked in full: each actor's last signed
            # line (its hash recomputed, its signature checked over that) and
            # the final line of the log.
            finals = dict(last_sig.values())
            if index:
                finals[index] = last_raw
            for i in sorted(finals):
                _check_final(i, finals[i], keys)
    except _Bad as bad:
        return VerifyResult(False, index, bad.index, f"entry {bad.index}: {bad.reason}",
                            mode="exact" if exact else "fast")
    torn = log.size() - head.offset
    return VerifyResult(True, index, None, "", torn, head, "exact" if exact else "fast")


def _check_heads(log: AuditLog, result: VerifyResult, state_head: Head | None,
                 witness: Head | None) -> VerifyResult:
    for name, ref in (("the vault state", state_head), ("this client's checkpoint", witness)):
        if ref is None or ref.seq == 0:
            continue
        if ref.seq > result.entries:
            result.ok = False
            result.first_bad = result.entries + 1
            result.reason = (f"the log ends at entry {result.entries} but {name} saw entry "
                             f"{ref.seq}: it was truncated or rolled back")
            result.mode = "head"
            return result
        raw = log.line_at(ref.offset - line_length_before(log, ref.offset))
        if raw is None or line_hash(raw) != ref.hash:
            result.ok = False
            result.first_bad = ref.seq
            result.reason = (f"entry {ref.seq} differs from the one {name} saw: "
                             "the log was rewritten or rolled back")
            result.mode = "head"
            return result
    return result


def line_length_before(log: AuditLog, offset: int) -> int:
    """Length (newline included) of the line that ends at byte ``offset``."""
    if offset <= 0:
        return 0
    start = max(0, offset - 65536)
    try:
        with open(log.path, "rb") as fh:
            fh.seek(start)
            chunk = fh.read(offset - start)
    except FileNotFoundError:
        return 0
    if not chunk.endswith(b"\n"):
        return 0
    return len(chunk) - (chunk.rfind(b"\n", 0, len(chunk) - 1) + 1)

