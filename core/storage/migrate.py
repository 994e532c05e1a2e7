"""Schema migrations of the file backend, applied inside the first write transaction.

Each step moves schema N to N+1 and is written against the transaction the
backend opened (it may touch the layout directly: that is what it migrates).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from glasskey.core.storage.interface import Doc
from glasskey.core.storage.manifest import (
    GROUP_SIZE,
    GROUPS_KEY,
    SCHEMA_VERSION,
    SHARDS,
    TABLE_SHARDS,
)

if TYPE_CHECKING:
    from glasskey.core.storage.transaction import FileTransaction

#: Migrations from schema N to N+1, applied inside a write transaction.
MIGRATIONS: dict[int, Callable[[FileTransaction], None]] = {}


def _add_review_and_kit_tables(txn: FileTransaction) -> None:
    for name in ("reviews", "kits"):
        txn.state.setdefault(name, {})
    txn.dirty_small = True


MIGRATIONS[1] = _add_review_and_kit_tables


def _reshard_requests(txn: FileTransaction) -> None:
    """Schema 2 -> 3: move requests from 64 shards to TABLE_SHARDS['requests']."""
    docs: dict[str, Doc] = {}
    for index in range(SHARDS):
        digest = txn._manifest_entry("requests", index)
        if digest is not None:
            docs.update(txn.store._read_shard("requests", index, digest))
    txn.state.setdefault("manifest", {}).pop("requests", None)
    txn._shards = {k: v for k, v in txn._shards.items() if k[0] != "requests"}
    table = txn.table("requests")
    for key, doc in docs.items():
        table.put(key, doc)
    txn.dirty_small = True


MIGRATIONS[2] = _reshard_requests


def _index_flagged_credentials(txn: FileTransaction) -> None:
    """Schema 3 -> 4: the flags table, from every credential's status."""
    flags = txn.table("flags")
    for doc in txn.table("credentials").values():
        if doc.get("status") in ("rotation-failed", "apply-pending"):
            flags.put(doc["id"], {"name": doc["name"], "status": doc["status"],
                                  "failure": doc.get("failure", "")})
    txn.dirty_small = True


MIGRATIONS[3] = _index_flagged_credentials


def _signed_roster(txn: FileTransaction) -> None:
    """Schema 4 -> 5: nothing to move. A vault whose log does not open with a signed
    founding (every 0.1 vault) is refused by verification before this runs: its
    roster cannot be signed after the fact without every founder."""


MIGRATIONS[4] = _signed_roster


def _group_manifests(txn: FileTransaction) -> None:
    """Schema 5 -> 6: move the shard manifest of every table with more than SHARDS
    shards (requests: 1,024 digests) out of vault.json into group files."""
    manifest = txn.state.get("manifest", {})
    for name in list(manifest):
        if TABLE_SHARDS.get(name, SHARDS) <= SHARDS:
            continue
        for idx, digest in manifest.pop(name).items():
            key = (name, int(idx, 16) // GROUP_SIZE)
            txn._groups.setdefault(key, {})[idx] = digest
            txn._start_group_files.setdefault(key, set())
            txn.dirty_groups.add(key)
        txn.state.setdefault(GROUPS_KEY, {}).setdefault(name, {})
    txn.dirty_small = True


MIGRATIONS[5] = _group_manifests


def migrate(txn: FileTransaction) -> None:
    meta = txn.meta
    while meta["schema"] < SCHEMA_VERSION:
        MIGRATIONS[meta["schema"]](txn)
        meta = txn.meta
        meta["schema"] += 1
        txn.set_meta(meta)
