"""The PostgreSQL backend against an untrusted database administrator (real server).

The contract suite (tests/test_storage_contract.py) shows the backend behaves
like the file backend. Here the database superuser attacks the vault the ways a
hostile DBA can: rewriting, deleting, inserting and reordering audit rows,
restoring an old backup, editing documents. Every time, the next client read or
transaction raises IntegrityError naming what failed, and nothing is released.
Also: clients' roles cannot rewrite history (PostgreSQL itself refuses), URLs
with passwords are refused, and two real processes (each its own HOME and
state dir, each its own database role) write one vault concurrently without a
lost update.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from checkout_world import FAST_KDF, ROLES, SEEDS, World, passphrase
from glasskey.core import witness
from glasskey.core.clock import FakeClock
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import IntegrityError, PolicyError, StorageError, UsageError
from glasskey.core.operators import OperatorSpec
from glasskey.core.secret import SecretValue
from glasskey.core.storage import postgres_schema
from glasskey.core.storage.interface import AuditCursor
from glasskey.core.storage.postgres import PostgresStore
from glasskey.core.vault import Vault
from helpers import counters, founding_details, increment, new_signer

if TYPE_CHECKING:
    from pg_vault import PgVaults

pytest_plugins = ["pg_vault"]  # the session's PostgreSQL (the pg_vaults fixture)

SECRET = "s3cret-db-root-value"
Rows = dict[str, list[tuple[Any, ...]]]


@pytest.fixture
def world(pg_vaults: PgVaults, tmp_path: Path) -> Iterator[tuple[World, PgVaults, str]]:
    """Three operators and one credential (db-root) in a fresh database; alice unlocked."""
    db = pg_vaults.new_database()
    clock = FakeClock(1_800_000_000.0)
    vault = Vault(PostgresStore(pg_vaults.url(db)), clock)
    vault.initialise([OperatorSpec(n, ROLES[n], passphrase(n), SEEDS[n])
                      for n in ("alice", "bob", "carol")], kdf_params=FAST_KDF)
    w = World(tmp_path / "unused", clock, vault)
    w.add("db-root", SECRET)
    w.s("alice")
    yield w, pg_vaults, db
    vault.store.close()  # type: ignore[attr-defined]


def _superuser(vaults: PgVaults, db: str) -> psycopg.Connection[tuple[Any, ...]]:
    conn = vaults.superuser(db)
    # The append-only trigger stops honest mistakes, not a superuser: switch it off.
    conn.execute("SET session_replication_role = replica")
    return conn


def _fresh_client(w: World) -> Vault:
    """The same machine again, with a new handle (its checkpoint stays)."""
    return Vault(w.vault.store.twin(), w.clock)


def _assert_refused(w: World, match: str, req: str | None = None) -> None:
    """The next read and the next transaction refuse; no secret comes out."""
    client = _fresh_client(w)
    with pytest.raises(IntegrityError, match=match), client.store.read():
        pass
    with pytest.raises(IntegrityError, match=match):
        client.request(w.s("alice"), "db-root", "outage", "INC-2", 1800)
    if req is not None:
        with pytest.raises(IntegrityError, match=match):
            client.reveal(w.s("alice"), req)


#: One byte more on an audit row: its hash, and so the chain, no longer hold.
APPEND_A_SPACE = ("UPDATE glasskey.audit SET line = line || convert_to(' ', 'UTF8') "
                  "WHERE seq = %s")


def _head(w: World) -> int:
    return w.vault.store.audit_head().seq


# -- the audit rows ------------------------------------------------------------------------------

@pytest.mark.parametrize("move_head", [False, True])
def test_a_rewritten_audit_row_is_refused(world: tuple[World, PgVaults, str],
                                          move_head: bool) -> None:
    """The newest row altered; with ``move_head`` the DBA also points the metadata's
    head at the altered row, and this client's checkpoint is what catches it."""
    w, vaults, db = world
    req = w.checkout("db-root")
    head = _head(w)
    with _superuser(vaults, db) as su:
        su.execute(APPEND_A_SPACE, (head,))
        if move_head:
            _edit_meta_head(su, head, hashlib.sha256(_line(su, head)).hexdigest())
    message = (rf"entry {head} differs from the one this client saw" if move_head
               else rf"audit entry {head} is not the one the vault's head names")
    _assert_refused(w, message, req)


