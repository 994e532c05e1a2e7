"""The file backend's tables: small ones inside vault.json, large ones in shards.

Services ask ``txn.table(name)`` and get one of these; which tables are
sharded (manifest.LAYOUT) is decided here, not by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from glasskey.core.storage.interface import Doc
from glasskey.core.storage.manifest import shard_of
from tinydb.storages import Storage
from tinydb.table import Document, Table

if TYPE_CHECKING:
    from glasskey.core.storage.transaction import FileTransaction


class TxnStorage(Storage):  # type: ignore[misc]
    """TinyDB storage backed by the transaction's in-memory copy."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def read(self) -> dict[str, Any] | None:
        return self.data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.data = data


class KeyedTable(Table):
    """TinyDB table whose document ids are glasskey's own string keys.

    TinyDB's stubs say ids are ints; its code only requires them hashable and
    convertible with ``document_id_class``, hence the casts below.
    """

    document_id_class = str  # type: ignore[assignment]


def _id(key: str) -> int:
    return cast(int, key)


class SmallTable:
    """A table inside vault.json, read and written through TinyDB's Table API."""

    def __init__(self, txn: FileTransaction, name: str) -> None:
        self._txn = txn
        self._name = name
        self._table = txn.db.table(name, cache_size=0)

    def get(self, key: str) -> Doc | None:
        doc = self._table.get(doc_id=_id(key))
        return dict(doc) if doc is not None else None

    def put(self, key: str, doc: Doc) -> None:
        self._txn._require_write()
        self._table.upsert(Document(dict(doc), doc_id=_id(key)))
        self._txn.dirty_small = True

    def delete(self, key: str) -> None:
        self._txn._require_write()
        if self._table.contains(doc_id=_id(key)):
            self._table.remove(doc_ids=[_id(key)])
            self._txn.dirty_small = True

    def items(self) -> list[tuple[str, Doc]]:
        return sorted((str(d.doc_id), dict(d)) for d in self._table.all())

    def values(self) -> list[Doc]:
        return [doc for _, doc in self.items()]

    def __len__(self) -> int:
        return len(self._table)

    def partitions(self) -> int:
        return 1

    def partition(self, index: int) -> list[Doc]:
        return self.values() if index == 0 else []


class ShardedTable:
    """A large table split into content-addressed shard files."""

    def __init__(self, txn: FileTransaction, name: str) -> None:
        self._txn = txn
        self._name = name
        self._count = txn.layout[name].shards

    def _shard(self, index: int) -> dict[str, Doc]:
        return self._txn._load_shard(self._name, index)

    def get(self, key: str) -> Doc | None:
        doc = self._shard(shard_of(key, self._count)).get(key)
        return dict(doc) if doc is not None else None

    def put(self, key: str, doc: Doc) -> None:
        self._txn._require_write()
        index = shard_of(key, self._count)
        self._shard(index)[key] = dict(doc)
        self._txn.dirty_shards.add((self._name, index))

    def delete(self, key: str) -> None:
        self._txn._require_write()
        index = shard_of(key, self._count)
        if self._shard(index).pop(key, None) is not None:
            self._txn.dirty_shards.add((self._name, index))

    def _present(self) -> Iterator[int]:
        for index in range(self._count):
            if self._txn._manifest_entry(self._name, index) is None \
                    and (self._name, index) not in self._txn._shards:
                continue  # an empty shard: nothing to read
            yield index

    def values(self) -> Iterator[Doc]:
        for index in self._present():
            yield from self._shard(index).values()

    def items(self) -> Iterator[tuple[str, Doc]]:
        for index in self._present():
            yield from self._shard(index).items()

    def __len__(self) -> int:
        return sum(1 for _ in self.values())

    def partitions(self) -> int:
        return self._count

    def partition(self, index: int) -> list[Doc]:
        return list(self._shard(index).values())
