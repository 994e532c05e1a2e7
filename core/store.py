"""The vault's state store: TinyDB documents inside transactions glasskey owns.

Layout (see docs/storage.md):

* ``vault.json`` is a TinyDB database holding the small, hot tables (``meta``,
  ``operators``, ``active``, ``manifest``). TinyDB is used purely as the
  in-memory document model: its storage is the transaction's parsed copy, and
  glasskey does all file I/O itself (RELIABILITY.md, "TinyDB, safely").
* Large tables (credentials, sealed key material, requests) are split into
  ``SHARDS`` shards, each an immutable, content-addressed JSON file under
  ``tables/``; ``vault.json`` names the current file of every shard with its
  SHA-256. A write rewrites only the shards it touched, then commits by
  atomically replacing ``vault.json``: one rename is the commit point for the
  whole transaction, so a crash leaves the before or the after state.
* ``vault.json.bak`` is the previous generation; shard files referenced by
  neither generation are removed after commit.

At 10,000 credentials x 25 operators a write costs a few shard files and one
small ``vault.json`` instead of rewriting tens of megabytes (measured in
BENCHMARKS.md).

Concurrency: writers hold the exclusive ``flock`` for the whole
read-modify-write and re-read the state inside it, so a writer with a stale
view never overwrites. Readers take no lock: ``vault.json`` is replaced
atomically and shards are immutable, so a reader sees one consistent
generation (if two commits collect a shard of its generation under it, it
gets a StorageError asking to try again).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from glasskey.core import canonical, witness
from glasskey.core.audit import (
    SYSTEM_SIGNER,
    AuditLog,
    Head,
    Signer,
    build_entry,
    line_hash,
    line_length_before,
)
from glasskey.core.chain import Checkpoint, catch_up
from glasskey.core.clock import CLOCK_SKEW, iso
from glasskey.core.errors import (
    ClockSkewError,
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
    fsync_dir,
    read_file,
    write_new,
)
from glasskey.core.roster import Roster, adopt_status, check_table
from tinydb import TinyDB
from tinydb.queries import QueryLike
from tinydb.storages import Storage
from tinydb.table import Document, Table

SCHEMA_VERSION = 5
FORMAT = "glasskey-vault"
SHARDS = 64
#: Shards per large table. Checkout history grows without bound (about 170,000
#: requests behind 1,000,000 audit entries), so requests get more, smaller
#: shards: a checkout rewrites one ~150 kB shard instead of one of ~2.4 MB
#: (schema 3; BENCHMARKS.md has the before and after).
TABLE_SHARDS = {"credentials": SHARDS, "sealed": SHARDS, "requests": 1024}
#: Tables every vault.json has had since schema 1 (parse_state insists on them).
REQUIRED_TABLES = ("meta", "operators", "active", "manifest")
#: Schema 2 added the review queue and the emergency kits; schema 4 the index of
#: credentials that need attention (ROTATION-FAILED, APPLY-PENDING), so alerts
#: never scan 10,000 credentials.
SMALL_TABLES = (*REQUIRED_TABLES, "reviews", "kits", "flags")
SHARDED_TABLES = ("credentials", "sealed", "requests")
STATE_FILE = "vault.json"
BACKUP_FILE = "vault.json.bak"
LOCK_FILE = ".lock"
TABLES_DIR = "tables"

Doc = dict[str, Any]

#: Migrations from schema N to N+1, applied inside a write transaction.
MIGRATIONS: dict[int, Callable[[Transaction], None]] = {}


def _add_review_and_kit_tables(txn: Transaction) -> None:
    for name in ("reviews", "kits"):
        txn.state.setdefault(name, {})
    txn.dirty_small = True


MIGRATIONS[1] = _add_review_and_kit_tables


def _reshard_requests(txn: Transaction) -> None:
    """Schema 2 -> 3: move requests from 64 shards to TABLE_SHARDS['requests']."""
    docs: dict[str, Doc] = {}
    for index in range(SHARDS):
        digest = txn._manifest_entry("requests", index)
        if digest is not None:
            docs.update(txn.store._read_shard("requests", index, digest))
    txn.state.setdefault("manifest", {}).pop("requests", None)
    txn._shards = {k: v for k, v in txn._shards.items() if k[0] != "requests"}
    table = txn.sharded("requests")
    for key, doc in docs.items():
        table.put(key, doc)
    txn.dirty_small = True


MIGRATIONS[2] = _reshard_requests


def _index_flagged_credentials(txn: Transaction) -> None:
    """Schema 3 -> 4: the flags table, from every credential's status."""
    flags = txn.table("flags")
    for doc in txn.sharded("credentials").values():
        if doc.get("status") in ("rotation-failed", "apply-pending"):
            flags.put(doc["id"], {"name": doc["name"], "status": doc["status"],
                                  "failure": doc.get("failure", "")})
    txn.dirty_small = True


