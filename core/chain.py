"""Verifying the audit chain: every link, every signature, the roster folded as we go.

Two uses share one routine:

* **Catch-up** (every client, before it reads or appends): from the client's
  own checkpoint (core/witness.py) to the head the state names, every new
  entry is checked in full — canonical form, hash, links, its actor's
  signature under the key the *signed roster* gives at that point — and the
  roster changes it carries are applied. Nothing is built on an entry this
  client has not verified, and roles, keys and statuses come from here, never
  from ``vault.json``.
* **Full verify** (``glasskey audit verify``): the same from genesis. Links and
  roster changes are checked sequentially (cheap); the ~10^6 signatures are
  checked in parallel across cores with libsodium (PyNaCl, ~55 us each against
  ~100 us with ``cryptography`` on this machine), with progress.

The result names the first bad entry by its sequence number.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Protocol

from glasskey.core import canonical
from glasskey.core.audit import (
    ENTRY_FIELDS,
    GENESIS,
    SYSTEM,
    SYSTEM_EVENTS,
    AuditLog,
    Head,
    line_hash,
)
from glasskey.core.errors import IntegrityError
from glasskey.core.roster import (
    CHANGE_EVENTS,
    FOUNDED_EVENT,
    Roster,
    apply_change,
    apply_founding,
    vault_id_for,
)
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

Progress = Callable[[int, int], None]
#: Below this many signatures, forking workers costs more than it saves.
PARALLEL_MIN = 5_000
#: Above this many bytes the prefix hash check is split over worker processes.
PREFIX_PARALLEL_BYTES = 64 << 20


class LineSource(Protocol):
    """The audit lines verification reads: audit.jsonl (``AuditLog``) or a database
    backend's rows behind the same byte-position addressing (an entry's position is
    the sum of the lengths of the lines before it, newline included, whatever the
    medium)."""

    def lines_from(self, offset: int, stop: int | None = None
                   ) -> Iterator[tuple[int, bytes]]: ...

    def size(self) -> int: ...

    def line_ending_at(self, offset: int) -> bytes | None: ...


@dataclass
class Checkpoint:
    """A verified position of the chain and the roster as of that position."""

    head: Head = field(default_factory=Head)
    roster: Roster = field(default_factory=Roster)


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    first_bad: int | None = None  # seq (1-based index) of the first bad entry
    reason: str = ""
    torn_tail_bytes: int = 0
    head: Head = field(default_factory=Head)
    mode: str = "full"
    signatures: int = 0
    backwards_times: list[int] = field(default_factory=list)
    roster: Roster = field(default_factory=Roster)

    def to_doc(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_bad": self.first_bad,
                "reason": self.reason, "torn_tail_bytes": self.torn_tail_bytes,
                "signatures_checked": self.signatures, "mode": self.mode,
                "times_backwards": self.backwards_times[:20],
                "head": {"seq": self.head.seq, "hash": self.head.hash}}


class BadEntry(IntegrityError):
    """Entry ``index`` fails verification; the message names it."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"audit entry {index} {reason}")
        self.index = index
        self.reason = reason


#: (index, public key, message, signature) of a signature still to check.
SigJob = tuple[int, bytes, bytes, bytes]


def _verify_jobs(jobs: Sequence[SigJob]) -> int | None:
    """The first index whose signature fails, else None (runs in workers too)."""
    keys: dict[bytes, VerifyKey] = {}
    for index, pub, msg, sig in jobs:
        key = keys.get(pub)
        if key is None:
            try:
                key = keys[pub] = VerifyKey(pub)
            except (ValueError, TypeError):
                return index
        try:
            key.verify(msg, sig)
        except (BadSignatureError, ValueError, TypeError):
            return index
    return None


