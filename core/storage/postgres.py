"""The PostgreSQL backend: a vault in a database nobody has to trust (docs/team-mode.md).

``PostgresStore`` implements the ``Store`` Protocol (core/storage/interface.py)
and passes the same contract suite as the file backend
(tests/test_storage_contract.py).

* **Writes are serial, then serializable** (core/storage/postgres_queue.py): a
  writer first queues on a session advisory lock (taken *before* its SQL
  transaction begins, so its snapshot is taken after its predecessor's COMMIT),
  then runs ``SERIALIZABLE`` and locks the single row of ``glasskey.counter``.
  Every write appends to the one audit chain, so writers must take turns: the
  queue makes them, and SERIALIZABLE is the second line of defence against a
  writer that bypasses it (a conflict is ``WriteConflict``: nothing committed;
  core/storage/retry.py runs the service call again). Audit lines, documents,
  the metadata's head and the counter commit in one SQL COMMIT: a crash or a
  dropped connection leaves the old or the new state.
* **Reads are snapshots**: ``REPEATABLE READ, READ ONLY``; no lock.
* **Integrity is the client's**: the same checks as the file backend, against
  this client's checkpoint in its own state dir (core/storage/postgres_guard.py),
  before anything is read or written.

Connections: one per open transaction, taken from a small per-handle pool, so
threads and a read nested in a transaction each get their own. A forked child
never touches its parent's connections.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from glasskey.core import canonical, witness
from glasskey.core.audit import Head, line_hash
from glasskey.core.chain import Progress, VerifyResult
from glasskey.core.errors import (
    IntegrityError,
    NotFoundError,
    StorageError,
    UsageError,
)
from glasskey.core.storage import audit_read, retry
from glasskey.core.storage import postgres_guard as guard
from glasskey.core.storage import postgres_queue as queue
from glasskey.core.storage import postgres_schema as schema
from glasskey.core.storage.interface import (
    AuditCursor,
    AuditPage,
    Doc,
    RefusalHeld,
    Store,
    Transaction,
    run_before_commit,
)
from glasskey.core.storage.manifest import FORMAT, SCHEMA_VERSION
from glasskey.core.storage.postgres_listen import Listener
from glasskey.core.storage.postgres_txn import Conn, PgTransaction, parse_doc

#: Connections kept open per handle between transactions.
POOL = 4
READ_ONLY = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
SERIAL_WRITER = "BEGIN ISOLATION LEVEL READ COMMITTED"



class PostgresStore:
    """A vault in a PostgreSQL database (``Store`` Protocol)."""

    def __init__(self, url: str, lock_timeout: float = 10.0) -> None:
        self.url = url
        #: How long a writer waits for the one before it (then: "busy, try again").
        self.lock_timeout = lock_timeout
        self.params = schema.check_url(url)
        #: Where this vault lives, as pins and messages name it (no role, no password).
        self.location = schema.location_key(self.params)
        self.root: Path = schema.local_dir(self.params)
        self.now: Callable[[], float] = time.time
        self.on_unlock: Callable[[Transaction], None] | None = None
        self.before_commit: Callable[[Transaction], None] | None = None
        self._free: list[Conn] = []
        self._pool_lock = threading.Lock()
        self._pid = os.getpid()
        #: The database schema was found current once (no need to ask again).
        self._schema_current = False
        self._listener: Listener | None = None
        #: Connections (by id) now holding the writers' queue lock.
        self._in_queue: set[int] = set()

    # -- connections ---------------------------------------------------------------
    def _take(self) -> tuple[Conn, bool]:
        """A connection and whether it came from the pool (it may have died since)."""
        with self._pool_lock:
            if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
                self._free, self._pid = [], os.getpid()
            while self._free:
                conn = self._free.pop()
                if not conn.closed and conn.info.transaction_status == \
                        psycopg.pq.TransactionStatus.IDLE:
                    return conn, True
        return schema.connect(self.params, self.location), False

    def _give(self, conn: Conn) -> None:
        with self._pool_lock:
            if self._pid == os.getpid() and len(self._free) < POOL and not conn.closed:
                self._free.append(conn)
                return
        if self._pid == os.getpid():
            conn.close()

    def _begin(self, begin: str, queued: bool = False) -> Conn:
        """A connection inside a new SQL transaction (``queued``: first at the head of
        the writers' queue). A pooled connection the server dropped (a restart, an
        idle timeout) is replaced once: nothing was sent yet."""
        conn, pooled = self._take()
        try:
            self._start(conn, begin, queued)
            return conn
        except psycopg.errors.LockNotAvailable:
            self._drop(conn)
            raise self._busy() from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            conn.close()
            if not pooled:
                raise self._lost(exc) from None
        conn = schema.connect(self.params, self.location)
        try:
            self._start(conn, begin, queued)
        except psycopg.errors.LockNotAvailable:
            self._drop(conn)
            raise self._busy() from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            conn.close()
            raise self._lost(exc) from None
        return conn

    def _start(self, conn: Conn, begin: str, queued: bool) -> None:
        """``begin`` the SQL transaction; a writer (``queued``) instead waits its turn in
        the writers' queue (core/storage/postgres_queue.py), and ``transaction`` begins."""
        if not queued:
            conn.execute(begin.encode())
            return
        queue.enter(conn, self.lock_timeout)
        self._in_queue.add(id(conn))

    def _leave(self, conn: Conn, commit: bool = False) -> None:
        """End what is open (COMMIT with ``commit``, in the same round trip as leaving
        the queue, so the next writer starts sooner) and leave the queue."""
        queued = id(conn) in self._in_queue
        if not conn.closed:
            queue.leave(conn, queued, commit)
        self._in_queue.discard(id(conn))

    def _busy(self) -> StorageError:
        return queue.busy(self.location, self.lock_timeout)

    @contextmanager
    def _conn(self, begin: str = READ_ONLY, queued: bool = False) -> Iterator[Conn]:
        """A connection inside one SQL transaction; left open on exit, it is rolled back
        (whoever means to keep its changes COMMITs). Database failures become one
        sentence (StorageError): nothing committed, the same call can be made again.
        A serialization failure or deadlock is ``WriteConflict`` (the same, but the
        caller may run the transaction again at once: core/storage/retry.py)."""
        conn = self._begin(begin, queued)
        try:
            yield conn
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if schema.is_conflict(exc):  # rolled back by the server; the connection is fine
                self._leave(conn)
                if not conn.closed:
                    self._give(conn)
                raise retry.WriteConflict(self.location) from None
            if schema.is_out_of_space(exc):
                self._leave(conn)
                raise schema.no_space(exc, self.location) from None
            self._drop(conn)
            raise self._lost(exc) from None
        except BaseException as exc:
            self._leave(conn)
            if isinstance(exc, psycopg.Error):
                raise self._refused(exc) from None
            raise
        self._leave(conn)
        self._give(conn)

    def _drop(self, conn: Conn) -> None:
        """Close a connection (the server ends its transaction and its place in the queue)."""
        self._in_queue.discard(id(conn))
        conn.close()

    def _lost(self, exc: psycopg.Error) -> StorageError:
        return schema.lost(exc, self.location)

    def _refused(self, exc: psycopg.Error) -> StorageError:
        return schema.refused(exc, self.location)

    # -- creation ---------------------------------------------------------------------
    def create(self, meta: Doc) -> None:
        with self._conn(SERIAL_WRITER) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('glasskey.create'))")
            current = schema.schema_version(conn)
            if current and conn.execute(
                    "SELECT 1 FROM glasskey.doc WHERE tbl = 'meta' AND key = 'vault'"
            ).fetchone():
                raise UsageError(f"a vault already exists at {self.location}")
            schema.ensure_client_role(conn)
            schema.migrate(conn, current)
            doc = dict(meta, schema=SCHEMA_VERSION, format=FORMAT, seq=0)
            conn.execute("INSERT INTO glasskey.doc (tbl, key, body) VALUES ('meta', 'vault', %s)",
                         (canonical.dumps(doc),))
            conn.execute("COMMIT")

    def exists(self) -> bool:
        with self._conn() as conn:
            if schema.schema_version(conn) == 0:
                return False
            return conn.execute("SELECT 1 FROM glasskey.doc WHERE tbl = 'meta' "
                                "AND key = 'vault'").fetchone() is not None

    def _open(self, conn: Conn, write: bool) -> PgTransaction:
        if not self._schema_current:
            version = schema.schema_version(conn)
            if version == 0:
                raise NotFoundError(
                    f"no vault at {self.location} (create one with 'glasskey init')")
            if version < schema.SQL_SCHEMA_VERSION:
                if not write:
                    raise UsageError(
                        f"the PostgreSQL vault's schema (version {version}) needs upgrading "
                        "to this glasskey's: make any change as the database's owner role")
                try:
                    schema.migrate(conn, version)  # the writer holds the lock: one migrates
                except psycopg.errors.InsufficientPrivilege:
                    raise UsageError(
                        f"the PostgreSQL vault's schema (version {version}) needs upgrading "
                        "to this glasskey's, and this database role may not: make any "
                        "change as the database's owner role") from None
            elif version > schema.SQL_SCHEMA_VERSION:
                raise UsageError(f"the PostgreSQL vault's schema is version {version}, newer "
                                 f"than this glasskey ({schema.SQL_SCHEMA_VERSION})")
            else:
                self._schema_current = True
        txn = PgTransaction(self, conn, write)
        meta = txn.meta
        if meta.get(schema.MOVED_KEY) is not None:  # 'glasskey migrate --to DIR' retired it
            raise schema.moved(self.location, meta[schema.MOVED_KEY])
        if meta.get("format") != FORMAT or not isinstance(meta.get("vault_id"), str):
            raise IntegrityError("the database's vault metadata is not a glasskey vault")
        if not isinstance(meta.get("schema"), int) or meta["schema"] > SCHEMA_VERSION:
            raise IntegrityError(f"the vault is schema {meta.get('schema')}, newer than "
                                 f"this glasskey ({SCHEMA_VERSION})")
        return txn

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[PgTransaction]:
        """A consistent snapshot (REPEATABLE READ, READ ONLY), verified before use."""
        with self._conn(READ_ONLY) as conn:
            yield self._snapshot(conn)

    def _snapshot(self, conn: Conn) -> PgTransaction:
        """Open and verify a snapshot.

        Another thread or process of this client may commit (and remember a newer
        head) between our snapshot and the witness check: such a snapshot is stale,
        not rolled back, and is taken again (as the file backend does).
        """
        for attempt in range(3):
            if attempt:
                conn.execute(READ_ONLY)
            txn = self._open(conn, write=False)
            guard.check_tail(conn, txn.head)
            try:
                start = guard.check_witness(self, txn)
                break
            except IntegrityError:
                row = conn.execute("SELECT seq FROM glasskey.counter WHERE id = 1").fetchone()
                conn.execute("ROLLBACK")
                if attempt == 2 or row is None or self.seq() == int(row[0]):
                    raise  # the vault did not move under us: the alarm is real
        guard.verify_to_head(txn, start)
        self._saw(txn)  # every reader is a witness
        return txn

    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        """Exclusive read-modify-write; one SQL COMMIT on normal exit, ROLLBACK on error."""
        held = RefusalHeld()
        with self._conn(queue.WRITER, queued=True) as conn:
            queue.lock_counter(conn, self.location, self.lock_timeout)
            txn = self._open(conn, write=True)
            guard.guard(self, txn)
            with held:
                yield txn
            run_before_commit(self.before_commit, txn)
            txn.commit_rows()
            try:
                self._leave(conn, commit=True)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if schema.is_conflict(exc) or schema.is_out_of_space(exc):
                    raise  # the server refused the COMMIT: certainly not committed (_conn)
                self._drop(conn)
                raise StorageError(
                    f"the connection to the PostgreSQL vault at {self.location} failed "
                    f"while committing ({schema.first_line(exc)}): the change may or may not have "
                    "been recorded; look before trying again") from None
        self._saw(txn)
        if self.on_unlock is not None and txn.recorded:
            try:
                self.on_unlock(txn)
            except Exception:  # noqa: S110 - the commit stands; delivery is best-effort
                pass
        held.reraise()

    def _saw(self, txn: PgTransaction) -> None:
        if txn.roster.founded:
            witness.save(str(txn.meta["vault_id"]), txn.head, txn.roster)

    def seq(self) -> int:
        """The commit counter: one indexed row, cheap to poll."""
        with self._conn() as conn:
            try:
                row = conn.execute("SELECT seq FROM glasskey.counter WHERE id = 1").fetchone()
            except psycopg.errors.UndefinedTable:
                return 0
        return int(row[0]) if row else 0

    def unverified_meta(self) -> Doc:
        with self._conn() as conn:
            if schema.schema_version(conn) == 0:
                raise NotFoundError(f"no vault at {self.location}")
            return self._meta_in_service(conn)

    def _meta_in_service(self, conn: Conn) -> Doc:
        """The vault metadata as stored (unverified); NotFoundError for no vault, and
        the moved sentence for a retired one (as ``_open`` says)."""
        row = conn.execute("SELECT body FROM glasskey.doc WHERE tbl = 'meta' "
                           "AND key = 'vault'").fetchone()
        if row is None:
            raise NotFoundError(f"no vault at {self.location}")
        meta = parse_doc("meta", "vault", row[0])
        if meta.get(schema.MOVED_KEY) is not None:
            raise schema.moved(self.location, meta[schema.MOVED_KEY])
        return meta

    def table_version(self, name: str) -> str:
        with self._conn() as conn:
            row = conn.execute("SELECT version FROM glasskey.table_version WHERE tbl = %s",
                               (name,)).fetchone()
        return str(row[0]) if row else "0"

    def twin(self) -> PostgresStore:
        other = PostgresStore(self.url, self.lock_timeout)
        other.now = self.now
        return other

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """``seq()`` once it differs from ``seen``, or after ``timeout`` seconds: a
        front that wants another machine's commit sooner than its next poll waits
        here (LISTEN/NOTIFY; core/storage/postgres_listen.py). Not in the ``Store``
        Protocol: a front that finds no such method polls ``seq()``."""
        if self._listener is None:
            self._listener = Listener(self)
        return self._listener.wait(seen, timeout)

    def close(self) -> None:
        """Close the pooled connections (a handle is usable again afterwards)."""
        if self._listener is not None:
            self._listener.close()
        with self._pool_lock:
            free, self._free = self._free, []
        for conn in free:
            conn.close()

    # -- the audit log, by cursor (AuditReader) -------------------------------------------
    def audit_head(self) -> AuditCursor:
        head = Head.from_doc(self.unverified_meta().get("audit"))
        return AuditCursor(head.seq, head.hash)

    def _lines(self, query: str, params: tuple[int, ...]) -> list[bytes]:
        with self._conn() as conn:
            return [bytes(r[0]) for r in conn.execute(query, params).fetchall()]

    def audit_tail(self, count: int) -> AuditPage:
        lines = self._lines("SELECT line FROM (SELECT seq, line FROM glasskey.audit "
                            "ORDER BY seq DESC LIMIT %s) t ORDER BY seq", (max(count, 1),))
        cursor = audit_read.cursor_of(lines[-1]) if lines else AuditCursor()
        shown = lines[-count:] if count > 0 else []
        return AuditPage(audit_read.parse_lines(shown), cursor)

    def _check_cursor(self, conn: Conn, cursor: AuditCursor) -> None:
        if cursor.seq <= 0:
            return
        raw = guard.line_at(conn, cursor.seq)
        if raw is None or line_hash(raw) != cursor.hash:
            raise IntegrityError(
                f"audit entry {cursor.seq} is not the one this reader saw: the log was "
                "rewritten or rolled back; run 'glasskey audit verify'")

    def audit_since(self, cursor: AuditCursor) -> AuditPage:
        with self._conn() as conn:
            self._check_cursor(conn, cursor)
            lines = list(guard.stream_lines(conn, max(cursor.seq, 0)))
        if not lines:
            return AuditPage([], cursor)
        return AuditPage(audit_read.parse_lines(lines), audit_read.cursor_of(lines[-1]))

    def audit_lines(self, since: AuditCursor | None = None) -> Iterator[bytes]:
        with self._conn() as conn:
            if since is not None:
                self._check_cursor(conn, since)
            yield from guard.stream_lines(conn, since.seq if since is not None else 0)

    def audit_batches(self) -> Iterator[list[bytes]]:
        batch: list[bytes] = []
        size = 0
        for raw in self.audit_lines():
            batch.append(raw)
            size += len(raw)
            if size >= audit_read.BATCH:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def verify_audit(self, *, incremental: bool = False,
                     progress: Progress | None = None) -> VerifyResult:
        with self._conn() as conn:
            return guard.verify_audit(self, conn, self._meta_in_service(conn),
                                      incremental=incremental, progress=progress)


if TYPE_CHECKING:  # mypy --strict checks the backend against the declared Protocol
    def _is_a_store(store: PostgresStore) -> Store:
        return store