def _line(su: psycopg.Connection[tuple[Any, ...]], seq: int) -> bytes:
    row = su.execute("SELECT line FROM glasskey.audit WHERE seq = %s", (seq,)).fetchone()
    assert row is not None
    return bytes(row[0])


def _edit_meta_head(su: psycopg.Connection[tuple[Any, ...]], seq: int, digest: str,
                    grow: int = 0) -> None:
    row = su.execute("SELECT body FROM glasskey.doc WHERE tbl = 'meta' AND key = 'vault'"
                     ).fetchone()
    assert row is not None
    meta = json.loads(bytes(row[0]))
    meta["audit"].update(seq=seq, hash=digest, offset=meta["audit"]["offset"] + grow)
    su.execute("UPDATE glasskey.doc SET body = %s WHERE tbl = 'meta' AND key = 'vault'",
               (json.dumps(meta, sort_keys=True, separators=(",", ":")).encode(),))


def test_a_rewritten_row_past_the_checkpoint_names_the_entry(
        world: tuple[World, PgVaults, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another machine appends; the DBA alters that new entry before we read it."""
    w, vaults, db = world
    carol = w.s("carol")
    seen = _head(w)
    # A legitimate append by another client (its own state dir, so our checkpoint stays).
    other = Vault(w.vault.store.twin(), w.clock)
    state = os.environ["GLASSKEY_STATE_DIR"]
    with monkeypatch.context() as elsewhere:
        elsewhere.setenv("GLASSKEY_STATE_DIR", state + "-other")
        other.request(carol, "db-root", "outage", "INC-3", 1800)
    assert _head(w) > seen
    with _superuser(vaults, db) as su:
        su.execute(APPEND_A_SPACE, (seen + 1,))
    _assert_refused(w, rf"audit entry {seen + 1} ")


def test_an_old_rewritten_row_is_found_by_verify_and_by_a_new_client(
        world: tuple[World, PgVaults, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Below this client's checkpoint a change gains nothing (the roster up to there is
    in the checkpoint); 'audit verify' names it, and a client new to the vault refuses."""
    w, vaults, db = world
    w.checkout("db-root")  # the credential's entry is now well below the checkpoint
    with _superuser(vaults, db) as su:
        su.execute("UPDATE glasskey.audit SET line = convert_to(replace(convert_from(line, "
                   "'UTF8'), 'db-root', 'db-r00t'), 'UTF8') WHERE seq = "
                   "(SELECT max(seq) FROM glasskey.audit WHERE convert_from(line, 'UTF8') "
                   "LIKE '%credential.added%')")
    store = w.vault.store
    for incremental in (True, False):
        result = store.verify_audit(incremental=incremental)
        assert not result.ok and result.first_bad is not None, result
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / "new-machine"))
    with pytest.raises(IntegrityError, match="audit entry"), \
            PostgresStore(vaults.url(db)).read():
        pass


def test_deleted_newest_rows_are_refused(world: tuple[World, PgVaults, str]) -> None:
    w, vaults, db = world
    req = w.checkout("db-root")
    head = _head(w)
    with _superuser(vaults, db) as su:
        su.execute("DELETE FROM glasskey.audit WHERE seq > %s", (head - 2,))
    _assert_refused(w, rf"ends at entry {head - 2} but the vault's head is entry {head}", req)


def _dump(su: psycopg.Connection[tuple[Any, ...]]) -> Rows:
    return {t: su.execute(f"SELECT * FROM glasskey.{t}").fetchall()
            for t in ("audit", "doc", "counter", "table_version")}


def _restore(su: psycopg.Connection[tuple[Any, ...]], rows: Rows) -> None:
    for table, content in rows.items():
        su.execute(f"DELETE FROM glasskey.{table}")
        if content:
            marks = ", ".join(["%s"] * len(content[0]))
            with su.cursor() as cur:
                cur.executemany(f"INSERT INTO glasskey.{table} VALUES ({marks})",
                                content)