class SignatureChecker:
    """Signatures queued during the link pass, checked by worker processes as they come.

    Small batches are checked in this process at the end; past PARALLEL_MIN
    queued signatures, chunks go to a pool of workers (one per core) while the
    link pass goes on, so linking and verifying overlap.
    """

    CHUNK = 10_000

    def __init__(self, progress: Progress | None = None, expected: int = 0) -> None:
        self.jobs: list[SigJob] = []
        self.count = 0
        self.progress = progress
        self.expected = expected
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Any] = []
        self._bad: int | None = None

    def add(self, job: SigJob) -> None:
        self.jobs.append(job)
        self.count += 1
        if len(self.jobs) >= self.CHUNK and (self._pool is not None
                                             or self.count >= PARALLEL_MIN):
            self._submit()

    def _submit(self) -> None:
        workers = min(os.cpu_count() or 1, 8)
        if self._pool is None:
            if workers < 2:
                self._note(_verify_jobs(self.jobs))
                self.jobs = []
                return
            # fork is cheap (no re-import); a process with other threads (the TUI)
            # must not fork, so it pays for a fork server instead.
            method = "fork" if threading.active_count() == 1 else "forkserver"
            self._pool = ProcessPoolExecutor(workers, mp_context=get_context(method))
        self._futures.append((len(self.jobs), self._pool.submit(_verify_jobs, self.jobs)))
        self.jobs = []

    def _note(self, bad: int | None) -> None:
        if bad is not None and (self._bad is None or bad < self._bad):
            self._bad = bad

    def finish(self) -> int | None:
        """The lowest index whose signature fails, else None."""
        try:
            if self._pool is not None and self.jobs:
                self._submit()
            elif self.jobs:
                self._note(_verify_jobs(self.jobs))
                self.jobs = []
            done = 0
            total = max(self.count, 1)
            for size, future in self._futures:
                self._note(future.result())
                done += size
                if self.progress:
                    self.progress(done, total)
            if self.progress and not self._futures:
                self.progress(total, total)
            return self._bad
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)

    def abandon(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def _parse(index: int, raw: bytes, exact: bool) -> dict[str, Any]:
    try:
        entry = canonical.loads_canonical(raw) if exact else json.loads(raw)
    except IntegrityError as exc:
        raise BadEntry(index, f"is not a valid entry ({exc})") from None
    except ValueError:
        raise BadEntry(index, "is not a valid entry (not JSON)") from None
    if not isinstance(entry, dict):
        raise BadEntry(index, "is not a valid entry")
    try:
        canonical.require_fields(entry, ENTRY_FIELDS, "audit entry")
    except IntegrityError as exc:
        raise BadEntry(index, str(exc)) from None
    return entry


def step(index: int, raw: bytes, cp: Checkpoint, vault_id: str | None, *, exact: bool,
         deferred: SignatureChecker | None) -> Checkpoint:
    """Check one line after ``cp``; return the checkpoint after it.

    With ``deferred`` the entry's own signature is queued instead of checked
    (the full verify checks them in parallel); roster changes are always
    checked here, since later entries depend on them.
    """
    head, roster = cp.head, cp.roster
    entry = _parse(index, raw, exact)
    if entry["seq"] != index:
        raise BadEntry(index, f"has sequence number {entry['seq']!r} where {index} was expected")
    if entry["prev"] != head.hash:
        raise BadEntry(index, "does not chain to the entry before it (deleted, inserted or "
                              "altered)")
    actor = entry["actor"]
    if not isinstance(actor, str):
        raise BadEntry(index, "has no actor")
    if entry["actor_prev"] != head.actors.get(actor, GENESIS):
        raise BadEntry(index, f"does not chain to {actor}'s previous entry")
    digest = entry["hash"]
    if exact:
        body = {k: entry[k] for k in entry if k not in ("hash", "sig")}
        if digest != hashlib.sha256(canonical.dumps(body)).hexdigest():
            raise BadEntry(index, "has a hash that does not match its content")
    if not isinstance(digest, str) or len(digest) != 64:
        raise BadEntry(index, "has a malformed hash")
    event, details = entry["event"], entry["details"]
    if not isinstance(details, dict):
        raise BadEntry(index, "has malformed details")
    try:
        if index == 1:
            if event != FOUNDED_EVENT:
                raise IntegrityError(
                    "is not the vault's signed founding (a vault made by glasskey 0.1, whose "
                    "roster was never signed? create a new vault and import its credentials)")
            founding = details.get("founding")
            vid = vault_id
            if vid is None and isinstance(founding, dict):
                vid = vault_id_for(founding)
            roster = apply_founding(str(vid), details)
            if actor not in roster.members:
                raise IntegrityError("is a founding written by a non-founder")
        elif event == FOUNDED_EVENT:
            raise IntegrityError("is a second founding of the vault")
        elif event in CHANGE_EVENTS:
            sigs = details.get("sigs")
            if not isinstance(sigs, dict) or actor not in sigs:
                raise IntegrityError(f"is a roster event ({event}) its actor did not sign")
    except IntegrityError as exc:
        raise BadEntry(index, str(exc).removeprefix("the ")) from None
    sig = entry["sig"]
    if actor == SYSTEM:
        if sig is not None or event not in SYSTEM_EVENTS:
            raise BadEntry(index, "is a system entry that is signed or not a system event")
    else:
        key = roster.sign_key(actor)
        if key is None:
            raise BadEntry(index, f"is by {actor!r}, who is not an operator of this vault "
                                  "(never enrolled by signed events, or removed)")
        try:
            if not isinstance(sig, str):
                raise ValueError("unsigned")
            # The exact pass insists on canonical base64; the linked pass needs only
            # the bytes (any other spelling changes the line, which the links bind).
            sig_raw = canonical.b64d(sig) if exact else binascii.a2b_base64(sig)
            msg = bytes.fromhex(digest)
        except (IntegrityError, ValueError, binascii.Error):
            raise BadEntry(index, "is not signed") from None
        if deferred is not None:
            deferred.add((index, key, msg, sig_raw))
        elif _verify_jobs([(index, key, msg, sig_raw)]) is not None:
            raise BadEntry(index, f"carries a signature that is not {actor}'s")
    if event in CHANGE_EVENTS and index != 1:
        try:
            roster = apply_change(roster, details, CHANGE_EVENTS[event])
        except IntegrityError as exc:
            raise BadEntry(index, f"is an invalid roster change: {exc}") from None
    h = line_hash(raw)
    actors = dict(head.actors)
    actors[actor] = h
    return Checkpoint(Head(index, h, head.offset + len(raw) + 1, actors), roster)


def catch_up(log: LineSource, start: Checkpoint, target: Head, vault_id: str) -> Checkpoint:
    """Verify every entry after ``start`` up to the state's head ``target``.

    Raises BadEntry naming the first entry that fails, or IntegrityError when
    the log does not reach ``target`` exactly.
    """
    cp = start
    if target.seq < cp.head.seq:
        raise IntegrityError(
            f"the vault was rolled back: this client verified audit entry {cp.head.seq}, "
            f"the vault now ends at {target.seq}")
    if target.seq == cp.head.seq:
        if target.hash != cp.head.hash:
            raise IntegrityError(
                f"the audit log was rewritten: entry {cp.head.seq} differs from the one this "
                "client verified (a forked or rolled-back vault)")
        return cp
    result = _pass(log, vault_id, cp, False, None, stop=target.offset)
    if not result.ok:
        # Name the first bad entry exactly (canonical form and hash of every line).
        exact = _pass(log, vault_id, cp, True, None, stop=target.offset)
        bad = exact if not exact.ok else result
        raise IntegrityError(bad.reason)  # "audit entry N ..." names it
    if result.head.seq != target.seq or result.head.hash != target.hash:
        raise IntegrityError(
            f"the audit log does not hold entry {target.seq} where the vault state says it "
            "ends: the log or the state was altered")
    return Checkpoint(result.head, result.roster)


def _link_chunk(args: tuple[str, int, int]) -> tuple[int, bytes, bytes, int | None]:
    """Lines in [start, stop) of the file at ``path``: (lines, first prev, last hash,
    index within the chunk of the first line whose ``prev`` is not the line before's)."""
    path, start, stop = args
    first = b""
    prev = b""
    count = 0
    bad: int | None = None
    with open(path, "rb") as fh:
        fh.seek(start)
        pos = start
        for raw in fh:
            if pos >= stop:
                break
            pos += len(raw)
            line = raw[:-1]
            at = line.rfind(b'"prev":"')
            claimed = line[at + 8:at + 72] if at >= 0 else b"-"
            if count == 0:
                first = claimed
            elif claimed != prev and bad is None:
                bad = count
            prev = hashlib.sha256(line).hexdigest().encode()
            count += 1
    return count, first, prev, bad


def _line_starts(path: str, stop: int, parts: int) -> list[int]:
    """``parts`` byte offsets in [0, stop) at line starts (the first is 0)."""
    out = [0]
    with open(path, "rb") as fh:
        for i in range(1, parts):
            fh.seek(stop * i // parts)
            fh.readline()
            at = fh.tell()
            if out[-1] < at < stop:
                out.append(at)
    return out


def check_prefix(log: AuditLog, upto: Head) -> VerifyResult | None:
    """Are the lines up to ``upto`` still the ones a client verified? (None: yes.)

    Every signature before ``upto`` was checked when this client verified it;
    what could have changed since is the bytes. Each line's SHA-256 must be the
    next line's ``prev`` and the last one ``upto.hash``: with the line at the
    checkpoint unchanged, that proves the whole prefix unchanged, at the cost of
    hashing it (no JSON, no signatures), in byte ranges across the cores.
    ``prev`` is the top-level key found last in a canonical line (keys sorted;
    only strings and numbers follow it).
    """
    path = str(log.path)
    workers = min(os.cpu_count() or 1, 8) if upto.offset > PREFIX_PARALLEL_BYTES else 1
    starts = _line_starts(path, upto.offset, workers)
    ranges = [(path, a, b) for a, b in zip(starts, [*starts[1:], upto.offset], strict=True)]
    if len(ranges) > 1 and threading.active_count() == 1:
        with ProcessPoolExecutor(len(ranges), mp_context=get_context("fork")) as pool:
            results = list(pool.map(_link_chunk, ranges))
    else:
        results = [_link_chunk(r) for r in ranges]
    prev = GENESIS.encode()
    index = 0
    for count, first, last, bad in results:
        if count and first != prev:
            bad = 0
        if bad is not None:
            n = index + bad + 1
            return VerifyResult(False, n, n,
                                f"audit entry {n} was altered after this client verified it "
                                "(it no longer chains to the entry before it)",
                                mode="incremental")
        index += count
        prev = last if count else prev
    if index != upto.seq or prev.decode() != upto.hash:
        return VerifyResult(False, index, min(index + 1, upto.seq),
                            f"the log up to entry {upto.seq} is not the one this client "
                            "verified: it was rewritten or rolled back", mode="incremental")
    return None


def verify_log(log: LineSource, *, vault_id: str | None = None, state_head: Head | None = None,
               witness: Head | None = None, progress: Progress | None = None,
               start: Checkpoint | None = None) -> VerifyResult:
    """Verify the log from ``start`` (default genesis): every link and every signature.

    The first pass reads lines with the C JSON parser and takes each line's
    ``hash`` field as given (every line is bound by the next one's ``prev``;
    the last line is checked exactly). If it finds a fault, an exact pass
    (canonical form and hash of every line) names the first bad entry.
    ``progress(done, total)`` is called with bytes read during the link pass
    and with signatures during the signature pass.
    """
    result = _pass(log, vault_id, start or Checkpoint(), False, progress)
    if not result.ok and result.first_bad is not None:
        exact = _pass(log, vault_id, start or Checkpoint(), True, None)
        if not exact.ok:
            return exact
    if not result.ok:
        return result
    return _check_heads(log, result, state_head, witness)


def _pass(log: LineSource, vault_id: str | None, cp: Checkpoint, exact: bool,
          progress: Progress | None, stop: int | None = None) -> VerifyResult:
    total_bytes = max(1, log.size())
    deferred = SignatureChecker(progress)
    index = cp.head.seq
    last_time = ""
    backwards: list[int] = []
    last_raw = b""
    try:
        for _, raw in log.lines_from(cp.head.offset, stop):
            index += 1
            last_raw = raw
            # The exact pass checks signatures in order, so it names the first fault.
            cp = step(index, raw, cp, vault_id, exact=exact,
                      deferred=None if exact else deferred)
            t = _time_of(raw)
            if t < last_time:
                backwards.append(index)
            last_time = max(last_time, t)
            if progress and index % 20_000 == 0:
                progress(cp.head.offset, total_bytes)
        if last_raw and not exact:
            # Nothing links to the final line: check its content exactly.
            entry = _parse(index, last_raw, exact=True)
            body = {k: v for k, v in entry.items() if k not in ("hash", "sig")}
            if entry["hash"] != hashlib.sha256(canonical.dumps(body)).hexdigest():
                raise BadEntry(index, "has a hash that does not match its content")
        bad = deferred.finish()
        if bad is not None:
            raise BadEntry(bad, "carries a signature that is not its actor's")
    except BadEntry as exc:
        deferred.abandon()
        return VerifyResult(False, index, exc.index, str(exc), signatures=deferred.count,
                            backwards_times=backwards, mode="exact" if exact else "full")
    return VerifyResult(True, index, None, "", log.size() - cp.head.offset, cp.head,
                        signatures=deferred.count, backwards_times=backwards,
                        roster=cp.roster, mode="exact" if exact else "full")


def _time_of(raw: bytes) -> str:
    i = raw.find(b'"time":"')
    return raw[i + 8:i + 28].decode("ascii", "replace") if i >= 0 else ""


def _check_heads(log: LineSource, result: VerifyResult, state_head: Head | None,
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
        raw = log.line_ending_at(ref.offset)
        if raw is None or line_hash(raw) != ref.hash:
            result.ok = False
            result.first_bad = ref.seq
            result.reason = (f"entry {ref.seq} differs from the one {name} saw: "
                             "the log was rewritten or rolled back")
            result.mode = "head"
            return result
    return result
