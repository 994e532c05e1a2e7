"""The PostgreSQL backend against an untrusted database administrator (real server).

The contract suite (tests/test_storage_contract.py) shows the backend behaves
like the file backend. Here the database superuser attacks the vault the ways a
hostile DBA can: rewriting, deleting, inserting and reordering audit rows,
restoring an old backup, editing documents. Every time, the next client read or
transaction raises IntegrityError naming what failed, and nothing is released.
Also: clients' roles cannot rewrite history (PostgreSQL itself refuses), URLs
with passwords are refused, the schema is versioned. Faults are in
test_store_postgres_faults.py, several machines in test_store_postgres_machines.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from checkout_world import World
from glasskey.core import witness
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import IntegrityError, UsageError
from glasskey.core.secret import SecretValue
from glasskey.core.storage import postgres_schema
from glasskey.core.storage.postgres import PostgresStore
from glasskey.core.vault import Vault
from helpers import counters, founding_details, increment, new_signer
from pg_helpers import SECRET, edit_doc

if TYPE_CHECKING:
    from pg_vault import PgVaults

pytest_plugins = ["pg_vault"]  # the session's PostgreSQL (pg_vaults, pg_world, pg_bare)

Rows = dict[str, list[tuple[Any, ...]]]



def _superuser(vaults: PgVaults, db: str) -> psycopg.Connection[tuple[Any, ...]]:
    conn = vaults.superuser(db)
    # The append-only trigger stops honest mistakes, not a superuser: switch it off.
    conn.execute("SET session_replication_role = replica")
    return conn


def _fresh_client(w: World) -> Vault:
    """The same machine again, with a new handle (its checkpoint stays)."""
    return Vault(w.vault.store.twin(), w.clock, allow_weak_kdf=True)


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
def test_a_rewritten_audit_row_is_refused(pg_world: tuple[World, PgVaults, str],
                                          move_head: bool) -> None:
    """The newest row altered; with ``move_head`` the DBA also points the metadata's
    head at the altered row, and this client's checkpoint is what catches it."""
    w, vaults, db = pg_world
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
        pg_world: tuple[World, PgVaults, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another machine appends; the DBA alters that new entry before we read it."""
    w, vaults, db = pg_world
    carol = w.s("carol")
    seen = _head(w)
    # A legitimate append by another client (its own state dir, so our checkpoint stays).
    other = Vault(w.vault.store.twin(), w.clock, allow_weak_kdf=True)
    state = os.environ["GLASSKEY_STATE_DIR"]
    with monkeypatch.context() as elsewhere:
        elsewhere.setenv("GLASSKEY_STATE_DIR", state + "-other")
        other.request(carol, "db-root", "outage", "INC-3", 1800)
    assert _head(w) > seen
    with _superuser(vaults, db) as su:
        su.execute(APPEND_A_SPACE, (seen + 1,))
    _assert_refused(w, rf"audit entry {seen + 1} ")


def test_an_old_rewritten_row_is_found_by_verify_and_by_a_new_client(
        pg_world: tuple[World, PgVaults, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Below this client's checkpoint a change gains nothing (the roster up to there is
    in the checkpoint); 'audit verify' names it, and a client new to the vault refuses."""
    w, vaults, db = pg_world
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


def test_deleted_newest_rows_are_refused(pg_world: tuple[World, PgVaults, str]) -> None:
    w, vaults, db = pg_world
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


def test_a_restored_old_backup_is_refused(pg_world: tuple[World, PgVaults, str]) -> None:
    """A consistent older state (audit, documents, counter together): a rollback."""
    w, vaults, db = pg_world
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


def test_a_fork_shown_to_another_client_is_refused_by_the_first(
        pg_world: tuple[World, PgVaults, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The DBA lets machine A commit, then rewinds and lets machine B commit another
    entry at the same seq: two histories. A refuses B's; B never saw A's."""
    w, vaults, db = pg_world
    carol = w.s("carol")
    with _superuser(vaults, db) as su:
        backup = _dump(su)
    w.vault.request(w.s("alice"), "db-root", "outage", "INC-A", 1800)  # machine A
    fork_at = _head(w)
    with _superuser(vaults, db) as su:
        _restore(su, backup)
    state = os.environ["GLASSKEY_STATE_DIR"]
    with monkeypatch.context() as machine_b:
        machine_b.setenv("GLASSKEY_STATE_DIR", state + "-machine-b")
        other = Vault(w.vault.store.twin(), w.clock, allow_weak_kdf=True)
        other.request(carol, "db-root", "outage", "INC-B", 1800)
        assert other.store.audit_head().seq == fork_at  # the same seq, another entry
    _assert_refused(w, rf"entry {fork_at} differs from the one this client saw")


def test_an_inserted_row_is_refused(pg_world: tuple[World, PgVaults, str]) -> None:
    w, vaults, db = pg_world
    head = _head(w)
    with _superuser(vaults, db) as su:
        su.execute("INSERT INTO glasskey.audit SELECT seq + 1, line, hash FROM glasskey.audit "
                   "WHERE seq = %s", (head,))
    _assert_refused(w, rf"entries past the vault's head \(entry {head} < {head + 1}\)")


def test_an_inserted_row_with_a_moved_head_is_refused(
        pg_world: tuple[World, PgVaults, str]) -> None:
    """The DBA also moves the metadata's head to the forged row: its links fail."""
    w, vaults, db = pg_world
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


def test_reordered_rows_are_refused(pg_world: tuple[World, PgVaults, str]) -> None:
    w, vaults, db = pg_world
    req = w.checkout("db-root")
    head = _head(w)
    with _superuser(vaults, db) as su:
        # Swap the two newest entries (the same as swapping their seq numbers).
        su.execute("UPDATE glasskey.audit a SET line = b.line, hash = b.hash "
                   "FROM glasskey.audit b WHERE (a.seq, b.seq) IN ((%s, %s), (%s, %s))",
                   (head, head - 1, head - 1, head))
    _assert_refused(w, "rewritten|not the one the vault's head names", req)


# -- the documents ---------------------------------------------------------------------------------


def test_an_edited_operator_key_is_refused(pg_world: tuple[World, PgVaults, str]) -> None:
    w, vaults, db = pg_world
    req = w.checkout("db-root")
    _, mallory_pub = new_signer("mallory")
    edit_doc(vaults, db, "operators", "bob", "sign_pub", mallory_pub.hex())
    _assert_refused(w, "operator record 'bob' differs from the signed roster", req)


def test_an_edited_credential_target_runs_nothing(pg_world: tuple[World, PgVaults, str],
                                                  tmp_path: Path) -> None:
    w, vaults, db = pg_world
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
    edit_doc(vaults, db, "credentials", w.vault.cred_id_for("svc"), "target", str(evil))
    with pytest.raises(IntegrityError, match=r"svc's configuration .* edited"):
        _fresh_client(w).checkin(w.s("alice"), req)
    assert not marker.exists()


def test_an_edited_sealed_value_releases_nothing(pg_world: tuple[World, PgVaults, str]) -> None:
    """The DBA swaps in another ciphertext: authenticated decryption refuses it."""
    w, vaults, db = pg_world
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


