"""Moving a PostgreSQL vault back into a directory (``glasskey migrate --to DIR``).

The reverse of core/storage/postgres_import.py, with the same guarantees:

* **Nothing commits meanwhile.** The whole move runs inside one write
  transaction of the database vault: writers on every machine queue behind its
  lock until the vault is retired, and then are told where it went.
* **The same history, byte for byte.** Every audit row becomes the same line of
  ``audit.jsonl``, so each entry sits at the byte position the database
  backend already counted (core/storage/postgres_guard.RowLog): every client's
  checkpoint of this vault (kept by vault id) holds for the directory as it did
  for the database, and nobody re-verifies from genesis. The documents and the
  vault metadata (its identity and audit head) are copied as they are.
* **Verified before anything is retired.** The directory is written under a
  hidden name beside the target, verified in full there (every link and
  signature from genesis, the head, every document read back through the file
  backend's own checks), and only then renamed into place. A row the
  database's administrator edits during the move fails that verification
  (IntegrityError, exit 3): the staging copy is removed, the database is left
  as it was, nothing is retired.
* **Then the database is retired** in the same transaction: its metadata gains
  ``moved_to`` (postgres_schema.MOVED_KEY), and every client that still names
  the URL is refused with one sentence naming the directory, as a retired
  directory's MOVED note does. The commit also wakes every listener
  (NOTIFY), so a client following the vault learns it at once.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glasskey.core import canonical
from glasskey.core.audit import GENESIS, Head, line_hash
from glasskey.core.errors import IntegrityError, StorageError, UsageError
from glasskey.core.fsutil import fsync_dir
from glasskey.core.storage import postgres_guard as guard
from glasskey.core.storage import postgres_schema as schema
from glasskey.core.storage.files import FileStore
from glasskey.core.storage.interface import Doc
from glasskey.core.storage.postgres import PostgresStore
from glasskey.core.storage.postgres_txn import TABLES, Conn

#: Audit lines written per append (and per progress report).
BATCH = 5000
#: Metadata fields the file backend sets itself when it creates a vault.
OWN_FIELDS = ("seq", "schema", "format", schema.MOVED_KEY)
#: Called as (entries copied, entries in all); also once with 0 before the first line.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Exported:
    """What was moved out of the database, and where to."""

    directory: Path
    entries: int
    documents: int
    head_seq: int
    head_hash: str


def check_new_directory(target: Path) -> Path:
    """The absolute target directory, which must be new or empty (exit 2 otherwise):
    the move never mixes a vault into files that are already there."""
    target = Path(os.path.abspath(target))
    if target.is_symlink():
        raise UsageError(f"{target} is a symbolic link; name a new or empty directory")
    if target.exists():
        if not target.is_dir():
            raise UsageError(f"{target} exists and is not a directory")
        if any(target.iterdir()):
            raise UsageError(f"{target} is not empty; name a new or empty directory")
    return target


def move_to_directory(source: PostgresStore, target: Path, *,
                      progress: Progress | None = None) -> Exported:
    """Copy the database vault ``source`` into the new directory ``target``, verify it,
    and retire the database vault (one transaction: all of it, or none)."""
    target = check_new_directory(target)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.moving-{secrets.token_hex(4)}"
    renamed = False
    try:
        with source.transaction() as txn:  # verified to its head; every writer now waits
            meta, head = txn.meta, txn.head
            docs = {name: [(key, doc) for key, doc in txn.table(name).items()
                           if (name, key) != ("meta", "vault")]
                    for name in sorted(TABLES)}
            try:
                entries = _write_directory(FileStore(staging), txn.conn, meta, head, docs,
                                           progress)
                _verify_directory(FileStore(staging), meta, head, docs)
                check_new_directory(target)  # still new or empty: nobody wrote there since
                txn.set_meta(dict(meta, **{schema.MOVED_KEY: str(target)}))
                os.rename(staging, target)
                renamed = True
                fsync_dir(target.parent)
            except BaseException:
                if not renamed:
                    shutil.rmtree(staging, ignore_errors=True)
                raise
    except StorageError as exc:
        if renamed:  # only the COMMIT that retires the database failed (or may have)
            raise StorageError(
                f"{exc}. {target} holds a verified copy of the vault: if the database "
                "vault now says it moved there, use the directory; if not, remove "
                f"{target} and move again") from None
        raise
    return Exported(target, entries, sum(len(rows) for rows in docs.values()),
                    head.seq, head.hash)


def _write_directory(store: FileStore, conn: Conn, meta: Doc, head: Head,
                     docs: dict[str, list[tuple[str, Doc]]],
                     progress: Progress | None) -> int:
    """The vault metadata (identity and audit head), every audit line, then every
    document in one file-backend transaction (which checks the log against the head
    and this client's checkpoint before it writes)."""
    store.create({k: v for k, v in meta.items() if k not in OWN_FIELDS})
    if progress is not None:
        progress(0, head.seq)
    count, offset, last = 0, 0, GENESIS
    batch: list[bytes] = []
    for raw in guard.stream_lines(conn, 0, head.seq):
        batch.append(raw)
        count += 1
        last = line_hash(raw)
        if len(batch) >= BATCH:
            offset = _append(store, batch, offset)
            if progress is not None:
                progress(count, head.seq)
    offset = _append(store, batch, offset)
    if progress is not None and head.seq:
        progress(count, head.seq)
    if count != head.seq:
        raise IntegrityError(
            f"the database's audit table holds {count} entries, not the {head.seq} of the "
            "vault's head: rows were added or deleted during the move; nothing was retired")
    if (last, offset) != (head.hash, head.offset):
        raise IntegrityError(
            "the database's audit rows are not the ones verified at the start of the move "
            "(they do not end at the vault's head): rows were altered during the move; "
            "nothing was retired")
    with store.transaction() as ftxn:
        for name, rows in docs.items():
            table = ftxn.table(name)
            for key, doc in rows:
                table.put(key, doc)
    return count


def _append(store: FileStore, batch: list[bytes], offset: int) -> int:
    if not batch:
        return offset
    store.audit.append(batch, offset)
    offset += sum(len(raw) + 1 for raw in batch)
    batch.clear()
    return offset


def _verify_directory(store: FileStore, meta: Doc, head: Head,
                      docs: dict[str, list[tuple[str, Doc]]]) -> None:
    """Every link and signature from genesis, the head, and every document as the file
    backend reads it back: the directory must hold exactly what the database did."""
    result = store.verify_audit()
    if not result.ok or (result.head.seq, result.head.hash) != (head.seq, head.hash):
        reason = result.reason or "its head is not the database's"
        raise IntegrityError(f"the directory written from the database does not verify: "
                             f"{reason}; nothing was retired")
    with store.read() as check:
        copied = {k: v for k, v in check.meta.items() if k not in OWN_FIELDS}
        if canonical.dumps(copied) != canonical.dumps(
                {k: v for k, v in meta.items() if k not in OWN_FIELDS}):
            raise IntegrityError("the directory's vault metadata differs from the "
                                 "database's; nothing was retired")
        for name, rows in docs.items():
            found = {key: canonical.dumps(doc) for key, doc in check.table(name).items()
                     if (name, key) != ("meta", "vault")}
            if found != {key: canonical.dumps(doc) for key, doc in rows}:
                raise IntegrityError(f"the {name} table did not copy intact; nothing was "
                                     "retired")
