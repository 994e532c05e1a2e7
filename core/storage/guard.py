"""The file backend's guard on the audit chain: the witness check, catch-up verification,
recovery of an appended-but-uncommitted tail, and the ``verify`` a front asks for.

Everything here works with byte offsets into audit.jsonl (``Head.offset``):
they never leave the file backend; callers see ``AuditCursor``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glasskey.core import canonical, witness
from glasskey.core.audit import SYSTEM_SIGNER, Head, line_hash, line_length_before
from glasskey.core.chain import (
    Checkpoint,
    Progress,
    VerifyResult,
    catch_up,
    check_prefix,
    verify_log,
)
from glasskey.core.errors import IntegrityError
from glasskey.core.roster import adopt_status, check_table
from glasskey.core.storage import chainwrite
from glasskey.core.storage.chainwrite import time_and_actor

if TYPE_CHECKING:
    from glasskey.core.storage.files import FileStore
    from glasskey.core.storage.transaction import FileTransaction


def newest_entry(store: FileStore, head: Head) -> tuple[float, str] | None:
    """(time, actor) of the entry that ends at ``head``, or None for an empty log."""
    raw = _line_ending_at(store, head) if head.seq > 0 and head.offset > 0 else None
    return None if raw is None else time_and_actor(raw, head.seq)


def _line_ending_at(store: FileStore, head: Head) -> bytes | None:
    return store.audit.line_at(head.offset - line_length_before(store.audit, head.offset))


def check_witness(store: FileStore, txn: FileTransaction) -> Checkpoint:
    """Refuse a state older than (or forked from) the last head this client verified
    (core/storage/chainwrite.py); returns where verification resumes."""
    return chainwrite.check_witness(store.root, str(txn.meta["vault_id"]), txn.head,
                                    lambda seen: _line_ending_at(store, seen))


def verify_to_head(store: FileStore, txn: FileTransaction, start: Checkpoint, *,
                    adopted: bool = False) -> None:
    """Verify every entry this client has not yet verified; adopt the signed roster."""
    cp = catch_up(store.audit, start, txn.head, str(txn.meta["vault_id"]))
    txn.roster = cp.roster
    if adopted and cp.roster.founded:
        ops, kits = adopt_status(cp.roster, txn._small("operators").values(),
                                 txn._small("kits").values())
        for doc in ops:
            txn._small("operators").put(doc["name"], doc)
        for doc in kits:
            txn._small("kits").put(doc["id"], doc)
    if cp.roster.founded:
        check_table(cp.roster, txn._small("operators").values(), txn._small("kits").values())
    elif len(txn._small("operators")):
        raise IntegrityError("operator records exist but the vault has no signed founding")

def recover_audit(store: FileStore, txn: FileTransaction, start: Checkpoint) -> None:
    """Adopt an appended-but-uncommitted tail (verified like any entry); quarantine a
    torn one."""
    check_head_line(store, txn.head)
    extra, partial = store.audit.recover_tail(txn.head)
    if extra:
        head = txn.head
        for item in extra:
            entry, raw = item["entry"], item["line"]
            actors = dict(head.actors)
            actors[entry["actor"]] = line_hash(raw)
            head = Head(entry["seq"], line_hash(raw), head.offset + len(raw) + 1, actors)
        first = txn.head.seq + 1
        txn.head = head
        txn._start_offset = head.offset
    verify_to_head(store, txn, start, adopted=bool(extra))
    if extra:
        txn.record(SYSTEM_SIGNER, "audit.uncommitted", "audit",
                   {"first": first, "last": head.seq,
                    "note": "recorded, but the state change they describe did not commit"})
    if partial is not None:
        txn.record(SYSTEM_SIGNER, "audit.tail-quarantined", "audit",
                   {"bytes": len(partial), "dir": "audit.quarantine"})

def check_head_line(store: FileStore, head: Head) -> None:
    """The line ending at the state's head offset is the one the state names."""
    if head.seq == 0:
        return
    size = store.audit.size()
    if size < head.offset:
        raise IntegrityError(
            f"the audit log is shorter than the vault state records "
            f"({size} < {head.offset} bytes): it was truncated"
        )
    raw = store.audit.line_at(head.offset - line_length_before(store.audit, head.offset))
    seq = None
    if raw is not None and line_hash(raw) == head.hash:
        try:
            seq = canonical.loads(raw).get("seq")
        except (IntegrityError, AttributeError):
            seq = None
    if seq != head.seq:
        raise IntegrityError(
            f"the audit log does not hold entry {head.seq} where the vault state "
            "says it ends: the log or the state was altered"
        )


def verify_audit(store: FileStore, *, incremental: bool = False,
                 progress: Progress | None = None) -> VerifyResult:
    """Every link and every signature of the log. A verified head is remembered:
    a reader is a witness too.

    ``incremental``: signatures only after this client's last verified
    checkpoint, and for the lines before it a hash-only check that they are
    still the bytes it verified (core/chain.check_prefix) — sound, and a
    fraction of the full cost; a client without a checkpoint verifies all.
    """
    # Read the state without the open-time witness check: verification must
    # report *where* the log went wrong, not just refuse to look at it.
    meta = store.unverified_meta()
    head = Head.from_doc(meta.get("audit"))
    vault_id = str(meta["vault_id"])
    loaded = witness.load_checkpoint(vault_id)
    seen = loaded[0] if loaded else None
    start = None
    if incremental and loaded is not None and loaded[1] is not None:
        start = Checkpoint(loaded[0], loaded[1])
        altered = check_prefix(store.audit, start.head)
        if altered is not None:
            # Something changed: the full pass names the first bad entry exactly.
            full = verify_log(store.audit, vault_id=vault_id, state_head=head,
                              witness=seen, progress=progress)
            return full if not full.ok else altered
    result = verify_log(store.audit, vault_id=vault_id, state_head=head,
                        witness=seen, progress=progress, start=start)
    result.mode = "incremental" if start is not None else "full"
    # Remember only what the state committed: lines past its head (an append
    # whose commit was lost) are adopted, or not, by the next writer.
    if result.ok and result.roster.founded and result.head.seq == head.seq \
            and result.head.hash == head.hash:
        witness.check_pin(store.root, vault_id)
        witness.save(vault_id, result.head, result.roster)
    return result