MIGRATIONS[3] = _index_flagged_credentials


def _signed_roster(txn: Transaction) -> None:
    """Schema 4 -> 5: nothing to move. A vault whose log does not open with a signed
    founding (every 0.1 vault) is refused by verification before this runs: its
    roster cannot be signed after the fact without every founder."""


MIGRATIONS[4] = _signed_roster


def _shard_keys(name: str) -> frozenset[str]:
    return frozenset(f"{i:02x}" for i in range(TABLE_SHARDS.get(name, SHARDS)))


_SHARD_KEYS = {name: _shard_keys(name) for name in SHARDED_TABLES}


def shard_of(key: str, shards: int = SHARDS) -> int:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    if shards <= 256:
        return digest[0] % shards
    return int.from_bytes(digest[:2], "big") % shards


class _TxnStorage(Storage):  # type: ignore[misc]
    """TinyDB storage backed by the transaction's in-memory copy."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def read(self) -> dict[str, Any] | None:
        return self.data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.data = data


class KeyedTable(Table):
    """TinyDB table whose document ids are glasskey's own string keys.

    TinyDB's stubs say ids are ints; its code only requires them hashable and
    convertible with ``document_id_class``, hence the casts below.
    """

    document_id_class = str  # type: ignore[assignment]


def _id(key: str) -> int:
    return cast(int, key)


class SmallTable:
    """A table inside vault.json, read and written through TinyDB's Table API."""

    def __init__(self, txn: Transaction, name: str) -> None:
        self._txn = txn
        self._name = name
        self._table = txn.db.table(name, cache_size=0)

    def get(self, key: str) -> Doc | None:
        doc = self._table.get(doc_id=_id(key))
        return dict(doc) if doc is not None else None

    def put(self, key: str, doc: Doc) -> None:
        self._txn._require_write()
        self._table.upsert(Document(dict(doc), doc_id=_id(key)))
        self._txn.dirty_small = True

    def delete(self, key: str) -> None:
        self._txn._require_write()
        if self._table.contains(doc_id=_id(key)):
            self._table.remove(doc_ids=[_id(key)])
            self._txn.dirty_small = True

    def items(self) -> list[tuple[str, Doc]]:
        return sorted((str(d.doc_id), dict(d)) for d in self._table.all())

    def values(self) -> list[Doc]:
        return [doc for _, doc in self.items()]

    def search(self, cond: QueryLike) -> list[Doc]:
        return [dict(d) for d in self._table.search(cond)]

    def __len__(self) -> int:
        return len(self._table)


class ShardedTable:
    """A large table split into content-addressed shard files."""

    def __init__(self, txn: Transaction, name: str) -> None:
        self._txn = txn
        self._name = name
        self._count = TABLE_SHARDS.get(name, SHARDS)

    def _shard(self, index: int) -> dict[str, Doc]:
        return self._txn._load_shard(self._name, index)

    def get(self, key: str) -> Doc | None:
        doc = self._shard(shard_of(key, self._count)).get(key)
        return dict(doc) if doc is not None else None

    def put(self, key: str, doc: Doc) -> None:
        self._txn._require_write()
        index = shard_of(key, self._count)
        self._shard(index)[key] = dict(doc)
        self._txn.dirty_shards.add((self._name, index))

    def delete(self, key: str) -> None:
        self._txn._require_write()
        index = shard_of(key, self._count)
        if self._shard(index).pop(key, None) is not None:
            self._txn.dirty_shards.add((self._name, index))

    def values(self) -> Iterator[Doc]:
        for index in range(self._count):
            if self._txn._manifest_entry(self._name, index) is None \
                    and (self._name, index) not in self._txn._shards:
                continue  # an empty shard: nothing to read
            yield from self._shard(index).values()

    def __len__(self) -> int:
        return sum(1 for _ in self.values())