def test_a_restored_old_backup_is_refused(world: tuple[World, PgVaults, str]) -> None:
    """A consistent older state (audit, documents, counter together): a rollback."""
    w, vaults, db = world
    with _superuser(vaults, db) as su:
        backup = _dump(su)
    old_head = _head(w)
    req = w.checkout("db-root")
    head = _head(w)
    with _superuser(vaults, db) as su:
        _restore(su, backup)
    assert w.vault.store.audit_head().seq == old_head
    _assert_refused(w, rf"rolled back: this client saw audit entry {head}, the vault now "
                       rf"ends at {old_head}", req)


def test_an_inserted_row_is_refused(world: tuple[World, PgVaults, str]) -> None:
    w, vaults, db = world
    head = _head(w)
    with _superuser(vaults, db) as su:
        su.execute("INSERT INTO glasskey.audit SELECT seq + 1, line, hash FROM glasskey.audit "
                   "WHERE seq = %s", (head,))
    _assert_refused(w, rf"entries past the vault's head \(entry {head} < {head + 1}\)")


def test_an_inserted_row_with_a_moved_head_is_refused(
        world: tuple[World, PgVaults, str]) -> None:
    """The DBA also moves the metadata's head to the forged row: its links fail."""
    w, vaults, db = world
    head = _head(w)
    forged = (b'{"actor":"bob","actor_prev":"x","details":{},"event":"request.approved",'
              b'"hash":"' + b"a" * 64 + b'","prev":"' + b"b" * 64 + b'","seq":'
              + str(head + 1).encode() + b',"sig":null,"subject":"r","time":'
              b'"2027-01-15T08:00:00Z"}')
    with _superuser(vaults, db) as su:
        su.execute("INSERT INTO glasskey.audit VALUES (%s, %s, encode(sha256(%s), 'hex'))",
                   (head + 1, forged, forged))
        _edit_meta_head(su, head + 1, hashlib.sha256(forged).hexdigest(), len(forged) + 1)
    _assert_refused(w, rf"audit entry {head + 1} ")


def test_reordered_rows_are_refused(world: tuple[World, PgVaults, str]) -> None:
    w, vaults, db = world
    req = w.checkout("db-root")
    head = _head(w)
    with _superuser(vaults, db) as su:
        # Swap the two newest entries (the same as swapping their seq numbers).
        su.execute("UPDATE glasskey.audit a SET line = b.line, hash = b.hash "
                   "FROM glasskey.audit b WHERE (a.seq, b.seq) IN ((%s, %s), (%s, %s))",
                   (head, head - 1, head - 1, head))
    _assert_refused(w, "rewritten|not the one the vault's head names", req)


# -- the documents ---------------------------------------------------------------------------------

def _edit_doc(vaults: PgVaults, db: str, tbl: str, key: str, field: str, value: Any) -> None:
    with _superuser(vaults, db) as su:
        row = su.execute("SELECT body FROM glasskey.doc WHERE tbl = %s AND key = %s",
                         (tbl, key)).fetchone()
        assert row is not None, (tbl, key)
        doc = json.loads(bytes(row[0]))
        doc[field] = value
        su.execute("UPDATE glasskey.doc SET body = %s WHERE tbl = %s AND key = %s",
                   (json.dumps(doc).encode(), tbl, key))


def test_an_edited_operator_key_is_refused(world: tuple[World, PgVaults, str]) -> None:
    w, vaults, db = world
    req = w.checkout("db-root")
    _, mallory_pub = new_signer("mallory")
    _edit_doc(vaults, db, "operators", "bob", "sign_pub", mallory_pub.hex())
    _assert_refused(w, "operator record 'bob' differs from the signed roster", req)


