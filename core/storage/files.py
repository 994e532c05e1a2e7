"""The file backend: a vault directory of TinyDB documents inside transactions
glasskey owns.

Layout (see docs/storage.md):

* ``vault.json`` is a TinyDB database holding the small, hot tables (``meta``,
  ``operators``, ``active``, ``manifest``). TinyDB is used purely as the
  in-memory document model: its storage is the transaction's parsed copy, and
  glasskey does all file I/O itself (RELIABILITY.md, "TinyDB, safely").
* Large tables (credentials, sealed key material, requests) are split into
  shards, each an immutable, content-addressed JSON file under ``tables/``;
  ``vault.json`` names the current file of every shard with its SHA-256. A
  write rewrites only the shards it touched, then commits by atomically
  replacing ``vault.json``: one rename is the commit point for the whole
  transaction, so a crash leaves the before or the after state.
* ``vault.json.bak`` is the previous generation; shard files referenced by
  neither generation are removed after commit. (A write thus costs a few shard
  files and one small ``vault.json``, not tens of megabytes: BENCHMARKS.md.)

Concurrency: writers hold the exclusive ``flock`` for the whole
read-modify-write and re-read the state inside it, so a writer with a stale
view never overwrites. Readers take no lock: ``vault.json`` is replaced
atomically and shards are immutable, so a reader sees one consistent
generation (if two commits collect a shard of its generation under it, it
gets a StorageError asking to try again).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glasskey.core import canonical, witness
from glasskey.core.audit import AuditLog, Head
from glasskey.core.chain import Progress, VerifyResult
from glasskey.core.errors import (
    GlasskeyError,
    IntegrityError,
    NotFoundError,
    StorageError,
    UsageError,
)
from glasskey.core.fsutil import (
    VaultLock,
    atomic_write,
    ensure_private_dir,
    read_file,
    write_new,
)
from glasskey.core.storage import guard, manifest
from glasskey.core.storage.audit_read import CursorReader
from glasskey.core.storage.interface import (
    AuditCursor,
    Doc,
    RefusalHeld,
    Transaction,
    run_before_commit,
)
from glasskey.core.storage.manifest import (
    BACKUP_FILE,
    FORMAT,
    GROUPS_KEY,
    LOCK_FILE,
    SCHEMA_VERSION,
    SMALL_TABLES,
    STATE_FILE,
    TABLE_SHARDS,
    TABLES_DIR,
    TableLayout,
    check_group,
    group_file,
    manifest_files,
    parse_state,
    refuse_constant,
    shard_file,
    state_layout,
)
from glasskey.core.storage.migrate import migrate
from glasskey.core.storage.transaction import FileTransaction, ShardGone
from glasskey.core.text import printable

#: Left by 'glasskey migrate' in place of vault.json: where the vault went.
MOVED_FILE = "MOVED"


class FileStore(CursorReader):
    """A vault directory: vault.json, its shards and audit.jsonl (``Store`` Protocol)."""

    def __init__(self, root: Path, lock_timeout: float = 10.0) -> None:
        self.root = root
        self.state_path = root / STATE_FILE
        self.backup_path = root / BACKUP_FILE
        self.tables_dir = root / TABLES_DIR
        self.lock = VaultLock(root / LOCK_FILE, timeout=lock_timeout)
        self._shard_cache: dict[str, dict[str, Doc]] = {}
        self._group_cache: dict[str, dict[str, str]] = {}
        self._cursors: dict[AuditCursor, int] = {}
        self._thread_lock = threading.RLock()
        self.audit = AuditLog(root)
        self._seq_seen: tuple[tuple[int, int, int], int] | None = None
        self.now: Callable[[], float] = time.time
        #: Test hook: called with a step name at each commit step (crash tests).
        self.fault: Callable[[str], None] | None = None
        #: Called with each committed write transaction once the vault lock is
        #: released (core/notify.py delivers notifications there: a slow
        #: receiver must never hold the lock). Never raises into the caller.
        self.on_unlock: Callable[[Transaction], None] | None = None
        #: Called with each write transaction that recorded entries, just before it
        #: commits (core/notify.py queues its deliveries there, in the same commit,
        #: so a crash after the commit loses none). Never raises into the caller.
        self.before_commit: Callable[[Transaction], None] | None = None
        self._unlocked: list[FileTransaction] = []
        self._swept = False

    # -- creation ---------------------------------------------------------------
    def create(self, meta: Doc) -> None:
        ensure_private_dir(self.root)
        ensure_private_dir(self.tables_dir)
        with self.lock:
            if self.state_path.exists():
                raise UsageError(f"a vault already exists at {self.root}")
            state: dict[str, dict[str, Any]] = {name: {} for name in SMALL_TABLES}
            state["meta"]["vault"] = dict(meta, schema=SCHEMA_VERSION, format=FORMAT, seq=0)
            atomic_write(self.state_path, canonical.dumps(state))
            self.audit.ensure()

    def exists(self) -> bool:
        return self.state_path.exists()

    # -- reading ------------------------------------------------------------------
    def _read_state(self) -> dict[str, Any]:
        try:
            raw = read_file(self.state_path)
        except FileNotFoundError:
            moved = self.root / MOVED_FILE
            if moved.is_file():  # 'glasskey migrate' retired this directory
                where = printable(moved.read_text(encoding="utf-8", errors="replace")[:300])
                raise NotFoundError(f"the vault at {self.root} moved to {where.strip()}; "
                                    "open it with --vault URL") from None
            raise NotFoundError(
                f"no vault at {self.root} (create one with 'glasskey init')"
            ) from None
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: vault.json is a symlink
                raise IntegrityError("vault.json is a symlink; refusing to read it") from None
            raise StorageError(f"cannot read vault.json: {exc.strerror}") from None
        return parse_state(raw)

    def _read_pinned(self, fname: str, digest: str) -> Any:
        """A content-addressed table file (shard or group), hash-checked and parsed.

        The bytes are pinned by the SHA-256 in the file name and the manifest, and
        state documents are not signed, so the C parser is enough here (still
        refusing NaN/Infinity); audit lines keep the strict parser.
        """
        try:
            raw = read_file(self.tables_dir / fname)
        except FileNotFoundError:
            raise ShardGone(fname) from None
        if hashlib.sha256(raw).hexdigest() != digest:
            raise IntegrityError(f"table file {fname} does not match its recorded hash")
        try:
            return json.loads(raw, parse_constant=refuse_constant)
        except (ValueError, RecursionError):
            raise IntegrityError(f"table file {fname} is not valid JSON") from None

    def _read_shard(self, name: str, index: int, digest: str,
                    keep: bool = True) -> dict[str, Doc]:
        """A shard's documents (hash-checked), cached unless ``keep`` is False."""
        fname = shard_file(name, index, digest)
        cached = self._shard_cache.get(fname)
        if cached is not None:
            return cached
        doc = self._read_pinned(fname, digest)
        if (
            not isinstance(doc, dict)
            or doc.get("table") != name
            or doc.get("shard") != index
            or not isinstance(doc.get("docs"), dict)
        ):
            raise IntegrityError(f"table file {fname} is malformed")
        docs: dict[str, Doc] = doc["docs"]
        if not keep:
            return docs
        self._shard_cache[fname] = docs
        if len(self._shard_cache) > 2 * sum(TABLE_SHARDS.values()):  # the current layout
            self._shard_cache.clear()
        return docs

    def _read_group(self, name: str, group: int, digest: str,
                    layout: TableLayout) -> dict[str, str]:
        """A group file: the digests of ``layout.group`` shards (hash-checked)."""
        fname = group_file(name, group, digest)
        cached = self._group_cache.get(fname)
        if cached is not None:
            return cached
        doc = self._read_pinned(fname, digest)
        shards = check_group(name, group, doc, fname, layout)
        if len(self._group_cache) > 256:
            self._group_cache.clear()
        self._group_cache[fname] = shards
        return shards

    def _write_group(self, name: str, group: int, digest: str, data: bytes) -> None:
        if self.fault:
            self.fault("shard")
        write_new(self.tables_dir / group_file(name, group, digest), data)

    def _write_shard(self, name: str, index: int, digest: str, data: bytes) -> None:
        if self.fault:
            self.fault("shard")
        write_new(self.tables_dir / shard_file(name, index, digest), data)

    def _replace_state(self, data: bytes, garbage: list[str], sweep: bool = False) -> None:
        """Commit ``data`` (backup first); then delete the table files in ``garbage``
        (those the previous commit retired) and, now and then, list for strays."""
        if self.fault:
            self.fault("backup")
        try:
            old = read_file(self.state_path)
        except FileNotFoundError:
            old = None
        if old is not None:
            atomic_write(self.backup_path, old, sync_dir=False)
        if self.fault:
            self.fault("state")
        atomic_write(self.state_path, data)
        if self.fault:
            self.fault("committed")
        for fname in garbage:
            try:
                os.unlink(self.tables_dir / fname)
            except FileNotFoundError:
                pass
        if sweep or not self._swept:
            self._swept = True
            self._sweep([data] + ([old] if old is not None else []))

    def _sweep(self, generations: list[bytes]) -> None:
        """Remove every file in ``tables/`` that neither generation names (strays of
        a crash between a shard write and its commit), and temp files."""
        for fname in os.listdir(self.root):
            # temp files of atomic writes killed mid-way (we hold the lock)
            if fname.startswith((f".{STATE_FILE}.", f".{BACKUP_FILE}.")) and fname.endswith(
                    ".tmp"):
                try:
                    os.unlink(self.root / fname)
                except FileNotFoundError:
                    pass
        try:
            entries = os.listdir(self.tables_dir)
        except FileNotFoundError:
            return
        keep: set[str] = set()
        try:
            for raw in generations:
                keep |= self._all_files(parse_state(raw), strict=True)
        except (GlasskeyError, ShardGone):
            return  # a generation cannot be read in full: delete nothing
        for fname in entries:
            if (fname.endswith(".json") and fname not in keep) or fname.endswith(".tmp"):
                try:
                    os.unlink(self.tables_dir / fname)
                except FileNotFoundError:
                    pass

    # -- transactions -------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[FileTransaction]:
        """A lock-free consistent snapshot.

        If two commits collect a shard of this snapshot's generation while it
        is being read, the reader gets a StorageError asking to try again (a
        context manager cannot re-run its body); a shard the *current* state
        still names but that does not exist is an IntegrityError.

        The witness check compares this snapshot with the newest head this
        client saw; another thread or process of the same client may commit
        (and remember a newer head) between our read of vault.json and that
        check. Such a snapshot is merely stale, not rolled back: it is re-read.
        """
        for attempt in range(3):
            txn = FileTransaction(self, self._read_state(), write=False)
            try:
                start = guard.check_witness(self, txn)
                break
            except IntegrityError:
                if attempt == 2 or self.seq() == int(txn.meta.get("seq", 0)):
                    raise  # the state did not move under us: the alarm is real
        guard.verify_to_head(self, txn, start)
        self._saw(txn)  # every reader is a witness
        try:
            yield txn
        except ShardGone as gone:
            raise self._gone_error(gone.args[0]) from None

    def _all_files(self, state: dict[str, Any], strict: bool = False) -> set[str]:
        """Every table file ``state`` references, the shards inside its groups too."""
        files = manifest_files(state)
        layout = state_layout(state)
        for name, digests in state.get(GROUPS_KEY, {}).items():
            for key, digest in digests.items():
                try:
                    shards = self._read_group(name, int(key, 16), digest, layout[name])
                except ShardGone:
                    if strict:
                        raise
                    continue
                files |= {shard_file(name, int(i, 16), d) for i, d in shards.items()}
        return files

    def _gone_error(self, fname: str) -> GlasskeyError:
        try:
            current = self._read_state()
        except GlasskeyError as exc:
            return exc
        if fname in self._all_files(current):
            return IntegrityError(f"table file {fname} is missing")
        return StorageError("the vault changed while it was being read; try again")

    @contextmanager
    def transaction(self) -> Iterator[FileTransaction]:
        """Exclusive read-modify-write; commits on normal exit, discards on error."""
        held = RefusalHeld()
        with self._thread_lock, self.lock:
            txn = FileTransaction(self, self._read_state(), write=True)
            start = guard.check_witness(self, txn)
            guard.recover_audit(self, txn, start)
            migrate(txn)
            with held:
                yield txn
            run_before_commit(self.before_commit, txn)
            txn._commit()
            self._saw(txn)
            if self.on_unlock is not None and txn.recorded:
                self._unlocked.append(txn)
        self._run_unlocked()
        held.reraise()

    def _run_unlocked(self) -> None:
        """Hand committed transactions to ``on_unlock`` once no lock is held (a
        nested transaction's wait for its outermost one)."""
        if self.lock.held or not self._unlocked or self.on_unlock is None:
            return
        pending, self._unlocked = self._unlocked, []
        for txn in pending:
            try:
                self.on_unlock(txn)
            except Exception:  # noqa: S110 - the commit stands; delivery is best-effort
                pass

    def _saw(self, txn: FileTransaction) -> None:
        if txn.roster.founded:
            witness.save(str(txn.meta["vault_id"]), txn.head, txn.roster)

    def seq(self) -> int:
        """The state's change counter; cheap enough to poll for live updates.

        Every commit renames a new vault.json into place, so an unchanged
        (inode, mtime, size) means an unchanged counter: a poll costs a stat.
        """
        try:
            st = os.stat(self.state_path)
            ident = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            ident = None
        if ident is not None and self._seq_seen is not None and self._seq_seen[0] == ident:
            return self._seq_seen[1]
        meta = self._read_state().get("meta", {}).get("vault", {})
        value = int(meta.get("seq", 0))
        if ident is not None:
            self._seq_seen = (ident, value)
        return value



    def unverified_meta(self) -> Doc:
        meta: Doc = self._read_state()["meta"]["vault"]
        return meta

    def table_version(self, name: str) -> str:
        return manifest.table_version(self._read_state(), name)

    def twin(self) -> FileStore:
        other = FileStore(self.root, lock_timeout=self.lock.timeout)
        other.now = self.now
        return other

    def newest_entry(self, head: Head) -> tuple[float, str] | None:
        """(time, actor) of the entry that ends at ``head``, or None for an empty log."""
        return guard.newest_entry(self, head)

    def verify_audit(self, *, incremental: bool = False,
                     progress: Progress | None = None) -> VerifyResult:
        return guard.verify_audit(self, incremental=incremental, progress=progress)
