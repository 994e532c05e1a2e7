"""Schema migrations run once, inside a write transaction, and lose nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkout_world import World, make_world
from glasskey.core import store as store_mod
from glasskey.core.storage.files import FileStore
from glasskey.core.storage.manifest import LAYOUT, layout_for, state_layout
from glasskey.core.storage.migrate import relayout
from glasskey.core.store import Store
from helpers import shard_digests


def _history(w: World, uses: int = 5) -> list[str]:
    w.add("db-root", "value-1")
    ids = [w.vault.request(w.s("alice"), "db-root", "r", "t", 60).id]
    w.vault.cancel(w.s("alice"), ids[0])
    for _ in range(uses):
        req = w.checkout("db-root")
        w.vault.reveal(w.s("alice"), req)
        w.vault.checkin(w.s("alice"), req)
        ids.append(req)
    return ids


def _lay_out_as(w: World, schema: int) -> None:
    """Rewrite the vault as ``schema`` laid it out (and say so in vault.json)."""
    store = w.vault.store
    assert isinstance(store, FileStore)
    with store.transaction() as txn:
        relayout(txn, layout_for(schema))
        meta = txn.meta
        meta["schema"] = schema
        txn.set_meta(meta)


def _referenced(root: Path) -> set[str]:
    """Every table file the current or the previous generation names."""
    out: set[str] = set()
    for name in ("vault.json", "vault.json.bak"):
        gen = json.loads((root / name).read_bytes())
        for table, shards in gen["manifest"].items():
            out |= {f"{table}.{i}.{d}.json" for i, d in shards.items()}
        for table, groups in gen.get("groups", {}).items():
            for key, digest in groups.items():
                out.add(f"{table}.g{key}.{digest}.json")
                group = json.loads((root / "tables" / f"{table}.g{key}.{digest}.json")
                                   .read_bytes())
                out |= {f"{table}.{i}.{d}.json" for i, d in group["shards"].items()}
    return out


def _nothing_left_behind(root: Path) -> None:
    on_disk = {p.name for p in (root / "tables").iterdir()}
    assert on_disk <= _referenced(root), sorted(on_disk - _referenced(root))[:5]


def _migrates_losing_nothing(w: World, ids: list[str]) -> None:
    before = {c.id: c for c in w.vault.checkouts()}
    assert set(before) == set(ids)
    w.unlock("bob")  # the first write migrates
    state = json.loads((w.root / "vault.json").read_bytes())
    assert state["meta"]["vault"]["schema"] == store_mod.SCHEMA_VERSION == 7
    assert state_layout(state) == LAYOUT
    assert state["manifest"] == {}  # every manifest lives in group files
    assert set(state["groups"]) == {"credentials", "sealed", "requests"}
    assert len((w.root / "vault.json").read_bytes()) < 16_000
    assert {c.id: c for c in w.vault.checkouts()} == before
    expected = {f"{store_mod.shard_of(i, LAYOUT['requests'].shards):02x}" for i in ids}
    assert set(shard_digests(w.root, "requests")) == expected
    assert w.vault.verify_audit().ok
    req = w.checkout("db-root")  # and it keeps working
    assert w.vault.reveal(w.s("alice"), req).reveal()
    w.vault.checkin(w.s("alice"), req)
    _nothing_left_behind(w.root)


#: How each older schema laid the large tables out: (flat manifests in vault.json,
#: tables named by group files, key length of a requests shard).
OLD_LAYOUTS = {
    2: ({"credentials", "sealed", "requests"}, set(), 2),  # requests in 64 shards
    5: ({"credentials", "sealed", "requests"}, set(), 3),  # 1,024, all in vault.json
    6: ({"credentials", "sealed"}, {"requests"}, 3),  # 1,024 named by group files
}


@pytest.mark.parametrize("schema", sorted(OLD_LAYOUTS))
def test_an_older_vault_is_read_as_it_is_and_migrated_to_schema_7(
        tmp_path: Path, schema: int) -> None:
    w = make_world(tmp_path)
    ids = _history(w)
    _lay_out_as(w, schema)
    flat, grouped, key_len = OLD_LAYOUTS[schema]
    state = json.loads((w.root / "vault.json").read_bytes())
    assert set(state["manifest"]) == flat and set(state.get("groups", {})) == grouped
    assert max(len(k) for k in shard_digests(w.root, "requests")) <= key_len
    assert {c.id for c in w.vault.checkouts()} == set(ids)  # a reader reads it as it is
    _migrates_losing_nothing(w, ids)


def test_garbage_collection_deletes_what_the_previous_commit_retired(tmp_path: Path) -> None:
    """Each commit lists the files it replaced; the next deletes exactly those (the
    generation in between still names them), without listing tables/."""
    w = make_world(tmp_path)
    _history(w, uses=1)
    req = w.checkout("db-root")
    state = json.loads((w.root / "vault.json").read_bytes())
    retired = state["retired"]
    assert retired and all((w.root / "tables" / n).exists() for n in retired)
    w.vault.reveal(w.s("alice"), req)
    assert not any((w.root / "tables" / n).exists() for n in retired)
    _nothing_left_behind(w.root)


def test_a_stray_table_file_is_swept_by_the_next_store(tmp_path: Path) -> None:
    """A crash between a shard write and its commit leaves a file no generation
    names; a store's first commit lists tables/ and removes it."""
    w = make_world(tmp_path)
    _history(w, uses=1)
    stray = w.root / "tables" / f"requests.0a.{'ab' * 32}.json"
    stray.write_bytes(b"{}")
    w.checkout("db-root")  # this store has committed before: no listing
    assert stray.exists()
    store = Store(w.root)
    with store.transaction() as txn:
        txn.set_meta(txn.meta)
    assert not stray.exists()
    _nothing_left_behind(w.root)