class Transaction:
    """One consistent view of the state; writable only under the lock."""

    def __init__(self, store: Store, state: dict[str, Any], write: bool) -> None:
        self.store = store
        self.write = write
        self.db = TinyDB(storage=_TxnStorage, data=state)
        self.db.table_class = KeyedTable
        self.dirty_small = False
        self.dirty_shards: set[tuple[str, int]] = set()
        self._shards: dict[tuple[str, int], dict[str, Doc]] = {}
        #: (signer, event, subject, details, seq) of every entry this transaction
        #: recorded: what ``Store.on_unlock`` (notifications) reads after the commit.
        self.recorded: list[tuple[Signer, str, str, dict[str, Any], int]] = []
        #: Shard files of the generation this write started from: with the new
        #: generation's, what garbage collection must keep (no re-parsing).
        self._start_files = _manifest_files(state) if write else set()
        self.head = Head.from_doc(self.meta.get("audit"))
        self._start_offset = self.head.offset
        #: The signed roster as verified up to ``head`` (core/chain.py): the only
        #: source of operators' keys, roles and status, and of the kits.
        self.roster = Roster()
        self._lines: list[bytes] = []
        self.now = store.now
        #: (time, actor) of the chain's newest entry, read lazily (clock rules).
        self._newest: tuple[float, str] | None = None
        self._newest_read = False

    # -- time: the single place an entry's time is set (SECURITY.md, "Clock rules") --
    def newest_entry(self) -> tuple[float, str] | None:
        """(time, actor) of the newest entry in the chain, this transaction's included."""
        if not self._newest_read:
            self._newest_read = True
            self._newest = self.store.newest_entry(self.head)
        return self._newest

    def entry_time(self, strict: bool = True) -> float:
        """The time the next entry gets: never before the chain's newest entry.

        A clock more than CLOCK_SKEW behind the chain refuses to write (its
        expiry arithmetic would be wrong, and its entries would rewrite
        history); within the bound the time is clamped to the chain's. With
        ``strict`` False (unsigned system records of refusals, such as a failed
        authentication) the time is only clamped: a refusal is always recorded.
        """
        now = self.now()
        newest = self.newest_entry()
        if newest is None:
            return now
        latest, actor = newest
        if strict and now < latest - CLOCK_SKEW:
            raise ClockSkewError(
                f"this computer's clock ({iso(now)}) is {int(latest - now)} s behind the "
                f"vault's newest audit entry ({iso(latest)}, by {actor}); fix the clock "
                "(or the other client's) before writing")
        return max(now, latest)

    def record(self, signer: Signer, event: str, subject: str,
               details: dict[str, Any] | None = None) -> int:
        """Append an audit entry to this transaction; durable before the state."""
        self._require_write()
        when = self.entry_time(strict=signer.key is not None)
        line, self.head = build_entry(self.head, signer, event, subject,
                                      dict(details or {}), when)
        self._newest = (float(int(when)), signer.name)  # entries keep whole seconds
        self._lines.append(line)
        self.dirty_small = True
        self.recorded.append((signer, event, subject, dict(details or {}), self.head.seq))
        return self.head.seq

    def record_change(self, signer: Signer, event: str, subject: str,
                      details: dict[str, Any], roster: Roster) -> int:
        """Record a signed roster change and adopt the roster after it."""
        seq = self.record(signer, event, subject, details)
        self.roster = roster
        return seq

    def _require_write(self) -> None:
        if not self.write:
            raise UsageError("internal: write attempted in a read-only transaction")

    @property
    def state(self) -> dict[str, Any]:
        storage = cast(_TxnStorage, self.db.storage)
        return storage.data

    # -- tables ---------------------------------------------------------------
    def table(self, name: str) -> SmallTable:
        if name not in SMALL_TABLES:
            raise UsageError(f"internal: unknown small table {name}")
        return SmallTable(self, name)

    def sharded(self, name: str) -> ShardedTable:
        if name not in SHARDED_TABLES:
            raise UsageError(f"internal: unknown sharded table {name}")
        return ShardedTable(self, name)

    @property
    def meta(self) -> Doc:
        doc = self.table("meta").get("vault")
        if doc is None:
            raise IntegrityError("vault.json has no vault metadata")
        return doc

    def set_meta(self, doc: Doc) -> None:
        self.table("meta").put("vault", doc)

    def _manifest_entry(self, name: str, index: int) -> str | None:
        entry = self.state.get("manifest", {}).get(name)
        if entry is None:
            return None
        if not isinstance(entry, dict):
            raise IntegrityError("vault.json manifest is malformed")
        value = entry.get(f"{index:02x}")
        if value is not None and not isinstance(value, str):
            raise IntegrityError("vault.json manifest is malformed")
        return value

    def _load_shard(self, name: str, index: int) -> dict[str, Doc]:
        key = (name, index)
        shard = self._shards.get(key)
        if shard is None:
            digest = self._manifest_entry(name, index)
            try:
                shard = {} if digest is None else self.store._read_shard(name, index, digest)
            except _ShardGone as gone:
                if self.write:  # under the lock nothing is collected: it is missing
                    raise IntegrityError(f"table file {gone.args[0]} is missing") from None
                raise
            if self.write:
                shard = {k: dict(v) for k, v in shard.items()}
            self._shards[key] = shard
        return shard

    # -- commit -----------------------------------------------------------------
    def _commit(self) -> None:
        if not (self.dirty_small or self.dirty_shards):
            return
        if self._lines:
            # Fail closed: the audit record is durable before anything it describes.
            self.store.audit.append(self._lines, self._start_offset)
            self._lines = []
        manifest = self.state.setdefault("manifest", {})
        for name, index in sorted(self.dirty_shards):
            docs = self._shards[(name, index)]
            data = canonical.dumps({"table": name, "shard": index, "docs": docs})
            digest = hashlib.sha256(data).hexdigest()
            self.store._write_shard(name, index, digest, data)
            manifest.setdefault(name, {})[f"{index:02x}"] = digest
        if self.dirty_shards:
            fsync_dir(self.store.tables_dir)
        meta = self.meta
        meta["seq"] = int(meta.get("seq", 0)) + 1
        meta["audit"] = self.head.to_doc()
        self.state["meta"]["vault"] = meta
        self.store._replace_state(canonical.dumps(self.state),
                                  self._start_files | _manifest_files(self.state))


