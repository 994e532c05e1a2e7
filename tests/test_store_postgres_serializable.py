"""The PostgreSQL backend's writers: queued, SERIALIZABLE, retried on a conflict.

Writers take turns in the writers' queue (a session advisory lock taken before
BEGIN) and run SERIALIZABLE. A writer that bypasses the queue (here: the test's
own superuser connection, changing a row a glasskey writer is about to write)
makes the server roll the glasskey transaction back (SQLSTATE 40001): the
service call runs again from a fresh snapshot (core/storage/retry.py), a
bounded number of times, then says so in one sentence. And N real processes
(own HOME and state dir) racing to open a checkout on one credential, or to
redeem one approval: exactly one wins, the others are refused in one sentence.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from checkout_world import World
from glasskey.core.errors import StorageError
from glasskey.core.storage import retry
from glasskey.core.storage.interface import AuditCursor
from glasskey.core.storage.postgres import PostgresStore
from helpers import counters, increment
from pg_helpers import SECRET

if TYPE_CHECKING:
    from pg_vault import PgVaults

pytest_plugins = ["pg_vault"]  # the session's PostgreSQL (pg_vaults, pg_world, pg_bare)

TOUCH = "UPDATE glasskey.doc SET body = body WHERE tbl = %s AND key = %s"


def _bump(store: PostgresStore, signer: Any, outsider: Any, runs: list[int]) -> None:
    """``increment``, with a writer outside the queue changing the counter's row after
    this transaction's snapshot and before it writes the row (``outsider(run)``)."""
    with store.transaction() as txn:
        runs.append(len(runs) + 1)
        doc = txn.table("requests").get("counter") or {"n": 0}
        outsider(len(runs))
        n = int(doc["n"]) + 1
        txn.table("meta").put("counter", {"n": n})
        txn.table("requests").put("counter", {"n": n})
        txn.record(signer, "test.increment", "counter", {"n": n})


def test_a_forced_serialization_failure_is_retried_and_succeeds(
        pg_bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults) -> None:
    store, signer, db = pg_bare
    increment(store, signer)
    runs: list[int] = []

    def outsider(run: int) -> None:
        if run == 1:
            with pg_vaults.superuser(db) as su:
                su.execute(TOUCH, ("requests", "counter"))

    retry.retried(_bump)(store, signer, outsider, runs)
    assert runs == [1, 2]  # the first run was rolled back and ran again, from a fresh snapshot
    assert counters(store) == (2, 2)  # no lost update, no double count
    entries = store.audit_since(AuditCursor()).entries
    assert [e["details"]["n"] for e in entries if e["event"] == "test.increment"] == [1, 2]
    assert store.verify_audit().ok


def test_a_conflict_without_a_retry_is_one_sentence_and_changes_nothing(
        pg_bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults) -> None:
    store, signer, db = pg_bare
    increment(store, signer)
    head = store.audit_head()

    def outsider(run: int) -> None:
        with pg_vaults.superuser(db) as su:
            su.execute(TOUCH, ("requests", "counter"))

    with pytest.raises(retry.WriteConflict) as caught:
        _bump(store, signer, outsider, [])
    assert str(caught.value) == (
        f"a concurrent change to the PostgreSQL vault at {store.location} conflicted with "
        "this one; nothing was changed, try again")
    assert store.audit_head() == head
    assert increment(store, signer) == 2  # the handle's connections still work


def test_the_retry_bound_gives_one_clear_sentence(
        pg_bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults) -> None:
    store, signer, db = pg_bare
    increment(store, signer)
    head = store.audit_head()
    runs: list[int] = []

    def outsider(run: int) -> None:  # conflicts every time
        with pg_vaults.superuser(db) as su:
            su.execute(TOUCH, ("requests", "counter"))

    with pytest.raises(StorageError) as caught:
        retry.retried(_bump)(store, signer, outsider, runs)
    message = str(caught.value)
    assert not isinstance(caught.value, retry.WriteConflict)  # not retried again above
    assert message == (
        f"the PostgreSQL vault at {store.location} kept changing under this operation "
        f"({retry.ATTEMPTS} attempts, each rolled back by a concurrent change); nothing was "
        "changed, try again")
    assert runs == list(range(1, retry.ATTEMPTS + 1))
    assert store.audit_head() == head and counters(store) == (1, 1)
    assert increment(store, signer) == 2