def test_an_edited_credential_target_runs_nothing(world: tuple[World, PgVaults, str],
                                                  tmp_path: Path) -> None:
    w, vaults, db = world
    marker = tmp_path / "ran"
    evil = tmp_path / "evil"
    evil.write_text(f"#!/bin/sh\ncat > {marker}\n")
    evil.chmod(0o755)
    honest = tmp_path / "honest"
    honest.write_text("#!/bin/sh\ncat >/dev/null\necho '{\"ok\": true}'\n")
    honest.chmod(0o755)
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        "svc", connector="command", secret=SecretValue("svc-value-1"), target=str(honest)))
    req = w.checkout("svc")
    assert w.vault.reveal(w.s("alice"), req).reveal() == "svc-value-1"
    _edit_doc(vaults, db, "credentials", w.vault.cred_id_for("svc"), "target", str(evil))
    with pytest.raises(IntegrityError, match=r"svc's configuration .* edited"):
        _fresh_client(w).checkin(w.s("alice"), req)
    assert not marker.exists()


def test_an_edited_sealed_value_releases_nothing(world: tuple[World, PgVaults, str]) -> None:
    """The DBA swaps in another ciphertext: authenticated decryption refuses it."""
    w, vaults, db = world
    req = w.checkout("db-root")
    cred_id = w.vault.cred_id_for("db-root")
    with _superuser(vaults, db) as su:
        row = su.execute("SELECT body FROM glasskey.doc WHERE tbl = 'sealed' AND key = %s",
                         (cred_id,)).fetchone()
        assert row is not None
        doc = json.loads(bytes(row[0]))
        current = doc["current"]
        field = next(k for k in ("ct", "ciphertext", "value") if k in current)
        raw = bytearray(current[field].encode())
        raw[len(raw) // 2] = ord("A") if raw[len(raw) // 2] != ord("A") else ord("B")
        current[field] = raw.decode()
        su.execute("UPDATE glasskey.doc SET body = %s WHERE tbl = 'sealed' AND key = %s",
                   (json.dumps(doc).encode(), cred_id))
    with pytest.raises(IntegrityError) as caught:
        _fresh_client(w).reveal(w.s("alice"), req)
    assert SECRET not in str(caught.value)


# -- roles and privileges ------------------------------------------------------------------------------

def test_a_client_role_appends_but_cannot_rewrite_history(pg_vaults: PgVaults) -> None:
    db = pg_vaults.new_database()
    signer, public = new_signer()
    second, second_pub = new_signer("second")
    vid, details = founding_details([(signer, public), (second, second_pub)])
    PostgresStore(pg_vaults.url(db)).create({"vault_id": vid})  # by the owner
    role = pg_vaults.operator_role("op_tester")
    store = PostgresStore(pg_vaults.url(db, role))  # the operator's own role
    with store.transaction() as txn:
        txn.record(signer, "vault.founded", vid, details)
    assert increment(store, signer) == 1
    assert counters(store) == (1, 1)
    s = pg_vaults.server
    with psycopg.connect(host=s.host, port=s.port, dbname=db, user=role,
                         autocommit=True) as conn:
        for statement in ("UPDATE glasskey.audit SET line = line",
                          "DELETE FROM glasskey.audit",
                          "TRUNCATE glasskey.audit",
                          "INSERT INTO glasskey.audit SELECT seq + 10, line, hash "
                          "FROM glasskey.audit"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # The append function only ever adds the next entry, carrying its own hash.
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.execute("SELECT glasskey.append_audit(1, 'x'::bytea, "
                         "encode(sha256('x'::bytea), 'hex'))")
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.execute("SELECT glasskey.append_audit(3, 'x'::bytea, 'not-its-hash')")
    # Even the owner's honest mistakes are stopped by the trigger.
    with pg_vaults.superuser(db) as su, pytest.raises(psycopg.errors.InsufficientPrivilege):
        su.execute("DELETE FROM glasskey.audit")
    assert store.verify_audit().ok
    # Attribution: the server's own log names the operator's role.
    assert f"user={role}" in s.log_text()


@pytest.mark.parametrize("url", [
    "postgresql://alice:hunter2-secret@127.0.0.1:5432/glasskey",
    "postgresql://alice@127.0.0.1:5432/glasskey?password=hunter2-secret",
    "postgres://alice:hunter2-secret@db.example/glasskey?sslmode=verify-full",
])
def test_a_url_with_a_password_is_refused_without_echo(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        PostgresStore(url)
    assert "password" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_the_schema_is_versioned_and_created_once(pg_vaults: PgVaults) -> None:
    db = pg_vaults.new_database()
    store = PostgresStore(pg_vaults.url(db))
    assert not store.exists()
    store.create({"vault_id": "v1"})
    assert store.exists()
    with pg_vaults.superuser(db) as su:
        versions = [r[0] for r in su.execute("SELECT version FROM glasskey.schema_version")]
    assert versions == list(range(1, postgres_schema.SQL_SCHEMA_VERSION + 1))
    with pytest.raises(UsageError, match="already exists"):
        store.create({"vault_id": "v2"})


def test_a_url_vault_keeps_its_client_files_in_the_state_dir(pg_vaults: PgVaults) -> None:
    store = PostgresStore("postgresql://someone@db.example:6543/team")
    assert store.location == "postgresql://db.example:6543/team"
    assert witness.state_dir() in store.root.parents
    assert PostgresStore("postgresql://else@db.example:6543/team").root == store.root
    assert PostgresStore("postgresql:///?service=glasskey").location == \
        "postgresql://:/?service=glasskey"


def test_a_service_file_names_the_vault(pg_vaults: PgVaults, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq's service file holds where; the pgpass file the password."""
    db = pg_vaults.new_database()
    s = pg_vaults.server
    (tmp_path / "services").write_text(
        f"[glasskey]\nhost={s.host}\nport={s.port}\ndbname={db}\nuser={s.admin_user}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "services"))
    store = PostgresStore("postgresql:///?service=glasskey")
    store.create({"vault_id": "v-service"})
    assert store.exists()
    assert PostgresStore(pg_vaults.url(db)).exists()


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

CLI_SEEDS = {"alice": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "bob": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"}
CANARY = "canary-PG-5d1c0e77-do-not-leak"


class Machine:
    """One workstation: its own HOME and state dir, one operator, its own database role."""

    def __init__(self, base: Path, name: str, url: str) -> None:
        self.home = base / f"machine-{name}"
        self.home.mkdir()
        self.name = name
        (self.home / "pass").write_text(f"{name} cli passphrase\n")
        self.env = dict(os.environ, HOME=str(self.home), GLASSKEY_VAULT=url,
                        GLASSKEY_STATE_DIR=str(self.home / "state"),
                        PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        self.env.pop("GLASSKEY_INSECURE_FAST_KDF", None)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "glasskey.tui.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=120)

    def auth(self, offset: int) -> list[str]:
        import pyotp

        code = pyotp.TOTP(CLI_SEEDS[self.name]).at(time.time() + offset)
        return ["--as", self.name, "--totp", code, "--passphrase-file", str(self.home / "pass")]


def _fresh_step() -> None:
    while time.time() % 30 > 18:
        time.sleep(0.5)


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
    _fresh_step()
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
    _edit_doc(pg_vaults, db, "operators", "bob", "sign_pub", "A" * 44)
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


# -- faults: each one sentence, nothing lost, the same call works afterwards -----------------------

@pytest.fixture
def bare(pg_vaults: PgVaults) -> Iterator[tuple[PostgresStore, Any, str]]:
    """A founded vault without operators' records (as the contract suite makes)."""
    db = pg_vaults.new_database()
    signer, public = new_signer()
    second, second_pub = new_signer("second")
    vid, details = founding_details([(signer, public), (second, second_pub)])
    store = PostgresStore(pg_vaults.url(db), lock_timeout=0.5)
    store.create({"vault_id": vid})
    with store.transaction() as txn:
        txn.record(signer, "vault.founded", vid, details)
    yield store, signer, db
    store.close()


def test_a_restarted_server_is_reconnected_to(bare: tuple[PostgresStore, Any, str],
                                              pg_vaults: PgVaults) -> None:
    from servers import _run

    store, signer, _ = bare
    assert increment(store, signer) == 1  # the handle now holds pooled connections
    s = pg_vaults.server
    done = _run([str(s.bin_dir / "pg_ctl"), "restart", "-D", str(s.data_dir), "-m", "fast",
                 "-w", "-l", str(s.log_file)], as_user=s.owner)
    assert done.returncode == 0, done.stderr
    assert increment(store, signer) == 2
    assert counters(store) == (2, 2)


def test_a_connection_dropped_mid_transaction_changes_nothing(
        bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults) -> None:
    store, signer, db = bare
    increment(store, signer)
    head = store.audit_head()
    with pytest.raises(StorageError) as caught, store.transaction() as txn:
        txn.table("requests").put("counter", {"n": 99})
        txn.record(signer, "test.increment", "counter", {"n": 99})
        with pg_vaults.superuser(db) as su:
            su.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "datname = %s AND pid <> pg_backend_pid()", (db,))
    message = str(caught.value)
    assert "nothing was changed" in message or "may or may not" in message, message
    assert "\n" not in message
    assert store.audit_head() == head  # fail closed: no record, no state
    assert counters(store) == (1, 1)
    assert increment(store, signer) == 2  # and the same operation works again


def test_a_writer_waiting_too_long_is_told_the_vault_is_busy(
        bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults) -> None:
    store, signer, db = bare
    with pg_vaults.superuser(db) as su:
        su.execute("BEGIN")
        su.execute("SELECT seq FROM glasskey.counter FOR UPDATE")  # someone else's long write
        with pytest.raises(StorageError, match=r"is busy: .* within 0.5 s; try again"):
            increment(store, signer)
        su.execute("ROLLBACK")
    assert increment(store, signer) == 1


def test_a_statement_timeout_is_one_sentence(pg_vaults: PgVaults,
                                             bare: tuple[PostgresStore, Any, str]) -> None:
    _, signer, db = bare
    slow = PostgresStore(pg_vaults.url(db) + "?options=-c%20statement_timeout%3D1",
                         lock_timeout=30)
    with pg_vaults.superuser(db) as su:
        su.execute("BEGIN")
        su.execute("SELECT seq FROM glasskey.counter FOR UPDATE")
        with pytest.raises(StorageError, match="did not answer in time"):
            increment(slow, signer)
        su.execute("ROLLBACK")
    assert increment(PostgresStore(pg_vaults.url(db)), signer) == 1


def test_an_unreachable_database_is_one_sentence(pg_vaults: PgVaults) -> None:
    store = PostgresStore(f"postgresql://nobody@127.0.0.1:{pg_vaults.server.port}/no_such_db")
    with pytest.raises(StorageError, match=r"cannot connect to the PostgreSQL vault at "
                                           r"postgresql://127\.0\.0\.1:\d+/no_such_db"):
        store.exists()


def test_a_newer_glasskey_migrates_the_schema_in_a_write(
        bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, signer, db = bare
    monkeypatch.setitem(postgres_schema.MIGRATIONS, postgres_schema.SQL_SCHEMA_VERSION,
                        "CREATE TABLE glasskey.added_later (x int)")
    monkeypatch.setattr(postgres_schema, "SQL_SCHEMA_VERSION",
                        postgres_schema.SQL_SCHEMA_VERSION + 1)
    newer = PostgresStore(pg_vaults.url(db))
    with pytest.raises(UsageError, match="needs upgrading"), newer.read():
        pass
    assert increment(newer, signer) == 1  # the first write migrates, under the lock
    with pg_vaults.superuser(db) as su:
        versions = [r[0] for r in su.execute("SELECT version FROM glasskey.schema_version "
                                             "ORDER BY version")]
        assert su.execute("SELECT to_regclass('glasskey.added_later')").fetchone() != (None,)
    assert versions == list(range(1, postgres_schema.SQL_SCHEMA_VERSION + 1))
    assert counters(newer) == (1, 1)
    monkeypatch.undo()
    with pytest.raises(UsageError, match="newer than this glasskey"), \
            PostgresStore(pg_vaults.url(db)).read():
        pass


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


def test_another_machines_commit_wakes_a_waiter(bare: tuple[PostgresStore, Any, str],
                                                pg_vaults: PgVaults) -> None:
    """B commits -> A has woken and read the new state: p95 over 30 trials (measured
    from just before B's COMMIT, so B's commit work is included)."""
    store, signer, db = bare
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
        bare: tuple[PostgresStore, Any, str]) -> None:
    store, _, _ = bare
    seen = store.seq()
    start = time.monotonic()
    assert store.wait_for_change(seen, 0.3) == seen
    assert 0.25 <= time.monotonic() - start < 5


def test_a_lost_listener_reconnects_and_catches_up(bare: tuple[PostgresStore, Any, str],
                                                   pg_vaults: PgVaults) -> None:
    store, signer, db = bare
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
    file_vault = Vault(tmp_path / "vault", clock)
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
    w.vault = Vault(target, clock)
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


def test_a_reveal_whose_connection_drops_releases_nothing_then_works(
        world: tuple[World, PgVaults, str]) -> None:
    """Fail closed: no secret without its durable audit record; then the same reveal
    succeeds once the database answers again."""
    w, vaults, db = world
    req = w.checkout("db-root")
    store = w.vault.store
    head = store.audit_head()
    hook = store.before_commit

    def drop_the_connection(txn: Any) -> None:
        with vaults.superuser(db) as su:
            su.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "datname = %s AND pid <> pg_backend_pid()", (db,))

    store.before_commit = drop_the_connection
    try:
        with pytest.raises(StorageError) as caught:
            w.vault.reveal(w.s("alice"), req)
    finally:
        store.before_commit = hook
    assert SECRET not in str(caught.value)
    assert store.audit_head() == head  # nothing recorded, nothing released
    assert w.vault.reveal(w.s("alice"), req).reveal() == SECRET
    assert any(e["event"] == "checkout.revealed" for e in store.audit_tail(5).entries)


# -- TLS: sslmode=verify-full ---------------------------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def _ca_and_server_cert(d: Path, name: str) -> None:
    """A CA ``name``-ca.pem and a server certificate for 127.0.0.1 signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={name} test CA", "-keyout", f"{name}-ca.key",
             "-out", f"{name}-ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", f"{name}-server.key", "-out", f"{name}-server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", f"{name}-server.csr", "-CA", f"{name}-ca.pem",
             "-CAkey", f"{name}-ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "san.ext", "-out", f"{name}-server.pem", cwd=d)


def test_sslmode_verify_full_works_and_a_wrong_ca_is_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server of its own (TLS on), a CA, and libpq's verify-full through the URL."""
    import shutil

    from servers import _run, start_postgres

    _ca_and_server_cert(tmp_path, "good")
    _ca_and_server_cert(tmp_path, "other")
    server = start_postgres()
    try:
        for src, dst in (("good-server.pem", "server.crt"), ("good-server.key", "server.key")):
            shutil.copy(tmp_path / src, server.data_dir / dst)
            (server.data_dir / dst).chmod(0o600)
            if server.owner is not None:
                shutil.chown(server.data_dir / dst, server.owner, server.owner)
        with (server.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        done = _run([str(server.bin_dir / "pg_ctl"), "restart", "-D", str(server.data_dir),
                     "-m", "fast", "-w", "-l", str(server.log_file)], as_user=server.owner)
        assert done.returncode == 0, done.stderr
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"{server.host}:{server.port}:*:{server.admin_user}:"
                            f"{server.admin_password}\n")
        passfile.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
        server.execute("CREATE DATABASE tls")
        base = f"postgresql://{server.admin_user}@{server.host}:{server.port}/tls"
        store = PostgresStore(f"{base}?sslmode=verify-full&sslrootcert={tmp_path}/good-ca.pem")
        store.create({"vault_id": "v-tls"})
        assert store.exists()
        with store._conn() as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                               ).fetchone()
        assert row == (True,), "the connection is not encrypted"
        store.close()
        wrong = PostgresStore(f"{base}?sslmode=verify-full&sslrootcert={tmp_path}/other-ca.pem")
        with pytest.raises(StorageError, match="cannot connect to the PostgreSQL vault") as caught:
            wrong.exists()
        assert "certificate" in str(caught.value) and "\n" not in str(caught.value)
    finally:
        server.stop()