class Store:
    """The vault directory's state files."""

    def __init__(self, root: Path, lock_timeout: float = 10.0, *,
                 state_dir: Path | None = None) -> None:
        self.root = root
        #: This client's witness state (core/witness.py); None: its default.
        self.state_dir = state_dir
        self.state_path = root / STATE_FILE
        self.backup_path = root / BACKUP_FILE
        self.tables_dir = root / TABLES_DIR
        self.lock = VaultLock(root / LOCK_FILE, timeout=lock_timeout)
        self._shard_cache: dict[str, dict[str, Doc]] = {}
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
        self._unlocked: list[Transaction] = []

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
            raise NotFoundError(
                f"no vault at {self.root} (create one with 'glasskey init')"
            ) from None
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: vault.json is a symlink
                raise IntegrityError("vault.json is a symlink; refusing to read it") from None
            raise StorageError(f"cannot read vault.json: {exc.strerror}") from None
        return parse_state(raw)

    def _read_shard(self, name: str, index: int, digest: str) -> dict[str, Doc]:
        fname = f"{name}.{index:02x}.{digest}.json"
        cached = self._shard_cache.get(fname)
        if cached is not None:
            return cached
        try:
            raw = read_file(self.tables_dir / fname)
        except FileNotFoundError:
            raise _ShardGone(fname) from None
        if hashlib.sha256(raw).hexdigest() != digest:
            raise IntegrityError(f"table file {fname} does not match its recorded hash")
        # The bytes are pinned by the SHA-256 in the file name and the manifest,
        # and state documents are not signed, so the C parser is enough here
        # (still refusing NaN/Infinity); audit lines keep the strict parser.
        try:
            doc = json.loads(raw, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise IntegrityError(f"table file {fname} is not valid JSON") from None
        if (
            not isinstance(doc, dict)
            or doc.get("table") != name
            or doc.get("shard") != index
            or not isinstance(doc.get("docs"), dict)
        ):
            raise IntegrityError(f"table file {fname} is malformed")
        docs: dict[str, Doc] = doc["docs"]
        self._shard_cache[fname] = docs
        if len(self._shard_cache) > 2 * sum(TABLE_SHARDS.values()):
            self._shard_cache.clear()
        return docs

    def _write_shard(self, name: str, index: int, digest: str, data: bytes) -> None:
        if self.fault:
            self.fault("shard")
        write_new(self.tables_dir / f"{name}.{index:02x}.{digest}.json", data)

    def _replace_state(self, data: bytes, keep: set[str]) -> None:
        """Commit ``data`` (backup first); then drop shard files not in ``keep``."""
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
        self._collect_garbage(keep)

    def _collect_garbage(self, keep: set[str]) -> None:
        """Remove shard files referenced by neither generation (the backup's and
        the new one's; ``keep`` comes from the manifests already in memory)."""
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
        for fname in entries:
            if (fname.endswith(".json") and fname not in keep) or fname.endswith(".tmp"):
                try:
                    os.unlink(self.tables_dir / fname)
                except FileNotFoundError:
                    pass

    # -- transactions -------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A lock-free consistent snapshot.

        If two commits collect a shard of this snapshot's generation while it
        is being read, the reader gets a StorageError asking to try again (a
        context manager cannot re-run its body); a shard the *current* state
        still names but that does not exist is an IntegrityError.
        """
        txn = Transaction(self, self._read_state(), write=False)
        start = self._check_witness(txn)
        self._verify_to_head(txn, start)
        self._saw(txn)  # every reader is a witness
        try:
            yield txn
        except _ShardGone as gone:
            raise self._gone_error(gone.args[0]) from None

    def _gone_error(self, fname: str) -> GlasskeyError:
        try:
            current = self._read_state()
        except GlasskeyError as exc:
            return exc
        if fname in _manifest_files(current):
            return IntegrityError(f"table file {fname} is missing")
        return StorageError("the vault changed while it was being read; try again")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Exclusive read-modify-write; commits on normal exit, discards on error."""
        refused: Refused | None = None
        with self._thread_lock, self.lock:
            txn = Transaction(self, self._read_state(), write=True)
            start = self._check_witness(txn)
            self._recover_audit(txn, start)
            _migrate(txn)
            try:
                yield txn
            except Refused as exc:
                refused = exc  # a refusal is itself audited: keep its record, then report it
            if self.before_commit is not None and txn.recorded:
                try:
                    self.before_commit(txn)
                except Exception:  # noqa: S110 - notifications never block a commit
                    pass
            txn._commit()
            self._saw(txn)
            if self.on_unlock is not None and txn.recorded:
                self._unlocked.append(txn)
        self._run_unlocked()
        if refused is not None:
            raise refused.error from None

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

    def _saw(self, txn: Transaction) -> None:
        if txn.roster.founded:
            witness.save(str(txn.meta["vault_id"]), txn.head, txn.roster, self.state_dir)

    def newest_entry(self, head: Head) -> tuple[float, str] | None:
        """(time, actor) of the entry that ends at ``head``, or None for an empty log."""
        if head.seq <= 0 or head.offset <= 0:
            return None
        raw = self.audit.line_at(head.offset - line_length_before(self.audit, head.offset))
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            stamp = calendar.timegm(time.strptime(str(entry["time"]), "%Y-%m-%dT%H:%M:%SZ"))
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"audit entry {head.seq} has no readable time") from None
        return float(stamp), str(entry.get("actor", "?"))

    def _check_witness(self, txn: Transaction) -> Checkpoint:
        """Refuse a state older than (or forked from) the last head this client verified.

        Returns where verification resumes: this client's checkpoint with the
        roster verified up to it, or genesis for a client new to this vault.
        """
        vault_id = str(txn.meta["vault_id"])
        witness.check_pin(self.root, vault_id, self.state_dir)
        loaded = witness.load_checkpoint(vault_id, self.state_dir)
        if loaded is None or loaded[0].seq == 0:
            return Checkpoint()
        seen, roster = loaded
        head = txn.head
        if seen.seq > head.seq:
            raise IntegrityError(
                f"the vault was rolled back: this client saw audit entry {seen.seq}, "
                f"the vault now ends at {head.seq}"
            )
        raw = self.audit.line_at(seen.offset - line_length_before(self.audit, seen.offset))
        if raw is None or line_hash(raw) != seen.hash:
            raise IntegrityError(
                f"the audit log was rewritten: entry {seen.seq} differs from the one "
                "this client saw"
            )
        return Checkpoint(seen, roster) if roster is not None else Checkpoint()

    def _verify_to_head(self, txn: Transaction, start: Checkpoint, *,
                        adopted: bool = False) -> None:
        """Verify every entry this client has not yet verified; adopt the signed roster."""
        cp = catch_up(self.audit, start, txn.head, str(txn.meta["vault_id"]))
        txn.roster = cp.roster
        if adopted and cp.roster.founded:
            ops, kits = adopt_status(cp.roster, txn.table("operators").values(),
                                     txn.table("kits").values())
            for doc in ops:
                txn.table("operators").put(doc["name"], doc)
            for doc in kits:
                txn.table("kits").put(doc["id"], doc)
        if cp.roster.founded:
            check_table(cp.roster, txn.table("operators").values(), txn.table("kits").values())
        elif len(txn.table("operators")):
            raise IntegrityError("operator records exist but the vault has no signed founding")

    def _recover_audit(self, txn: Transaction, start: Checkpoint) -> None:
        """Adopt an appended-but-uncommitted tail (verified like any entry); quarantine a
        torn one."""
        self._check_head_line(txn.head)
        extra, partial = self.audit.recover_tail(txn.head)
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
        self._verify_to_head(txn, start, adopted=bool(extra))
        if extra:
            txn.record(SYSTEM_SIGNER, "audit.uncommitted", "audit",
                       {"first": first, "last": head.seq,
                        "note": "recorded, but the state change they describe did not commit"})
        if partial is not None:
            txn.record(SYSTEM_SIGNER, "audit.tail-quarantined", "audit",
                       {"bytes": len(partial), "dir": "audit.quarantine"})

    def _check_head_line(self, head: Head) -> None:
        """The line ending at the state's head offset is the one the state names."""
        if head.seq == 0:
            return
        size = self.audit.size()
        if size < head.offset:
            raise IntegrityError(
                f"the audit log is shorter than the vault state records "
                f"({size} < {head.offset} bytes): it was truncated"
            )
        raw = self.audit.line_at(head.offset - line_length_before(self.audit, head.offset))
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


