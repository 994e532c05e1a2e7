"""The PostgreSQL backend's guard on the audit chain: the same rules as the file
backend's (core/storage/guard.py), reading rows by sequence number.

The database is untrusted. Before any read or write a client checks, in order:

1. the newest audit row is the entry the vault metadata names as its head (rows
   past it were inserted; a head without its row means rows were deleted);
2. its own checkpoint (core/witness.py, in its state dir, never in the
   database): the vault did not move back past what it verified, and the entry
   at the checkpoint is still the one it verified (rollback, rewrite, reorder);
3. every entry after the checkpoint: canonical form, links, its actor's
   signature under the signed roster (core/chain.py, unchanged: ``RowLog``
   presents rows at the byte positions the chain code counts in);
4. the operator and kit documents say what the signed roster says.

Any failure is an IntegrityError (exit 3) naming what failed; nothing is read
or written on top of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from glasskey.core import witness
from glasskey.core.audit import GENESIS, Head, line_hash
from glasskey.core.chain import Checkpoint, Progress, VerifyResult, catch_up, verify_log
from glasskey.core.errors import IntegrityError
from glasskey.core.roster import check_table
from glasskey.core.storage import chainwrite
from glasskey.core.storage.postgres_txn import Conn, PgTransaction

if TYPE_CHECKING:
    from glasskey.core.storage.postgres import PostgresStore

#: Rows fetched per round trip when streaming the log.
FETCH = 2000


def line_at(conn: Conn, seq: int) -> bytes | None:
    row = conn.execute("SELECT line FROM glasskey.audit WHERE seq = %s", (seq,)).fetchone()
    return bytes(row[0]) if row else None


def stream_lines(conn: Conn, after: int, upto: int | None = None) -> Iterator[bytes]:
    """Lines of the entries after seq ``after`` (to ``upto``), in seq order, streamed
    with a server-side cursor (the caller holds a transaction)."""
    query = "SELECT line FROM glasskey.audit WHERE seq > %s"
    params: tuple[int, ...] = (after,)
    if upto is not None:
        query += " AND seq <= %s"
        params = (after, upto)
    with conn.cursor(name="glasskey_audit_stream") as cur:
        cur.itersize = FETCH
        cur.execute(query + " ORDER BY seq", params)
        for (line,) in cur:
            yield bytes(line)


class RowLog:
    """Audit rows behind the chain code's ``LineSource``: an entry's position is the
    bytes of the lines before it (newline included), as in audit.jsonl.

    Positions are known for the heads this client was given (its checkpoint,
    the metadata's head); reading starts and stops there by sequence number.
    The positions are labels only: verification checks seq, links and hashes.
    """

    def __init__(self, conn: Conn, heads: Iterable[Head]) -> None:
        self._conn = conn
        self._seq_at: dict[int, int] = {0: 0}
        for head in heads:
            known = self._seq_at.setdefault(head.offset, head.seq)
            if known != head.seq:
                raise IntegrityError(
                    f"the vault's audit head (entry {head.seq}) is inconsistent with entry "
                    f"{known}: the vault metadata was altered")
        self._size = max(self._seq_at)

    def _seq(self, offset: int) -> int:
        seq = self._seq_at.get(offset)
        if seq is None:
            raise IntegrityError("the audit log was read at a position no verified head "
                                 "names (internal)")
        return seq

    def lines_from(self, offset: int, stop: int | None = None
                   ) -> Iterator[tuple[int, bytes]]:
        pos = offset
        upto = self._seq(stop) if stop is not None else None
        for raw in stream_lines(self._conn, self._seq(offset), upto):
            pos += len(raw) + 1
            yield pos, raw

    def size(self) -> int:
        return self._size

    def line_ending_at(self, offset: int) -> bytes | None:
        seq = self._seq_at.get(offset)
        return line_at(self._conn, seq) if seq else None


def check_tail(conn: Conn, head: Head) -> None:
    """The newest audit row is the entry the metadata names (step 1)."""
    row = conn.execute(
        "SELECT seq, line FROM glasskey.audit ORDER BY seq DESC LIMIT 1").fetchone()
    last = int(row[0]) if row else 0
    if last > head.seq:
        raise IntegrityError(
            f"the audit table holds entries past the vault's head (entry {head.seq} < "
            f"{last}): rows were inserted outside glasskey")
    if last < head.seq:
        raise IntegrityError(
            f"the audit table ends at entry {last} but the vault's head is entry "
            f"{head.seq}: rows were deleted")
    if row is not None and line_hash(bytes(row[1])) != head.hash:
        raise IntegrityError(
            f"audit entry {head.seq} is not the one the vault's head names: the log or the "
            "metadata was altered")


def check_witness(store: PostgresStore, txn: PgTransaction) -> Checkpoint:
    """Refuse a vault older than (or forked from) what this client verified (step 2)."""
    return chainwrite.check_witness(store.location, str(txn.meta["vault_id"]), txn.head,
                                    lambda seen: line_at(txn.conn, seen.seq))


def verify_to_head(txn: PgTransaction, start: Checkpoint) -> None:
    """Verify the entries after ``start`` and adopt the signed roster (steps 3, 4)."""
    log = RowLog(txn.conn, (start.head, txn.head))
    cp = catch_up(log, start, txn.head, str(txn.meta["vault_id"]))
    txn.roster = cp.roster
    operators, kits = txn.table("operators").values(), txn.table("kits").values()
    if cp.roster.founded:
        check_table(cp.roster, operators, kits)
    elif any(True for _ in operators):
        raise IntegrityError("operator records exist but the vault has no signed founding")


def guard(store: PostgresStore, txn: PgTransaction) -> None:
    """Steps 1-4 on a freshly opened transaction."""
    check_tail(txn.conn, txn.head)
    verify_to_head(txn, check_witness(store, txn))


def check_prefix(conn: Conn, upto: Head) -> VerifyResult | None:
    """Are the entries up to ``upto`` still the ones this client verified? (None: yes.)

    The row version of core/chain.check_prefix: each line's SHA-256 must be the next
    line's ``prev`` and the last one ``upto.hash``.
    """
    prev = GENESIS
    index = 0
    for raw in stream_lines(conn, 0, upto.seq):
        index += 1
        at = raw.rfind(b'"prev":"')
        claimed = raw[at + 8:at + 72].decode("ascii", "replace") if at >= 0 else "-"
        if claimed != prev:
            return VerifyResult(False, index, index,
                                f"audit entry {index} was altered after this client verified "
                                "it (it no longer chains to the entry before it)",
                                mode="incremental")
        prev = hashlib.sha256(raw).hexdigest()
    if index != upto.seq or prev != upto.hash:
        return VerifyResult(False, index, min(index + 1, upto.seq),
                            f"the log up to entry {upto.seq} is not the one this client "
                            "verified: it was rewritten or rolled back", mode="incremental")
    return None


def verify_audit(store: PostgresStore, conn: Conn, meta: dict[str, Any], *,
                 incremental: bool, progress: Progress | None) -> VerifyResult:
    """Every link and signature (incremental: from this client's checkpoint, with a
    hash-only check of the entries before it); a verified head becomes the checkpoint."""
    head = Head.from_doc(meta.get("audit"))
    vault_id = str(meta["vault_id"])
    loaded = witness.load_checkpoint(vault_id)
    seen = loaded[0] if loaded else None
    heads = [head] + ([seen] if seen is not None else [])
    try:
        log = RowLog(conn, heads)
    except IntegrityError as exc:
        return VerifyResult(False, 0, None, str(exc), mode="head")
    start = None
    if incremental and loaded is not None and loaded[1] is not None:
        start = Checkpoint(loaded[0], loaded[1])
        altered = check_prefix(conn, start.head)
        if altered is not None:
            full = verify_log(log, vault_id=vault_id, state_head=head, witness=seen,
                              progress=progress)
            return full if not full.ok else altered
    result = verify_log(log, vault_id=vault_id, state_head=head, witness=seen,
                        progress=progress, start=start)
    result.mode = "incremental" if start is not None else "full"
    if result.ok and (result.head.seq, result.head.hash) != (head.seq, head.hash):
        result.ok = False
        result.first_bad = min(result.head.seq, head.seq) + 1
        result.reason = (f"the audit table ends at entry {result.head.seq} but the vault's "
                         f"head is entry {head.seq}: rows were inserted or deleted")
        result.mode = "head"
    if result.ok and result.roster.founded:
        witness.check_pin(store.location, vault_id)
        witness.save(vault_id, result.head, result.roster)
    return result
