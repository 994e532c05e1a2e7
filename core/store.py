"""Compatibility name for the storage layer: ``Store`` is the file backend.

New code imports the Protocols from ``glasskey.core.storage.interface`` and
the backend from ``glasskey.core.storage.files``; this module keeps the old
import path (``from glasskey.core.store import Refused, Transaction``) working
for the services and tests.
"""

from __future__ import annotations

from glasskey.core.storage.files import FileStore
from glasskey.core.storage.interface import Refused, Transaction
from glasskey.core.storage.manifest import (
    SCHEMA_VERSION,
    SHARDED_TABLES,
    SHARDS,
    SMALL_TABLES,
    TABLE_SHARDS,
    parse_state,
    shard_of,
)
from glasskey.core.storage.transaction import FileTransaction

#: The file backend under its old name.
Store = FileStore

__all__ = ["SCHEMA_VERSION", "SHARDED_TABLES", "SHARDS", "SMALL_TABLES", "TABLE_SHARDS",
           "FileStore", "FileTransaction", "Refused", "Store", "Transaction", "parse_state",
           "shard_of"]
