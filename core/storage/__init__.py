"""Where the vault's state lives: a declared interface and the backends behind it.

``interface`` holds the Protocols every service and front is written against
(``Store``, ``Transaction``, ``Table``, the audit reader and writer, and the
seq-based ``AuditCursor``). ``files`` is the file backend (vault.json, shards,
audit.jsonl); ``postgres`` is the PostgreSQL backend (docs/team-mode.md). Both
pass the same contract suite (tests/test_storage_contract.py).

``open_store`` is the one place a vault's name becomes a backend: a
``postgresql://`` URL opens the database, anything else is a directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glasskey.core.storage.interface import Store

URL_SCHEMES = ("postgresql://", "postgres://")


def open_store(location: str | Path | None = None, *, lock_timeout: float = 10.0) -> Store:
    """The store named by ``location``; None: the platform's default vault directory
    (the fronts resolve ``GLASSKEY_VAULT`` themselves, tui/environment.py). The
    backends are imported here, on demand: a file vault never loads the PostgreSQL
    driver."""
    if location is None:
        import platformdirs

        location = Path(platformdirs.user_data_dir("glasskey")) / "vault"
    if isinstance(location, str) and location.startswith(URL_SCHEMES):
        from glasskey.core.storage.postgres import PostgresStore

        return PostgresStore(location, lock_timeout=lock_timeout)
    from glasskey.core.storage.files import FileStore

    return FileStore(Path(location), lock_timeout=lock_timeout)


__all__ = ["URL_SCHEMES", "open_store"]
