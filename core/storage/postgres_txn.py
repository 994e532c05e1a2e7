"""A transaction of the PostgreSQL backend: one SQL transaction, its documents and the
audit lines it recorded.

Documents are canonical JSON in ``glasskey.doc`` (bytea: exactly the bytes
written, no re-encoding by the server). Writes go to the server as they are
made, inside the SQL transaction; the audit lines, the metadata's head and the
commit counter go in at commit, so one SQL COMMIT makes all of it visible
together and a crash or a dropped connection leaves the old state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from glasskey.core import canonical
from glasskey.core.audit import Head
from glasskey.core.errors import IntegrityError, UsageError
from glasskey.core.roster import Roster
from glasskey.core.storage.chainwrite import ChainWriter, time_and_actor
from glasskey.core.storage.interface import Doc, Recorded
from glasskey.core.storage.manifest import SHARDED_TABLES, SMALL_TABLES, refuse_constant

if TYPE_CHECKING:
    from glasskey.core.storage.postgres import PostgresStore

Conn = psycopg.Connection[tuple[Any, ...]]
TABLES = frozenset((*SMALL_TABLES, *SHARDED_TABLES)) - {"manifest"}


def parse_doc(tbl: str, key: str, raw: bytes) -> Doc:
    """A stored document; anything but a JSON object is an IntegrityError (exit 3)."""
    try:
        doc = json.loads(bytes(raw), parse_constant=refuse_constant)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise IntegrityError(f"the {tbl} record {key!r} in the database is not a valid "
                             "document (altered outside glasskey)")
    return doc


class PgTable:
    """A keyed collection of documents: rows of ``glasskey.doc`` with ``tbl = name``."""

    def __init__(self, txn: PgTransaction, name: str) -> None:
        self._txn = txn
        self._name = name

    def get(self, key: str) -> Doc | None:
        row = self._txn.conn.execute(
            "SELECT body FROM glasskey.doc WHERE tbl = %s AND key = %s",
            (self._name, key)).fetchone()
        return parse_doc(self._name, key, row[0]) if row else None

    def put(self, key: str, doc: Doc) -> None:
        self._txn._require_write()
        self._txn.conn.execute(
            "INSERT INTO glasskey.doc (tbl, key, body) VALUES (%s, %s, %s) "
            "ON CONFLICT (tbl, key) DO UPDATE SET body = EXCLUDED.body",
            (self._name, key, canonical.dumps(dict(doc))))
        self._txn.dirty.add(self._name)

    def delete(self, key: str) -> None:
        self._txn._require_write()
        cur = self._txn.conn.execute(
            "DELETE FROM glasskey.doc WHERE tbl = %s AND key = %s", (self._name, key))
        if cur.rowcount:
            self._txn.dirty.add(self._name)

    def items(self) -> Iterator[tuple[str, Doc]]:
        rows = self._txn.conn.execute(
            # Code-point order whatever the database collation (as sorted() in Python).
            "SELECT key, body FROM glasskey.doc WHERE tbl = %s ORDER BY key COLLATE \"C\"",
            (self._name,)).fetchall()
        for key, body in rows:
            yield str(key), parse_doc(self._name, str(key), body)

    def values(self) -> Iterator[Doc]:
        for _, doc in self.items():
            yield doc

    def __len__(self) -> int:
        row = self._txn.conn.execute(
            "SELECT count(*) FROM glasskey.doc WHERE tbl = %s", (self._name,)).fetchone()
        return int(row[0]) if row else 0

    def partitions(self) -> int:
        return 1

    def partition(self, index: int) -> list[Doc]:
        return list(self.values()) if index == 0 else []


class PgTransaction(ChainWriter):
    """One SQL transaction: a REPEATABLE READ snapshot, or the serialised writer."""

    def __init__(self, store: PostgresStore, conn: Conn, write: bool) -> None:
        self.store = store
        self.conn = conn
        self.write = write
        self.dirty: set[str] = set()
        self.recorded: list[Recorded] = []
        self.roster = Roster()
        self.now = store.now
        self._lines: list[tuple[int, bytes, str]] = []
        found = PgTable(self, "meta").get("vault")
        if found is None:
            raise IntegrityError("the database holds no vault metadata")
        #: The metadata as of this transaction (only ``set_meta`` changes it), so it
        #: stays readable after the commit (the after-commit hooks read it).
        self._meta: Doc = found
        meta = self.meta
        try:
            self.head = Head.from_doc(meta.get("audit"))
        except (KeyError, TypeError, ValueError):
            raise IntegrityError("the vault metadata records a malformed audit head") from None

    # -- the audit chain (ChainWriter: the same rules as the file backend) -------------
    def _read_newest(self) -> tuple[float, str] | None:
        if self.head.seq <= 0:
            return None
        row = self.conn.execute("SELECT line FROM glasskey.audit WHERE seq = %s",
                                (self.head.seq,)).fetchone()
        if row is None:
            raise IntegrityError(f"audit entry {self.head.seq} is missing")
        return time_and_actor(bytes(row[0]), self.head.seq)

    def _keep_line(self, line: bytes) -> None:
        self._lines.append((self.head.seq, line, self.head.hash))

    # -- tables ----------------------------------------------------------------------------
    def table(self, name: str) -> PgTable:
        if name not in TABLES:
            raise UsageError(f"internal: unknown table {name}")
        return PgTable(self, name)

    @property
    def meta(self) -> Doc:
        return json.loads(canonical.dumps(self._meta))  # type: ignore[no-any-return]

    def set_meta(self, doc: Doc) -> None:
        PgTable(self, "meta").put("vault", doc)
        self._meta = json.loads(canonical.dumps(doc))

    # -- commit ------------------------------------------------------------------------------
    def commit_rows(self) -> None:
        """Everything but the COMMIT itself: audit lines first, then head and counter."""
        if not (self.dirty or self._lines):
            return
        if self._lines:
            with self.conn.cursor() as cur:
                cur.executemany("SELECT glasskey.append_audit(%s, %s, %s)", self._lines)
            self._lines = []
        row = self.conn.execute(
            "UPDATE glasskey.counter SET seq = seq + 1 WHERE id = 1 RETURNING seq").fetchone()
        if row is None:
            raise IntegrityError("the database's commit counter is missing")
        counter = int(row[0])
        meta = self.meta
        meta["seq"] = int(meta.get("seq", 0)) + 1
        meta["audit"] = self.head.to_doc()
        self.set_meta(meta)
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO glasskey.table_version (tbl, version) VALUES (%s, %s) "
                "ON CONFLICT (tbl) DO UPDATE SET version = EXCLUDED.version",
                [(name, counter) for name in sorted(self.dirty)])
        # A wake-up for listeners (core/storage/postgres_listen.py), delivered at COMMIT;
        # the payload says nothing: a listener reads the state itself.
        self.conn.execute("SELECT pg_notify('glasskey', '')")
