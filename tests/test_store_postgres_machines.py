"""Several machines on one PostgreSQL vault: real processes, each with its own HOME,
state dir and (where it matters) database role. Concurrent writers lose nothing,
one claim wins, wake-ups arrive, a file vault moves in, and the CLI runs a
checkout across two machines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from checkout_world import FAST_KDF, ROLES, SEEDS, World, passphrase
from glasskey.core.clock import FakeClock
from glasskey.core.errors import IntegrityError, PolicyError, UsageError
from glasskey.core.operators import OperatorSpec
from glasskey.core.storage.interface import AuditCursor
from glasskey.core.storage.postgres import PostgresStore
from glasskey.core.vault import Vault
from helpers import counters, founding_details, increment, new_signer
from pg_helpers import CLI_SEEDS, SECRET, Machine, edit_doc, fresh_step

if TYPE_CHECKING:
    from pg_vault import PgVaults

pytest_plugins = ["pg_vault"]  # the session's PostgreSQL (pg_vaults, pg_world, pg_bare)


# -- two machines ---------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from glasskey.core.audit import Signer
    from glasskey.core.storage.postgres import PostgresStore
    from helpers import increment
    store = PostgresStore(sys.argv[2])
    signer = Signer(sys.argv[3], bytes.fromhex(sys.argv[4]))
    for _ in range(int(sys.argv[5])):
        increment(store, signer)
""")


def test_two_machines_write_one_vault_concurrently(pg_vaults: PgVaults, tmp_path: Path
                                                   ) -> None:
    """Two real processes, each with its own HOME, state dir and database role."""
    db = pg_vaults.new_database()
    tester, tester_pub = new_signer("tester")
    second, second_pub = new_signer("second")
    vid, details = founding_details([(tester, tester_pub), (second, second_pub)])
    owner = PostgresStore(pg_vaults.url(db))
    owner.create({"vault_id": vid})
    with owner.transaction() as txn:
        txn.record(tester, "vault.founded", vid, details)
    per = 15
    procs = []
    for signer in (tester, second):
        home = tmp_path / f"machine-{signer.name}"
        home.mkdir()
        role = pg_vaults.operator_role(f"op_{signer.name}")
        env = dict(os.environ, HOME=str(home), GLASSKEY_STATE_DIR=str(home / "state"))
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WRITER, str(Path(__file__).parent), pg_vaults.url(db, role),
             signer.name, (signer.key or b"").hex(), str(per)],
            env=env, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert counters(owner) == (2 * per, 2 * per), "an update was lost"
    entries = owner.audit_since(AuditCursor()).entries
    ns = [e["details"]["n"] for e in entries if e["event"] == "test.increment"]
    assert ns == list(range(1, 2 * per + 1)), "the log is not in commit order"
    assert {e["actor"] for e in entries if e["event"] == "test.increment"} == \
        {"tester", "second"}
    assert owner.verify_audit().ok
    for name in ("tester", "second"):  # each machine verified and kept its own checkpoint
        assert list((tmp_path / f"machine-{name}" / "state" / "checkpoints").iterdir())


# -- the CLI on a URL vault: two machines --------------------------------------------------------

CANARY = "canary-PG-5d1c0e77-do-not-leak"


