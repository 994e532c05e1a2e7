"""Schema migrations of the file backend, applied inside the first write transaction.

Each step moves schema N to N+1 and is written against the transaction the
backend opened (it may touch the layout directly: that is what it migrates).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from glasskey.core.storage.interface import Doc
from glasskey.core.storage.manifest import (
    GROUPS_KEY,
    SCHEMA_VERSION,
    SHARDED_TABLES,
    Layout,
    layout_for,
    manifest_files,
    shard_file,
)

if TYPE_CHECKING:
    from glasskey.core.storage.transaction import FileTransaction


def relayout(txn: FileTransaction, target: Layout) -> None:
    """Re-split every large table into ``target``: read each document in the layout
    the transaction has, drop that layout's files (the commit retires them) and
    write everything again. Shards whose bytes do not change keep their files."""
    docs: dict[str, dict[str, Doc]] = {
        name: dict(txn.table(name).items()) for name in SHARDED_TABLES}
    dropped = manifest_files(txn.state)  # flat manifests and group files, and
    for (name, _), members in txn._groups.items():  # every shard the groups named
        dropped |= {shard_file(name, int(i, 16), d) for i, d in members.items()}
    manifest = txn.state.setdefault("manifest", {})
    for name in SHARDED_TABLES:
        manifest.pop(name, None)
    txn.state[GROUPS_KEY] = {}
    txn._shards, txn._groups = {}, {}
    txn._start_digest, txn._start_group_digest = {}, {}
    txn.dirty_shards, txn.dirty_groups = set(), set()
    txn.layout = target
    txn.dropped_files |= dropped
    txn.sweep = True
    for name, table_docs in docs.items():
        table = txn.table(name)
        for key, doc in table_docs.items():
            table.put(key, doc)
    txn.dirty_small = True


#: Migrations from schema N to N+1, applied inside a write transaction.
MIGRATIONS: dict[int, Callable[[FileTransaction], None]] = {}


def _add_review_and_kit_tables(txn: FileTransaction) -> None:
    for name in ("reviews", "kits"):
        txn.state.setdefault(name, {})
    txn.dirty_small = True


MIGRATIONS[1] = _add_review_and_kit_tables


def _reshard_requests(txn: FileTransaction) -> None:
    """Schema 2 -> 3: requests from 64 shards into 1,024."""
    relayout(txn, layout_for(3))


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
    """Schema 5 -> 6: the 1,024-entry requests manifest from vault.json into group
    files (the shard files stay: their bytes do not change)."""
    relayout(txn, layout_for(6))


MIGRATIONS[5] = _group_manifests


def _finer_shards(txn: FileTransaction) -> None:
    """Schema 6 -> 7: every large table in small shards named by group files
    (manifest.LAYOUT), so an operation at scale reads and rewrites ~10-35 kB shards
    instead of 90-550 kB ones; garbage collection by retired lists."""
    relayout(txn, layout_for(7))


MIGRATIONS[6] = _finer_shards


def migrate(txn: FileTransaction) -> None:
    meta = txn.meta
    while meta["schema"] < SCHEMA_VERSION:
        MIGRATIONS[meta["schema"]](txn)
        meta = txn.meta
        meta["schema"] += 1
        txn.set_meta(meta)
