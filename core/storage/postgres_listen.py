"""Wake-ups from PostgreSQL: LISTEN/NOTIFY on a dedicated connection.

Every commit sends ``NOTIFY glasskey`` with an empty payload (delivered by the
server at COMMIT). The notification is only a wake-up, never data: one can be
lost while the listener is disconnected, collapsed with others, or delayed
until a long transaction commits. So on every wake-up, and after every
(re)connect, the waiter reads the commit counter itself and compares it with
the last one it saw: nothing depends on a notification arriving, it only
makes the answer come sooner than a poll would.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import psycopg
from glasskey.core.errors import StorageError
from glasskey.core.storage import postgres_schema as schema

if TYPE_CHECKING:
    from glasskey.core.storage.postgres import PostgresStore
    from glasskey.core.storage.postgres_txn import Conn

CHANNEL = "glasskey"
#: After a failed (re)connect, wait this long before the next attempt.
RECONNECT_PAUSE = 0.5


class Listener:
    """One LISTEN connection per store handle, opened on first use."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: Conn | None = None
        self._lock = threading.Lock()

    def _listening(self) -> Conn:
        if self._conn is None or self._conn.closed:
            conn = schema.connect(self._store.params, self._store.location)
            conn.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
        return self._conn

    def wait(self, seen: int, timeout: float) -> int:
        """The commit counter once it differs from ``seen``, or after ``timeout``
        seconds (then the counter as it is). Survives the server going away: it
        reconnects, and catches up from the counter, until the timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                try:
                    conn = self._listening()  # LISTEN first: no wake-up falls in between
                    current = self._store.seq()
                    remaining = deadline - time.monotonic()
                    if current != seen or remaining <= 0:
                        return current
                    for _ in conn.notifies(timeout=remaining, stop_after=1):
                        pass
                except (psycopg.OperationalError, psycopg.InterfaceError, StorageError):
                    self.close()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StorageError(
                            f"the PostgreSQL vault at {self._store.location} cannot be "
                            "reached to wait for changes; try again") from None
                    time.sleep(min(RECONNECT_PAUSE, remaining))

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
