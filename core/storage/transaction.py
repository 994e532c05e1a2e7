"""A transaction of the file backend: the parsed vault.json, shards loaded on demand,
and the audit lines it recorded; one rename commits them all (docs/storage.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from glasskey.core import canonical
from glasskey.core.audit import Head
from glasskey.core.errors import IntegrityError, UsageError
from glasskey.core.fsutil import fsync_dir
from glasskey.core.roster import Roster
from glasskey.core.storage.chainwrite import ChainWriter
from glasskey.core.storage.interface import Doc, Recorded
from glasskey.core.storage.manifest import (
    GROUPS_KEY,
    RETIRED_KEY,
    SHARDED_TABLES,
    SMALL_TABLES,
    SWEEP_EVERY,
    group_digests,
    group_file,
    manifest_entry,
    manifest_files,
    retired_files,
    shard_file,
    state_layout,
)
from glasskey.core.storage.tables import KeyedTable, ShardedTable, SmallTable, TxnStorage
from tinydb import TinyDB

if TYPE_CHECKING:
    from glasskey.core.storage.files import FileStore


class ShardGone(Exception):
    """A shard of the generation being read was collected; re-read."""


class FileTransaction(ChainWriter):
    """One consistent view of vault.json and its shards; writable only under the lock."""

    def __init__(self, store: FileStore, state: dict[str, Any], write: bool) -> None:
        self.store = store
        self.write = write
        self.db = TinyDB(storage=TxnStorage, data=state)
        self.db.table_class = KeyedTable
        self.dirty_small = False
        self.dirty_shards: set[tuple[str, int]] = set()
        self._shards: dict[tuple[str, int], dict[str, Doc]] = {}
        #: (signer, event, subject, details, seq) of every entry this transaction
        #: recorded: what ``Store.on_unlock`` (notifications) reads after the commit.
        self.recorded: list[Recorded] = []
        #: How the large tables are split (by the state's schema; a migration that
        #: re-lays them out switches it).
        self.layout = state_layout(state)
        #: The table files the commit that wrote this state retired, and the digest
        #: each shard and group this write loaded had when it started: garbage
        #: collection works from these, never by listing ``tables/``.
        self._start_retired = retired_files(state) if write else []
        self._start_digest: dict[tuple[str, int], str | None] = {}
        self._start_group_digest: dict[tuple[str, int], str | None] = {}
        #: Group manifests loaded so far ((table, group) -> {shard: digest}), and
        #: those to rewrite.
        self._groups: dict[tuple[str, int], dict[str, str]] = {}
        self.dirty_groups: set[tuple[str, int]] = set()
        #: Files of the starting generation a re-layout dropped wholesale (migrate.py).
        self.dropped_files: set[str] = set()
        #: Set by a migration: list ``tables/`` after this commit (FileStore.sweep).
        self.sweep = False
        self.head = Head.from_doc(self.meta.get("audit"))
        self._start_offset = self.head.offset
        #: The signed roster as verified up to ``head`` (core/chain.py): the only
        #: source of operators' keys, roles and status, and of the kits.
        self.roster = Roster()
        self._lines: list[bytes] = []
        self.now = store.now

    # -- the audit chain (ChainWriter) ---------------------------------------------------
    def _read_newest(self) -> tuple[float, str] | None:
        return self.store.newest_entry(self.head)

    def _keep_line(self, line: bytes) -> None:
        self._lines.append(line)
        self.dirty_small = True

    @property
    def state(self) -> dict[str, Any]:
        storage = cast(TxnStorage, self.db.storage)
        return storage.data

    # -- tables ---------------------------------------------------------------
    def table(self, name: str) -> SmallTable | ShardedTable:
        """The table ``name``; whether it lives in vault.json or in shards is this
        backend's choice (TABLE_SHARDS)."""
        if name in SHARDED_TABLES:
            return ShardedTable(self, name)
        if name in SMALL_TABLES:
            return SmallTable(self, name)
        raise UsageError(f"internal: unknown table {name}")

    def _small(self, name: str) -> SmallTable:
        return SmallTable(self, name)

    @property
    def meta(self) -> Doc:
        doc = self._small("meta").get("vault")
        if doc is None:
            raise IntegrityError("vault.json has no vault metadata")
        return doc

    def set_meta(self, doc: Doc) -> None:
        self._small("meta").put("vault", doc)

    def _manifest_entry(self, name: str, index: int) -> str | None:
        table = self.layout[name]
        if table.group:
            return self._group(name, table.group_of(index)).get(f"{index:02x}")
        return manifest_entry(self.state, name, index)

    def _group(self, name: str, group: int) -> dict[str, str]:
        key = (name, group)
        doc = self._groups.get(key)
        if doc is None:
            digest = group_digests(self.state, name).get(f"{group:02x}")
            try:
                doc = {} if digest is None else self.store._read_group(
                    name, group, digest, self.layout[name])
            except ShardGone as gone:
                if self.write:
                    raise IntegrityError(f"table file {gone.args[0]} is missing") from None
                raise
            if self.write:
                doc = dict(doc)
                self._start_group_digest[key] = digest
            self._groups[key] = doc
        return doc

    def _load_shard(self, name: str, index: int) -> dict[str, Doc]:
        key = (name, index)
        shard = self._shards.get(key)
        if shard is None:
            digest = self._manifest_entry(name, index)
            try:
                shard = {} if digest is None else self.store._read_shard(name, index, digest)
            except ShardGone as gone:
                if self.write:  # under the lock nothing is collected: it is missing
                    raise IntegrityError(f"table file {gone.args[0]} is missing") from None
                raise
            if self.write:
                shard = {k: dict(v) for k, v in shard.items()}
                self._start_digest[key] = digest
            self._shards[key] = shard
        return shard

    def _is_current(self, fname: str) -> bool:
        """Whether this transaction's state names table file ``fname``. A shard in a
        group this write did not load is not: that group is as the commit that
        retired the file left it, which no longer named it."""
        table, part, digest, _ = fname.split(".")
        layout = self.layout.get(table)
        if layout is None:
            return False
        if part.startswith("g"):
            return group_digests(self.state, table).get(part[1:]) == digest
        if not layout.group:
            return manifest_entry(self.state, table, int(part, 16)) == digest
        members = self._groups.get((table, layout.group_of(int(part, 16))))
        return members is not None and members.get(part) == digest

    def stream_items(self, name: str) -> Iterator[tuple[str, Doc]]:
        """Every (key, document) of table ``name``, one shard at a time and keeping
        none of them: a copy of a whole vault (migrate) must not hold it all."""
        if name not in SHARDED_TABLES:
            yield from self.table(name).items()
            return
        for index in range(self.layout[name].shards):
            loaded = self._shards.get((name, index))
            if loaded is not None:
                yield from loaded.items()
                continue
            digest = self._manifest_entry(name, index)
            if digest is None:
                continue
            try:
                docs = self.store._read_shard(name, index, digest, keep=False)
            except ShardGone as gone:
                raise IntegrityError(f"table file {gone.args[0]} is missing") from None
            yield from docs.items()

    # -- commit -----------------------------------------------------------------
    def _commit(self) -> None:
        if not (self.dirty_small or self.dirty_shards):
            return
        if self._lines:
            # Fail closed: the audit record is durable before anything it describes.
            self.store.audit.append(self._lines, self._start_offset)
            self._lines = []
        manifest = self.state.setdefault("manifest", {})
        # Garbage collection by difference: what this commit replaces is still named
        # by the generation before (the backup, a lock-free reader's snapshot), so it
        # is listed here and deleted by the *next* commit.
        retired: set[str] = set()
        for name, index in sorted(self.dirty_shards):
            docs = self._shards[(name, index)]
            data = canonical.dumps({"table": name, "shard": index, "docs": docs})
            digest = hashlib.sha256(data).hexdigest()
            self.store._write_shard(name, index, digest, data)
            old = self._start_digest.get((name, index))
            if old is not None and old != digest:
                retired.add(shard_file(name, index, old))
            table = self.layout[name]
            if table.group:
                group = table.group_of(index)
                self._group(name, group)[f"{index:02x}"] = digest
                self.dirty_groups.add((name, group))
            else:
                manifest.setdefault(name, {})[f"{index:02x}"] = digest
        for name, group in sorted(self.dirty_groups):
            doc = self._groups[(name, group)]
            data = canonical.dumps({"table": name, "group": group, "shards": doc})
            digest = hashlib.sha256(data).hexdigest()
            self.store._write_group(name, group, digest, data)
            old = self._start_group_digest.get((name, group))
            if old is not None and old != digest:
                retired.add(group_file(name, group, old))
            self.state.setdefault(GROUPS_KEY, {}).setdefault(name, {})[f"{group:02x}"] = digest
        if self.dirty_shards or self.dirty_groups:
            fsync_dir(self.store.tables_dir)
        meta = self.meta
        meta["seq"] = int(meta.get("seq", 0)) + 1
        meta["audit"] = self.head.to_doc()
        self.state["meta"]["vault"] = meta
        if self.dropped_files:  # a re-layout: everything it wrote is in _groups
            current = manifest_files(self.state)
            for (name, _), members in self._groups.items():
                current |= {shard_file(name, int(i, 16), d) for i, d in members.items()}
            retired |= self.dropped_files - current
        self.state[RETIRED_KEY] = sorted(retired)
        # What the previous commit retired goes now, unless this commit named it again.
        garbage = [name for name in self._start_retired if not self._is_current(name)]
        sweep = self.sweep or meta["seq"] % SWEEP_EVERY == 0
        self.store._replace_state(canonical.dumps(self.state), garbage, sweep)
