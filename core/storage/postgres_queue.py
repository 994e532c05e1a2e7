"""The PostgreSQL backend's writers' queue (docs/team-mode.md, "Concurrency").

Every write appends to the one audit chain, so writers take turns. The turn is
a session-level advisory lock taken in autocommit *before* BEGIN: a lock taken
inside the transaction would come after its snapshot, and under SERIALIZABLE a
writer that waited would read its predecessor's old state and fail (40001) on
the first row they share. The writer then begins SERIALIZABLE and locks the
counter row, which older glasskeys (that queue only on the row) also lock, so
old and new clients exclude each other during an upgrade. The lock is released
in the COMMIT's own round trip, after a ROLLBACK, or by the server when the
connection ends.
"""

from __future__ import annotations

import psycopg
from glasskey.core.errors import IntegrityError, NotFoundError, StorageError
from glasskey.core.storage import retry
from glasskey.core.storage.postgres_txn import Conn

WRITER = "BEGIN ISOLATION LEVEL SERIALIZABLE"
QUEUE = "SELECT pg_advisory_lock(hashtext('glasskey.writers'))"
LEAVE = "SELECT pg_advisory_unlock(hashtext('glasskey.writers')); RESET lock_timeout"
#: The writer's first statements, in one round trip: its snapshot, then the row.
LOCK_ROW = ("BEGIN ISOLATION LEVEL SERIALIZABLE; "
            "SELECT seq FROM glasskey.counter WHERE id = 1 FOR UPDATE")
#: How often a writer retries locking the counter row when a writer outside the
#: queue (an older glasskey that only locks the row) committed since its snapshot.
LOCK_ATTEMPTS = 5


def busy(where: str, lock_timeout: float) -> StorageError:
    return StorageError(
        f"the vault at {where} is busy: another client's change did not "
        f"finish within {lock_timeout:g} s; try again")


def enter(conn: Conn, lock_timeout: float) -> None:
    """Wait (at most ``lock_timeout`` seconds) for the writer before us to finish;
    LockNotAvailable when it does not."""
    conn.execute(f"SET lock_timeout = {max(1, int(lock_timeout * 1000))}; {QUEUE}".encode())


def leave(conn: Conn, queued: bool, commit: bool = False) -> None:
    """COMMIT (``commit``) or roll back what is open, then leave the queue if ``queued``.
    A failed COMMIT is raised (nothing after it ran); any other failure closes the
    connection, which leaves the queue too."""
    if commit:
        conn.execute(f"COMMIT; {LEAVE}" if queued else "COMMIT")
        return
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        if queued:
            conn.execute(LEAVE)
    except psycopg.Error:
        conn.close()


def lock_counter(conn: Conn, where: str, lock_timeout: float) -> None:
    """Begin SERIALIZABLE and lock the counter row. The queue already ordered us, so
    this waits only for a writer outside it (an older glasskey, the owner's
    migration). If such a writer committed since our snapshot, the lock fails with
    40001 before any of the caller's work ran: take a fresh snapshot and lock again."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            cur = conn.execute(LOCK_ROW.encode())
            cur.nextset()
            row = cur.fetchone()
        except psycopg.errors.SerializationFailure:
            conn.execute("ROLLBACK")
            if attempt == LOCK_ATTEMPTS:
                raise retry.gave_up(where, attempt) from None
            retry.pause(attempt)
            continue
        except psycopg.errors.UndefinedTable:
            raise NotFoundError(
                f"no vault at {where} (create one with 'glasskey init')") from None
        except psycopg.errors.LockNotAvailable:
            raise busy(where, lock_timeout) from None
        if row is None:
            raise IntegrityError("the database's commit counter is missing")
        return
