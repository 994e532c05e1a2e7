"""Schema migrations run once, inside a write transaction, and lose nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkout_world import make_world
from glasskey.core import store as store_mod
from glasskey.core.storage import manifest as manifest_mod


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
    assert set(state["manifest"]["requests"]) == expected
    assert w.vault.verify_audit().ok
    # and it keeps working
    req = w.checkout("db-root")
    assert w.vault.reveal(w.s("alice"), req).reveal()
