"""The PostgreSQL backend's faults, with the real server: each is one sentence, loses
nothing, keeps the fail-closed rule, and the same call works afterwards. Also
schema migrations and TLS (sslmode=verify-full).
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from checkout_world import World
from glasskey.core.errors import StorageError, UsageError
from glasskey.core.storage import postgres_schema
from glasskey.core.storage.postgres import PostgresStore
from helpers import counters, increment
from pg_helpers import SECRET

if TYPE_CHECKING:
    from pg_vault import PgVaults

pytest_plugins = ["pg_vault"]  # the session's PostgreSQL (pg_vaults, pg_world, pg_bare)


# -- faults: each one sentence, nothing lost, the same call works afterwards -----------------------


def test_a_restarted_server_is_reconnected_to(pg_bare: tuple[PostgresStore, Any, str],
                                              pg_vaults: PgVaults) -> None:
    from servers import _run

    store, signer, _ = pg_bare
    assert increment(store, signer) == 1  # the handle now holds pooled connections
    s = pg_vaults.server
    done = _run([str(s.bin_dir / "pg_ctl"), "restart", "-D", str(s.data_dir), "-m", "fast",
                 "-w", "-l", str(s.log_file)], as_user=s.owner)
    assert done.returncode == 0, done.stderr
    assert increment(store, signer) == 2
    assert counters(store) == (2, 2)


def test_a_connection_dropped_mid_transaction_changes_nothing(
        pg_bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults) -> None:
    store, signer, db = pg_bare
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
        pg_bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults) -> None:
    store, signer, db = pg_bare
    with pg_vaults.superuser(db) as su:
        su.execute("BEGIN")
        su.execute("SELECT seq FROM glasskey.counter FOR UPDATE")  # someone else's long write
        with pytest.raises(StorageError, match=r"is busy: .* within 0.5 s; try again"):
            increment(store, signer)
        su.execute("ROLLBACK")
    assert increment(store, signer) == 1


def test_a_statement_timeout_is_one_sentence(pg_vaults: PgVaults,
                                             pg_bare: tuple[PostgresStore, Any, str]) -> None:
    _, signer, db = pg_bare
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
        pg_bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, signer, db = pg_bare
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


def test_an_operator_role_cannot_migrate_and_is_told_who_can(
        pg_bare: tuple[PostgresStore, Any, str], pg_vaults: PgVaults,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrations create functions and triggers: only the owner may. An operator's
    own role gets one sentence saying so (schema version 2 added such a trigger)."""
    _, signer, db = pg_bare
    monkeypatch.setitem(postgres_schema.MIGRATIONS, postgres_schema.SQL_SCHEMA_VERSION,
                        "CREATE TABLE glasskey.added_later (x int)")
    monkeypatch.setattr(postgres_schema, "SQL_SCHEMA_VERSION",
                        postgres_schema.SQL_SCHEMA_VERSION + 1)
    operator = PostgresStore(pg_vaults.url(db, pg_vaults.operator_role("op_erin")))
    with pytest.raises(UsageError, match=r"needs upgrading to this glasskey's, and this "
                                         r"database role may not: make any change as the "
                                         r"database's owner role"):
        increment(operator, signer)
    assert increment(PostgresStore(pg_vaults.url(db)), signer) == 1  # the owner's write
    assert increment(operator, signer) == 2  # and then the operator's


def test_a_reveal_whose_connection_drops_releases_nothing_then_works(
        pg_world: tuple[World, PgVaults, str]) -> None:
    """Fail closed: no secret without its durable audit record; then the same reveal
    succeeds once the database answers again."""
    w, vaults, db = pg_world
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


def _fill(directory: Path) -> Path:
    """Write a ballast file into ``directory`` until its filesystem is full."""
    ballast = directory / "ballast"
    chunk = b"\0" * 65536
    with ballast.open("wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return ballast


def test_a_full_disk_releases_nothing_and_the_reveal_works_once_space_is_back(
        pg_world: tuple[World, PgVaults, str]) -> None:
    """The audit table lives in a tablespace on a small tmpfs that fills up (ENOSPC,
    as a full disk). fillfactor 10 makes every audit append need a new page, so the
    reveal's own audit record is the write that cannot be made: the reveal is one
    sentence, records nothing and releases nothing; once space is back it works."""
    from servers import small_filesystem

    w, vaults, db = pg_world
    req = w.checkout("db-root")
    store = w.vault.store
    assert isinstance(store, PostgresStore)
    space = f"gk_small_{db}"
    try:
        mounted = small_filesystem("2M", vaults.server.owner)
        directory = mounted.__enter__()
    except RuntimeError as exc:
        pytest.skip(f"a full disk needs a filesystem that can fill up: {exc}")
    try:
        with vaults.superuser(db) as su:
            su.execute(f"CREATE TABLESPACE {space} LOCATION '{directory}'")
            su.execute(f"ALTER TABLE glasskey.audit SET TABLESPACE {space}")
            su.execute("ALTER TABLE glasskey.audit SET (fillfactor = 10)")
        ballast = _fill(directory)
        head = store.audit_head()
        with pytest.raises(StorageError) as caught:
            w.vault.reveal(w.s("alice"), req)
        message = str(caught.value)
        assert message.startswith(f"the PostgreSQL vault at {store.location} could not "
                                  "write: the database server is out of disk space ("), message
        assert message.endswith("); nothing was changed, try again once it has space")
        assert 'could not extend file "pg_tblspc/' in message  # the audit table's own file
        assert "No space left on device" in message
        assert "\n" not in message and SECRET not in message
        assert store.audit_head() == head  # no record, and so no secret
        assert w.vault.checkout(req).state == "approved"  # nothing lost either
        ballast.unlink()  # space is back
        assert w.vault.reveal(w.s("alice"), req).reveal() == SECRET
        reveals = [e for e in store.audit_tail(5).entries if e["event"] == "checkout.revealed"]
        assert [e["subject"] for e in reveals] == [req]
        assert store.verify_audit().ok
    finally:
        with vaults.superuser(db) as su:
            su.execute("ALTER TABLE glasskey.audit SET TABLESPACE pg_default")
            su.execute(f"DROP TABLESPACE IF EXISTS {space}")
        mounted.__exit__(None, None, None)


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
