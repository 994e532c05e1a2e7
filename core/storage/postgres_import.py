"""Moving a file vault into PostgreSQL with its whole history, verifiable afterwards.

The audit lines are copied byte for byte (each one's hash, links and signature
are unchanged), and so are the documents and the vault metadata, whose audit
head keeps its byte position: the PostgreSQL backend counts positions the way
audit.jsonl does (core/storage/postgres_guard.RowLog). So every client's
checkpoint for this vault stays valid across the move, and the moved vault is
verified in full before the move is reported done.

The source is held under its writer lock for the whole copy (nothing can be
added meanwhile) and left as it was: the move is a copy; retire the directory
once every client uses the URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from glasskey.core import canonical
from glasskey.core.audit import Head, line_hash
from glasskey.core.errors import IntegrityError, UsageError
from glasskey.core.storage import postgres_schema as schema
from glasskey.core.storage.files import FileStore
from glasskey.core.storage.postgres import SERIAL_WRITER, PostgresStore
from glasskey.core.storage.postgres_txn import TABLES, Conn

#: Audit rows sent per round trip.
BATCH = 5000


@dataclass(frozen=True)
class Moved:
    """What was moved: entries, documents, and the verified head."""

    entries: int
    documents: int
    head_seq: int
    head_hash: str


def move_to_postgres(source: FileStore, target: PostgresStore) -> Moved:
    """Copy the vault at ``source`` into the empty database ``target``; verify it."""
    with source.transaction():
        pass  # adopt or quarantine any uncommitted audit tail first (its own commit)
    with source.transaction() as txn:
        meta = txn.meta
        head = Head.from_doc(meta.get("audit"))
        with target._conn(SERIAL_WRITER) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('glasskey.create'))")
            current = schema.schema_version(conn)
            if current and conn.execute("SELECT 1 FROM glasskey.doc WHERE tbl = 'meta' "
                                        "AND key = 'vault'").fetchone():
                raise UsageError(f"a vault already exists at {target.location}")
            schema.ensure_client_role(conn)
            schema.migrate(conn, current)
            count, last = 0, None
            batch: list[tuple[int, bytes, str]] = []
            for raw in source.audit_lines():
                count += 1
                last = line_hash(raw)
                batch.append((count, raw, last))
                if len(batch) >= BATCH:
                    _append(conn, batch)
            _append(conn, batch)
            if count != head.seq or (count and last != head.hash):
                raise IntegrityError(
                    f"the file vault's log ends at entry {count}, its state at {head.seq}; "
                    "run 'glasskey audit verify' on it before moving it")
            documents = 0
            docs: list[tuple[str, str, bytes]] = []
            for name in sorted(TABLES):  # in batches: a large vault never sits in memory
                for key, doc in txn.stream_items(name):
                    docs.append((name, key, canonical.dumps(doc)))
                    if len(docs) >= BATCH:
                        documents += _insert(conn, docs)
            documents += _insert(conn, docs)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO glasskey.table_version (tbl, version) "
                                "VALUES (%s, 1)", [(name,) for name in sorted(TABLES)])
            conn.execute("UPDATE glasskey.counter SET seq = 1 WHERE id = 1")
            conn.execute("COMMIT")
    result = target.verify_audit()
    if not result.ok or (result.head.seq, result.head.hash) != (head.seq, head.hash):
        raise IntegrityError(f"the moved vault does not verify: {result.reason}")
    return Moved(count, documents, head.seq, head.hash)


def _insert(conn: Conn, docs: list[tuple[str, str, bytes]]) -> int:
    count = len(docs)
    if docs:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO glasskey.doc (tbl, key, body) VALUES (%s, %s, %s)",
                            docs)
        docs.clear()
    return count


def _append(conn: Conn, batch: list[tuple[int, bytes, str]]) -> None:
    if batch:
        with conn.cursor() as cur:
            cur.executemany("SELECT glasskey.append_audit(%s, %s, %s)", batch)
        batch.clear()
