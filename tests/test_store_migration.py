"""Schema migrations run once, inside a write transaction, and lose nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkout_world import make_world
from glasskey.core import canonical
from glasskey.core import store as store_mod
from glasskey.core.storage import manifest as manifest_mod
from helpers import shard_digests


def test_schema_2_requests_are_resharded_into_schema_3(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Build a vault laid out as schema 2 did: requests in 64 shards.
    monkeypatch.setitem(store_mod.TABLE_SHARDS, "requests", 64)
    monkeypatch.setattr(manifest_mod, "_SHARD_KEYS",
                        {n: frozenset(f"{i:02x}" for i in range(store_mod.TABLE_SHARDS[n]))
                         for n in store_mod.SHARDED_TABLES})
    w = make_world(tmp_path)
    w.add("db-root", "value-1")
    ids = [w.vault.request(w.s("alice"), "db-root", "r", "t", 60).id]
    w.vault.cancel(w.s("alice"), ids[0])
    for _ in range(5):
        req = w.checkout("db-root")
        w.vault.reveal(w.s("alice"), req)
        w.vault.checkin(w.s("alice"), req)
        ids.append(req)
    with w.vault.store.transaction() as txn:
        meta = txn.meta
        meta["schema"] = 2
        txn.set_meta(meta)
    state = json.loads((w.root / "vault.json").read_bytes())
    assert max(len(k) for k in state["manifest"]["requests"]) == 2
    before = {c.id: c for c in w.vault.checkouts()}
    monkeypatch.undo()

    # Opening it with this glasskey migrates on the first write.
    w.unlock("bob")
    state = json.loads((w.root / "vault.json").read_bytes())
    assert state["meta"]["vault"]["schema"] == store_mod.SCHEMA_VERSION
    after = {c.id: c for c in w.vault.checkouts()}
    assert after == before and set(after) == set(ids)
    expected = {f"{store_mod.shard_of(i, store_mod.TABLE_SHARDS['requests']):02x}" for i in ids}
    assert set(shard_digests(w.root, "requests")) == expected
    assert w.vault.verify_audit().ok
    # and it keeps working
    req = w.checkout("db-root")
    assert w.vault.reveal(w.s("alice"), req).reveal()


def test_schema_5_requests_manifest_moves_into_group_files(tmp_path: Path) -> None:
    """Schema 5 -> 6: the 1,024-entry requests manifest leaves vault.json for
    content-addressed group files; nothing is lost and nothing is left behind."""
    w = make_world(tmp_path)
    w.add("db-root", "value-1")
    ids = []
    for _ in range(6):
        req = w.checkout("db-root")
        w.vault.reveal(w.s("alice"), req)
        w.vault.checkin(w.s("alice"), req)
        ids.append(req)
    digests = shard_digests(w.root, "requests")
    before = {c.id: c for c in w.vault.checkouts()}
    # Lay the state out as schema 5 did: every shard digest in vault.json.
    path = w.root / "vault.json"
    state = json.loads(path.read_bytes())
    state["manifest"]["requests"] = digests
    del state["groups"]
    state["meta"]["vault"]["schema"] = 5
    path.write_bytes(canonical.dumps(state))
    assert {c.id: c for c in w.vault.checkouts()} == before  # a reader reads schema 5

    w.unlock("bob")  # the first write migrates
    state = json.loads(path.read_bytes())
    assert state["meta"]["vault"]["schema"] == store_mod.SCHEMA_VERSION == 6
    assert "requests" not in state["manifest"]
    assert len(path.read_bytes()) < 8_000
    assert shard_digests(w.root, "requests") == digests  # the same shard files
    assert {c.id: c for c in w.vault.checkouts()} == before
    req = w.checkout("db-root")  # and it keeps working
    w.vault.reveal(w.s("alice"), req)
    w.vault.checkin(w.s("alice"), req)
    assert set(ids) < {c.id for c in w.vault.checkouts()}
    assert w.vault.verify_audit().ok
    # Every table file is referenced by the current or the previous generation.
    referenced = set()
    for name in ("vault.json", "vault.json.bak"):
        gen = json.loads((w.root / name).read_bytes())
        for table, shards in gen["manifest"].items():
            referenced |= {f"{table}.{i}.{d}.json" for i, d in shards.items()}
        for table, groups in gen.get("groups", {}).items():
            for key, digest in groups.items():
                referenced.add(f"{table}.g{key}.{digest}.json")
                group = json.loads((w.root / "tables" / f"{table}.g{key}.{digest}.json")
                                   .read_bytes())
                referenced |= {f"{table}.{i}.{d}.json" for i, d in group["shards"].items()}
    on_disk = {p.name for p in (w.root / "tables").iterdir()}
    assert on_disk <= referenced | {p for p in on_disk if p.endswith(".tmp")}