def test_an_older_client_that_only_locks_the_row_still_goes_first(
        pg_bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An older glasskey queues only on the counter row (READ COMMITTED). A new writer
    that took its snapshot while the old one held the row gets 40001 on the row once
    the old one commits, before any of its own work ran: the store takes a fresh
    snapshot and carries on, and the old client's change is not lost."""
    store, signer, db = pg_bare
    store.lock_timeout = 60.0  # the writer must still be waiting when the test looks
    increment(store, signer)
    pauses: list[int] = []
    monkeypatch.setattr(retry, "pause", pauses.append)
    done: list[int] = []
    with pg_vaults.superuser(db) as old:
        old.execute("BEGIN")
        old.execute("SELECT seq FROM glasskey.counter WHERE id = 1 FOR UPDATE")
        writer = threading.Thread(target=lambda: done.append(increment(store, signer)))
        writer.start()
        deadline = time.monotonic() + 30
        while not old.execute(  # the new writer is waiting on the row, its snapshot taken
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND "
                "wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE'").fetchone():
            assert time.monotonic() < deadline, old.execute(
                "SELECT state, wait_event_type, wait_event, left(query, 80) FROM "
                "pg_stat_activity WHERE datname = current_database()").fetchall()
            time.sleep(0.02)
            # pg_stat_activity is read once per transaction unless the snapshot is cleared
            old.execute("SELECT pg_stat_clear_snapshot()")
        old.execute("UPDATE glasskey.counter SET seq = seq + 1 WHERE id = 1")
        old.execute("UPDATE glasskey.doc SET body = convert_to('{\"n\": 5}', 'UTF8') "
                    "WHERE tbl = 'meta' AND key = 'counter'")  # the old client's change
        old.execute("COMMIT")
    writer.join(15)
    assert pauses == [1]  # one fresh snapshot...
    assert done == [6]  # ...which saw the old client's change: nothing lost
    assert counters(store) == (6, 6)


def test_a_reveal_that_conflicts_at_commit_is_retried_and_releases_once(
        pg_world: tuple[World, PgVaults, str]) -> None:
    """The conflict comes while the reveal commits (its metadata row was changed by a
    writer outside the queue): the value was decrypted but not returned; the reveal
    runs again and returns it once, with exactly one audit record."""
    w, vaults, db = pg_world
    req = w.checkout("db-root")
    store = w.vault.store
    hook = store.before_commit
    calls: list[int] = []

    def outsider_touches_the_metadata(txn: Any) -> None:
        calls.append(1)
        if hook is not None:
            hook(txn)
        if len(calls) == 1:
            with vaults.superuser(db) as su:
                su.execute(TOUCH, ("meta", "vault"))

    store.before_commit = outsider_touches_the_metadata
    try:
        value = w.vault.reveal(w.s("alice"), req)
    finally:
        store.before_commit = hook
    assert value.reveal() == SECRET
    assert len(calls) == 2
    reveals = [e for e in store.audit_since(AuditCursor()).entries
               if e["event"] == "checkout.revealed"]
    assert [e["subject"] for e in reveals] == [req]
    assert store.verify_audit().ok


# -- database constraints -------------------------------------------------------------------------

def test_the_database_refuses_a_second_open_checkout_and_a_second_redemption(
        pg_world: tuple[World, PgVaults, str]) -> None:
    """Writers that skip glasskey's own checks (here: raw table writes through the store,
    and an operator's database role in plain SQL) meet the database's trigger."""
    w, vaults, db = pg_world
    req = w.checkout("db-root")
    assert w.vault.reveal(w.s("alice"), req).reveal() == SECRET
    store = w.vault.store
    assert isinstance(store, PostgresStore)
    with store.read() as txn:
        ((cred_id, held),) = txn.table("active").items()
    assert held["request"] == req
    head = store.audit_head()
    with pytest.raises(StorageError) as caught, store.transaction() as txn:
        txn.table("active").put(cred_id, dict(held, request="r-second"))
    assert str(caught.value) == (
        f"the PostgreSQL vault at {store.location} refused the operation (credential "
        f"{cred_id} already has an open checkout {req}); nothing was changed")
    with pytest.raises(StorageError, match=rf"\(request {req} was already redeemed\); "
                                           "nothing was changed"), \
            store.transaction() as txn:
        doc = txn.table("requests").get(req)
        assert doc is not None
        txn.table("requests").put(req, dict(doc, revealed_at=doc["revealed_at"] + 60))
    role = vaults.operator_role("op_mallory")
    s = vaults.server
    with psycopg.connect(host=s.host, port=s.port, dbname=db, user=role,
                         autocommit=True) as conn, \
            pytest.raises(psycopg.errors.UniqueViolation, match="already has an open checkout"):
        conn.execute("UPDATE glasskey.doc SET body = convert_to(jsonb_set(convert_from("
                     "body, 'UTF8')::jsonb, '{request}', '\"r-third\"')::text, 'UTF8') "
                     "WHERE tbl = 'active'")
    assert store.audit_head() == head
    with store.read() as txn:
        assert txn.table("active").get(cred_id) == held
    # What the trigger allows: the same checkout's own changes, and its end.
    assert w.vault.checkin(w.s("alice"), req) is not None
    with store.read() as txn:
        assert txn.table("active").get(cred_id) is None


# -- N machines racing ------------------------------------------------------------------------------

RACER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, sys.argv[1])
    import pyotp
    from checkout_world import SEEDS, passphrase
    from glasskey.core.clock import FakeClock
    from glasskey.core.errors import PolicyError
    from glasskey.core.storage.postgres import PostgresStore
    from glasskey.core.vault import Vault
    url, mode, name, start, go, ready, req = sys.argv[2:9]
    clock = FakeClock(float(start))
    vault = Vault(PostgresStore(url), clock, allow_weak_kdf=True)
    session = vault.unlock(name, passphrase(name), pyotp.TOTP(SEEDS[name]).at(float(start)))
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.002)
    try:
        if mode == "request":
            print("won", vault.request(session, "db-root", "outage", "INC-7", 1800).id)
        else:
            print("won", vault.reveal(session, req).reveal())
    except PolicyError as exc:
        print("lost", exc)