class Refused(Exception):
    """Raised inside a transaction: commit what was recorded, then raise ``error``."""

    def __init__(self, error: GlasskeyError) -> None:
        super().__init__(str(error))
        self.error = error


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


class _ShardGone(Exception):
    """A shard of the generation being read was collected; re-read."""


def parse_state(raw: bytes) -> dict[str, Any]:
    """Validate vault.json's shape; any problem is an IntegrityError (exit 3)."""
    if not raw:
        raise IntegrityError("vault.json is empty; refusing to treat it as a new vault")
    if raw.strip(b"\x00") == b"":
        raise IntegrityError("vault.json is all NUL bytes (a torn write?)")
    state = canonical.loads(raw)
    if not isinstance(state, dict):
        raise IntegrityError("vault.json is not a glasskey vault")
    for name in REQUIRED_TABLES:
        if not isinstance(state.get(name), dict):
            raise IntegrityError("vault.json is not a glasskey vault (missing tables)")
    for name in SMALL_TABLES:
        if name in state and not isinstance(state[name], dict):
            raise IntegrityError(f"vault.json's {name} table is malformed")
    meta = state["meta"].get("vault")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IntegrityError("vault.json is not a glasskey vault")
    schema = meta.get("schema")
    if not isinstance(schema, int) or schema < 1:
        raise IntegrityError("vault.json has an invalid schema version")
    if schema > SCHEMA_VERSION:
        raise IntegrityError(
            f"vault.json is schema {schema}, newer than this glasskey ({SCHEMA_VERSION})"
        )
    if not isinstance(meta.get("vault_id"), str) or not _is_count(meta.get("seq", 0)):
        raise IntegrityError("vault.json has malformed vault metadata")
    if meta.get("audit") is not None and not _is_head(meta["audit"]):
        raise IntegrityError("vault.json records a malformed audit head")
    _manifest_files(state)
    return state


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_head(doc: Any) -> bool:
    actors = doc.get("actors", {}) if isinstance(doc, dict) else None
    return (
        isinstance(doc, dict) and _is_count(doc.get("seq")) and _is_count(doc.get("offset"))
        and isinstance(doc.get("hash"), str) and isinstance(actors, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in actors.items())
    )


def _manifest_files(state: dict[str, Any]) -> set[str]:
    """The shard file names the state references (IntegrityError if malformed)."""
    files: set[str] = set()
    for name, shards in state.get("manifest", {}).items():
        if name not in SHARDED_TABLES or not isinstance(shards, dict):
            raise IntegrityError("vault.json manifest is malformed")
        for idx, digest in shards.items():
            if (not isinstance(digest, str) or not _HEX64.fullmatch(digest)
                    or idx not in _SHARD_KEYS[name]):
                raise IntegrityError("vault.json manifest is malformed")
            files.add(f"{name}.{idx}.{digest}.json")
    return files


def _migrate(txn: Transaction) -> None:
    meta = txn.meta
    while meta["schema"] < SCHEMA_VERSION:
        MIGRATIONS[meta["schema"]](txn)
        meta = txn.meta
        meta["schema"] += 1
        txn.set_meta(meta)