def test_the_cli_runs_a_checkout_across_two_machines(pg_vaults: PgVaults, tmp_path: Path
                                                     ) -> None:
    db = pg_vaults.new_database()
    # The database owner creates the vault; each operator then uses their own role.
    admin = Machine(tmp_path, "admin", pg_vaults.url(db))
    ops = [{"name": n, "roles": r, "passphrase": f"{n} cli passphrase",
            "totp_secret": CLI_SEEDS[n]}
           for n, r in (("alice", ["requester"]), ("bob", ["approver", "admin"]))]
    (tmp_path / "ops.json").write_text(json.dumps(ops))
    r = admin("init", "--operators-file", str(tmp_path / "ops.json"), "--json",
              "--kdf-seconds", "0.01")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["vault"] == \
        f"postgresql://{pg_vaults.server.host}:{pg_vaults.server.port}/{db}"
    alice = Machine(tmp_path, "alice", pg_vaults.url(db, pg_vaults.operator_role("op_alice")))
    bob = Machine(tmp_path, "bob", pg_vaults.url(db, pg_vaults.operator_role("op_bob")))
    (bob.home / "secret").write_text(CANARY + "\n")
    fresh_step()
    r = bob("cred", "add", "db-root", "--secret-file", str(bob.home / "secret"), *bob.auth(-30))
    assert r.returncode == 0, r.stderr
    r = alice("request", "db-root", "--reason", "primary down", "--ticket", "INC-42",
              "--duration", "30m", "--json", *alice.auth(-30))
    assert r.returncode == 0, r.stderr
    req = json.loads(r.stdout)["id"]
    r = bob("approve", req, "--json", *bob.auth(0))
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "approved", r.stderr
    r = alice("request", "list", "--json")
    assert [c["state"] for c in json.loads(r.stdout)] == ["approved"], r.stderr
    r = alice("reveal", req, *alice.auth(0))
    assert r.returncode == 0 and r.stdout == CANARY + "\n", r.stderr
    for machine in (alice, bob):
        r = machine("audit", "verify", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True, r.stderr
    # Nothing in the clients' files holds the value; each kept its own checkpoint.
    for machine in (alice, bob):
        for path in (machine.home / "state").rglob("*"):
            if path.is_file():
                assert CANARY.encode() not in path.read_bytes(), path
        assert list((machine.home / "state" / "checkpoints").iterdir())
    # The DBA swaps bob's signing key: both machines refuse, exit 3, one sentence.
    edit_doc(pg_vaults, db, "operators", "bob", "sign_pub", "A" * 44)
    for machine in (alice, bob):
        r = machine("request", "list")
        assert r.returncode == 3, r.stderr
        assert "operator record 'bob' differs from the signed roster" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_the_cli_refuses_a_password_url_and_an_unreachable_database(tmp_path: Path) -> None:
    m = Machine(tmp_path, "alice", "postgresql://alice:hunter2-pw@127.0.0.1:1/nowhere")
    r = m("request", "list")
    assert r.returncode == 2 and "password" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr + r.stdout
    m.env["GLASSKEY_VAULT"] = "postgresql://alice@127.0.0.1:1/nowhere"
    r = m("request", "list")
    assert r.returncode == 1, r.stderr
    assert "cannot connect to the PostgreSQL vault at postgresql://127.0.0.1:1/nowhere" \
        in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# -- live: LISTEN/NOTIFY wake-ups ----------------------------------------------------------------

def _waiter(store: PostgresStore, seen: int, timeout: float,
            out: list[tuple[int, float]], *, read: bool = False) -> threading.Thread:
    """A thread that waits for a change (and with ``read``, then reads the state, as a
    screen would), recording the seq it got and when it had it."""
    def run() -> None:
        seq = store.wait_for_change(seen, timeout)
        if read:
            counters(store)
        out.append((seq, time.monotonic()))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_another_machines_commit_wakes_a_waiter(pg_bare: tuple[PostgresStore, Any, str],
                                                pg_vaults: PgVaults) -> None:
    """B commits -> A has woken and read the new state: p95 over 30 trials (measured
    from just before B's COMMIT, so B's commit work is included)."""
    store, signer, db = pg_bare
    machine_a = PostgresStore(pg_vaults.url(db))
    delays = []
    committing: list[float] = []
    store.before_commit = lambda txn: committing.append(time.monotonic())
    for _ in range(30):
        seen = machine_a.seq()
        out: list[tuple[int, float]] = []
        thread = _waiter(machine_a, seen, 10.0, out, read=True)
        time.sleep(0.05)  # A is waiting (if not, it catches up from seq: still correct)
        n = increment(store, signer)
        thread.join(10)
        assert out and out[0][0] != seen, "the waiter did not see the commit"
        assert counters(machine_a)[0] >= n
        delays.append(out[0][1] - committing[-1])
    delays.sort()
    p50, p95 = delays[len(delays) // 2], delays[int(len(delays) * 0.95) - 1]
    print(f"B commits -> A has read it: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
    assert p95 < 1.0, delays
    machine_a.close()


def test_a_wait_without_changes_times_out_with_the_same_seq(
        pg_bare: tuple[PostgresStore, Any, str]) -> None:
    store, _, _ = pg_bare
    seen = store.seq()
    start = time.monotonic()
    assert store.wait_for_change(seen, 0.3) == seen
    assert 0.25 <= time.monotonic() - start < 5


def test_a_lost_listener_reconnects_and_catches_up(pg_bare: tuple[PostgresStore, Any, str],
                                                   pg_vaults: PgVaults) -> None:
    store, signer, db = pg_bare
    machine_a = PostgresStore(pg_vaults.url(db))
    seen = machine_a.wait_for_change(machine_a.seq(), 0.01)  # the listener is connected

    def kill_listeners() -> None:
        with pg_vaults.superuser(db) as su:
            su.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "datname = %s AND query LIKE 'LISTEN%%'", (db,))

    # A commit while the listener is gone is not lost: the next wait catches up at once.
    kill_listeners()
    increment(store, signer)
    assert machine_a.wait_for_change(seen, 5.0) != seen
    # The listener dies while waiting: the waiter reconnects and still sees the commit.
    seen = machine_a.seq()
    out: list[tuple[int, float]] = []
    thread = _waiter(machine_a, seen, 15.0, out)
    time.sleep(0.2)
    kill_listeners()
    time.sleep(0.2)
    increment(store, signer)
    thread.join(15)
    assert out and out[0][0] != seen
    machine_a.close()


CLAIMER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, sys.argv[1])
    from glasskey.core.audit import Signer
    from glasskey.core.errors import PolicyError
    from glasskey.core.storage.interface import Refused
    from glasskey.core.storage.postgres import PostgresStore
    store = PostgresStore(sys.argv[2])
    signer = Signer(sys.argv[3], bytes.fromhex(sys.argv[4]))
    store.seq()  # connected before the start line
    while not os.path.exists(sys.argv[5]):
        time.sleep(0.005)
    try:
        with store.transaction() as txn:
            if txn.table("active").get("cred-1") is not None:
                raise Refused(PolicyError("cred-1 is already checked out"))
            txn.table("active").put("cred-1", {"holder": signer.name})
            txn.record(signer, "test.claim", "cred-1", {"by": signer.name})
        print("won")
    except PolicyError:
        print("lost")
""")


def test_of_n_machines_claiming_one_credential_exactly_one_wins(
        pg_vaults: PgVaults, tmp_path: Path) -> None:
    db = pg_vaults.new_database()
    signers = [new_signer(f"op{i}") for i in range(6)]
    vid, details = founding_details(signers)
    owner = PostgresStore(pg_vaults.url(db))
    owner.create({"vault_id": vid})
    with owner.transaction() as txn:
        txn.record(signers[0][0], "vault.founded", vid, details)
    go = tmp_path / "go"
    procs = []
    for signer, _ in signers:
        home = tmp_path / f"machine-{signer.name}"
        home.mkdir()
        env = dict(os.environ, HOME=str(home), GLASSKEY_STATE_DIR=str(home / "state"))
        procs.append(subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(Path(__file__).parent), pg_vaults.url(db),
             signer.name, (signer.key or b"").hex(), str(go)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    time.sleep(1.0)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(out.strip())
    assert sorted(results) == ["lost"] * 5 + ["won"]
    with owner.read() as txn:
        holder = txn.table("active").get("cred-1")
    winner = signers[results.index("won")][0].name
    assert holder == {"holder": winner}
    claims = [e for e in owner.audit_since(AuditCursor()).entries if e["event"] == "test.claim"]
    assert [e["actor"] for e in claims] == [winner]


# -- moving a file vault into the database -------------------------------------------------------

def test_a_file_vault_moves_into_postgres_with_its_history(
        pg_vaults: PgVaults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glasskey.core.storage.files import FileStore
    from glasskey.core.storage.postgres_import import move_to_postgres

    clock = FakeClock(1_800_000_000.0)
    file_vault = Vault(tmp_path / "vault", clock, allow_weak_kdf=True)
    file_vault.initialise([OperatorSpec(n, ROLES[n], passphrase(n), SEEDS[n])
                           for n in ("alice", "bob", "carol")], kdf_params=FAST_KDF)
    w = World(tmp_path / "vault", clock, file_vault)
    w.add("db-root", SECRET)
    req = w.checkout("db-root")  # approved on the file vault, not yet revealed
    head = file_vault.store.audit_head()
    db = pg_vaults.new_database()
    target = PostgresStore(pg_vaults.url(db))
    moved = move_to_postgres(FileStore(tmp_path / "vault"), target)
    assert (moved.head_seq, moved.head_hash) == (head.seq, head.hash)
    assert [bytes(x) for x in target.audit_lines()] == \
        list(FileStore(tmp_path / "vault").audit_lines())
    # The same client (its checkpoint came from the file vault) carries on in the database.
    w.vault = Vault(target, clock, allow_weak_kdf=True)
    assert w.vault.reveal(w.s("alice"), req).reveal() == SECRET
    with pytest.raises(PolicyError, match="one holder at a time"):
        w.checkout("db-root", requester="carol")
    w.add("db-two", "second-value")  # new writes land in the database
    req2 = w.checkout("db-two", requester="carol", approvers=("bob",))
    assert w.vault.reveal(w.s("carol"), req2).reveal() == "second-value"
    assert target.verify_audit().ok
    # A client new to the vault verifies the whole moved history.
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / "new-machine"))
    with PostgresStore(pg_vaults.url(db)).read() as txn:
        assert txn.audit_head.seq > head.seq
    # The directory is now an older state of the same vault: a client that saw the
    # database refuses it (retire it once everyone uses the URL).
    with pytest.raises(IntegrityError, match="rolled back"), \
            FileStore(tmp_path / "vault").read():
        pass
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / "third-machine"))
    with pytest.raises(UsageError, match="already exists"):
        move_to_postgres(FileStore(tmp_path / "vault"), PostgresStore(pg_vaults.url(db)))




def test_migrate_moves_a_directory_vault_and_retires_the_directory(
        pg_vaults: PgVaults, tmp_path: Path) -> None:
    """`glasskey migrate --to URL`: the copy verifies, the directory then says where the
    vault went (a client still naming it is told, not handed an older copy)."""
    vault_dir = tmp_path / "vault"
    m = Machine(tmp_path, "bob", str(vault_dir))
    ops = [{"name": n, "roles": r, "passphrase": f"{n} cli passphrase",
            "totp_secret": CLI_SEEDS[n]}
           for n, r in (("alice", ["requester"]), ("bob", ["approver", "admin"]))]
    (tmp_path / "ops.json").write_text(json.dumps(ops))
    assert m("init", "--operators-file", str(tmp_path / "ops.json"), "--kdf-seconds",
             "0.01").returncode == 0
    (m.home / "secret").write_text(CANARY + "\n")
    fresh_step()
    r = m("cred", "add", "db-root", "--secret-file", str(m.home / "secret"), *m.auth(-30))
    assert r.returncode == 0, r.stderr
    url = pg_vaults.url(pg_vaults.new_database())
    r = m("migrate", "--to", url)  # no terminal to ask on, no --yes: nothing happens
    assert r.returncode == 2 and "--yes" in r.stderr, r.stderr
    assert (vault_dir / "vault.json").exists()
    r = m("migrate", "--to", url, "--yes", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["moved_to"].startswith("postgresql://") and doc["entries"] >= 2
    assert not (vault_dir / "vault.json").exists()
    assert (vault_dir / "vault.json.moved").exists()
    r = m("request", "list")
    assert r.returncode != 0 and f"moved to {doc['moved_to']}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    m.env["GLASSKEY_VAULT"] = url
    r = m("audit", "verify", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stderr
    r = m("cred", "list", "--json")
    assert [c["name"] for c in json.loads(r.stdout)] == ["db-root"], r.stderr
    m.env["GLASSKEY_VAULT"] = str(vault_dir)
    r = m("migrate", "--to", url, "--yes")
    assert r.returncode != 0 and "moved to" in r.stderr, r.stderr