""")


def _race(w: World, vaults: PgVaults, db: str, tmp_path: Path, mode: str, req: str = "",
          machines: int = 4) -> list[str]:
    """``machines`` processes, each with its own HOME and state dir, unlock alice (each
    at its own TOTP step, as on separate machines) and then, all at once, ``mode``."""
    go = tmp_path / f"go-{mode}"
    base = w.clock.now() + 30
    procs = []
    for i in range(machines):
        home = tmp_path / f"{mode}-machine-{i}"
        home.mkdir()
        env = dict(os.environ, HOME=str(home), GLASSKEY_STATE_DIR=str(home / "state"))
        ready = home / "ready"
        procs.append((subprocess.Popen(
            [sys.executable, "-c", RACER, str(Path(__file__).parent), vaults.url(db), mode,
             "alice", str(base + 30 * i), str(go), str(ready), req],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), ready))
        deadline = time.monotonic() + 60
        while not ready.exists():  # one unlock at a time: each is a write of its own
            assert procs[-1][0].poll() is None, procs[-1][0].communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.01)
    w.clock.set(base + 30 * machines)
    go.touch()
    results = []
    for proc, _ in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err, err[-2000:]
        results.append(out.strip())
    return results


def test_of_n_machines_requesting_one_credential_exactly_one_opens_a_checkout(
        pg_world: tuple[World, PgVaults, str], tmp_path: Path) -> None:
    w, vaults, db = pg_world
    results = _race(w, vaults, db, tmp_path, "request")
    won = [r for r in results if r.startswith("won ")]
    lost = [r for r in results if r.startswith("lost ")]
    assert len(won) == 1 and len(lost) == len(results) - 1, results
    req_id = won[0].split()[1]
    for refusal in lost:
        assert f"db-root already has an open checkout {req_id}" in refusal
        assert "\n" not in refusal
    store = w.vault.store
    with store.read() as txn:
        active = dict(txn.table("active").items())
    assert [a["request"] for a in active.values()] == [req_id]
    requested = [e for e in store.audit_since(AuditCursor()).entries
                 if e["event"] == "checkout.requested"]
    assert [e["subject"] for e in requested] == [req_id]


def test_of_n_machines_redeeming_one_approval_exactly_one_gets_the_secret(
        pg_world: tuple[World, PgVaults, str], tmp_path: Path) -> None:
    w, vaults, db = pg_world
    req = w.checkout("db-root")
    results = _race(w, vaults, db, tmp_path, "reveal", req)
    assert sorted(r.split()[0] for r in results) == ["lost"] * (len(results) - 1) + ["won"]
    assert f"won {SECRET}" in results
    for refusal in (r for r in results if r.startswith("lost ")):
        assert "already revealed" in refusal and SECRET not in refusal
    store = w.vault.store
    reveals = [e for e in store.audit_since(AuditCursor()).entries
               if e["event"] == "checkout.revealed"]
    assert [e["subject"] for e in reveals] == [req]  # one redemption, one record
    assert store.verify_audit().ok
