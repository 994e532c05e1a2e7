"""Going back: a PostgreSQL vault moves into a directory (``glasskey migrate --to DIR``).

A round trip directory -> database -> directory keeps every audit line byte for
byte; clients that used the database carry on in the directory with their
checkpoints; the database is then retired (one sentence naming the directory);
a row the database's administrator edits during the move is caught and nothing
is retired. Against the session's real PostgreSQL (tests/pg_vault.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from checkout_world import FAST_KDF, ROLES, SEEDS, World, passphrase
from glasskey.core.clock import FakeClock
from glasskey.core.errors import (
    IntegrityError,
    NotFoundError,
    PolicyError,
    StorageError,
    UsageError,
)
from glasskey.core.operators import OperatorSpec
from glasskey.core.storage.files import FileStore
from glasskey.core.storage.postgres import PostgresStore
from glasskey.core.storage.postgres_export import move_to_directory
from glasskey.core.storage.postgres_import import move_to_postgres
from glasskey.core.vault import Vault
from pg_helpers import SECRET, Machine, found_cli_vault

if TYPE_CHECKING:
    from pg_vault import PgVaults

pytest_plugins = ["pg_vault"]  # the session's PostgreSQL (pg_vaults, pg_world)


def _moved_to(vaults: PgVaults, db: str) -> str | None:
    """The retirement mark as the database holds it (read as the superuser)."""
    with vaults.superuser(db) as su:
        row = su.execute("SELECT body FROM glasskey.doc WHERE tbl = 'meta' AND key = 'vault'"
                         ).fetchone()
    assert row is not None
    value = json.loads(bytes(row[0])).get("moved_to")
    return None if value is None else str(value)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".moving-" in p.name)


def test_a_round_trip_keeps_every_audit_line_and_the_clients_carry_on(
        pg_vaults: PgVaults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(1_800_000_000.0)
    first = Vault(tmp_path / "first", clock, allow_weak_kdf=True)
    first.initialise([OperatorSpec(n, ROLES[n], passphrase(n), SEEDS[n])
                      for n in ("alice", "bob", "carol")], kdf_params=FAST_KDF)
    w = World(tmp_path / "first", clock, first)
    w.add("db-root", SECRET)
    held = w.checkout("db-root")
    assert w.vault.reveal(w.s("alice"), held).reveal() == SECRET
    db = pg_vaults.new_database()
    url = pg_vaults.url(db)
    move_to_postgres(FileStore(tmp_path / "first"), PostgresStore(url))
    # Life goes on in the database: a new credential and a pending request.
    w.vault = Vault(PostgresStore(url), clock, allow_weak_kdf=True)
    w.add("db-two", "second-value")
    pending = w.vault.request(w.s("carol"), "db-two", "later", "INC-9", 900).id
    database_lines = [bytes(x) for x in w.vault.store.audit_lines()]
    head = w.vault.store.audit_head()
    seen: list[tuple[int, int]] = []
    back = tmp_path / "back"
    done = move_to_directory(PostgresStore(url), back,
                             progress=lambda n, total: seen.append((n, total)))
    assert (done.directory, done.entries, done.head_seq, done.head_hash) == \
        (back, head.seq, head.seq, head.hash)
    assert seen[0] == (0, head.seq) and seen[-1] == (head.seq, head.seq)
    # Byte for byte: the directory's audit.jsonl is the database's rows, and the
    # first directory's log is a prefix of it.
    assert list(FileStore(back).audit_lines()) == database_lines
    assert (back / "audit.jsonl").read_bytes() == b"".join(x + b"\n" for x in database_lines)
    assert (back / "audit.jsonl").read_bytes().startswith(
        (tmp_path / "first" / "audit.jsonl").read_bytes())
    assert FileStore(back).verify_audit().ok
    assert _leftovers(tmp_path) == []
    # The same client (checkpoint from the database) carries on in the directory.
    w.vault = Vault(back, clock, allow_weak_kdf=True)
    assert sorted(c.name for c in w.vault.credentials()) == ["db-root", "db-two"]
    assert {c.id: c.state for c in w.vault.checkouts(open_only=True)} == \
        {held: "checked-out", pending: "requested"}
    with pytest.raises(PolicyError, match="one holder at a time"):
        w.checkout("db-root", requester="carol")
    w.vault.approve(w.s("bob"), pending)
    assert w.vault.reveal(w.s("carol"), pending).reveal() == "second-value"
    assert w.vault.store.verify_audit().ok
    # A client new to the vault verifies the whole history from genesis.
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / "new-machine"))
    result = FileStore(back).verify_audit()
    assert result.ok and result.mode == "full" and result.head.seq > head.seq
    # The database is retired: every client naming the URL is told where the vault went.
    assert _moved_to(pg_vaults, db) == str(back)
    for state in ("client-state", "new-machine"):
        monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / state))
        with pytest.raises(NotFoundError, match=f"moved to the directory {back}; open it "
                           f"with --vault {back}"), PostgresStore(url).read():
            pass
    gone = Vault(PostgresStore(url), clock, allow_weak_kdf=True)
    with pytest.raises(NotFoundError, match="moved to the directory"):
        gone.request(w.s("alice"), "db-root", "outage", "INC-3", 600)
    with pytest.raises(NotFoundError, match="moved to the directory"):
        move_to_directory(PostgresStore(url), tmp_path / "again")
    assert not (tmp_path / "again").exists()


CLIENT = """
import sys
from glasskey.core.errors import GlasskeyError
from glasskey.core.storage import open_store
try:
    with open_store(sys.argv[1]).read() as txn:
        print(txn.audit_head.seq)
except GlasskeyError as exc:
    sys.exit(f"{exc} (exit {exc.exit_code})")
"""


def test_another_machines_checkpoint_holds_in_the_directory(
        pg_world: tuple[World, PgVaults, str], tmp_path: Path) -> None:
    """Machine B (its own process, HOME and state dir) used the database; after the move
    it opens the directory with the checkpoint it kept, and would refuse a directory
    that lost what it saw."""
    w, vaults, db = pg_world
    url = vaults.url(db)
    home = tmp_path / "machine-b"
    env = dict(os.environ, HOME=str(home), GLASSKEY_STATE_DIR=str(home / "state"))

    def machine_b(location: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", CLIENT, location], env=env,
                              capture_output=True, text=True, timeout=120)

    seq = w.vault.store.audit_head().seq
    r = machine_b(url)
    assert r.returncode == 0 and r.stdout.strip() == str(seq), r.stderr
    (checkpoint,) = (home / "state" / "checkpoints").iterdir()
    saved = json.loads(checkpoint.read_bytes())
    move_to_directory(PostgresStore(url), tmp_path / "back")
    r = machine_b(str(tmp_path / "back"))
    assert r.returncode == 0 and r.stdout.strip() == str(seq), r.stderr
    assert json.loads(checkpoint.read_bytes())["seq"] == saved["seq"] == seq
    r = machine_b(url)
    assert f"moved to the directory {tmp_path / 'back'}" in r.stderr
    assert r.stderr.strip().endswith("(exit 2)"), r.stderr
    # B's checkpoint is in force there: the directory cut back before what B saw
    # (its newest line and head removed) is refused as a rollback.
    w.vault = Vault(tmp_path / "back", w.clock, allow_weak_kdf=True)
    w.add("db-three", "third")
    r = machine_b(str(tmp_path / "back"))
    assert r.returncode == 0 and int(r.stdout) > seq, r.stderr
    backup = (tmp_path / "back" / "vault.json.bak")
    os.replace(backup, tmp_path / "back" / "vault.json")
    r = machine_b(str(tmp_path / "back"))
    assert "rolled back" in r.stderr and r.stderr.strip().endswith("(exit 3)"), r.stderr


def _rewrite(line: bytes, edit: str) -> bytes:
    if edit == "longer":
        return line + b" "
    # One character of the signature changes: the same length, a broken entry.
    at = line.index(b'"sig":"') + 12
    return line[:at] + (b"B" if line[at:at + 1] == b"A" else b"A") + line[at + 1:]


def _edit_row_2(vaults: PgVaults, db: str, edit: str) -> bytes:
    """The administrator rewrites audit entry 2 (triggers off); returns the honest line."""
    with vaults.superuser(db) as su:
        su.execute("SET session_replication_role = replica")
        row = su.execute("SELECT line FROM glasskey.audit WHERE seq = 2").fetchone()
        assert row is not None
        su.execute("UPDATE glasskey.audit SET line = %s WHERE seq = 2",
                   (_rewrite(bytes(row[0]), edit),))
    return bytes(row[0])


@pytest.mark.parametrize("edit", ["longer", "same-length"])
def test_an_edited_row_is_caught_by_the_move_and_nothing_is_retired(
        pg_world: tuple[World, PgVaults, str], tmp_path: Path, edit: str) -> None:
    """The administrator rewrites an audit row older than the moving client's checkpoint
    (so its own guard, which verifies from there, does not look at it): the copy's full
    verification refuses (exit 3), the staging directory is removed, the target never
    appears, and the database stays in service."""
    w, vaults, db = pg_world
    url = vaults.url(db)
    w.vault.cancel(w.s("alice"), w.checkout("db-root"))  # entry 2 is now an old one
    _edit_row_2(vaults, db, edit)
    target = tmp_path / "back"
    with pytest.raises(IntegrityError) as caught:
        move_to_directory(PostgresStore(url), target)
    assert caught.value.exit_code == 3
    assert "nothing was retired" in str(caught.value), caught.value
    assert not target.exists() and _leftovers(tmp_path) == []
    assert _moved_to(vaults, db) is None
    # Still in service for a client whose checkpoint is past the edit (the edit is
    # for 'audit verify' to find, as any rewrite of an old row is).
    w.vault.request(w.s("alice"), "db-root", "outage", "INC-4", 600)
    found = PostgresStore(url).verify_audit()
    assert not found.ok and found.first_bad == 2, found


def test_a_row_edited_while_the_move_runs_never_reaches_the_directory(
        pg_world: tuple[World, PgVaults, str], tmp_path: Path) -> None:
    """The rewrite lands once the move holds the writers' lock and has verified the
    vault. Under READ COMMITTED the copy reads it and refuses (exit 3, nothing
    retired); under a snapshot the copy never sees it and holds the honest entry.
    Either way the directory never holds the edited row."""
    w, vaults, db = pg_world
    url = vaults.url(db)
    w.vault.cancel(w.s("alice"), w.checkout("db-root"))
    honest: list[bytes] = []

    def tamper(done: int, total: int) -> None:
        if done == 0:
            honest.append(_edit_row_2(vaults, db, "longer"))

    target = tmp_path / "back"
    try:
        move_to_directory(PostgresStore(url), target, progress=tamper)
    except IntegrityError as exc:
        assert "nothing was retired" in str(exc) and exc.exit_code == 3, exc
        assert not target.exists() and _leftovers(tmp_path) == []
        assert _moved_to(vaults, db) is None
    else:
        assert list(FileStore(target).audit_lines())[1] == honest[0]
        assert FileStore(target).verify_audit().ok
    assert honest, "the edit never ran"


def test_the_target_must_be_new_or_empty(pg_world: tuple[World, PgVaults, str],
                                         tmp_path: Path) -> None:
    _, vaults, db = pg_world
    url = vaults.url(db)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not empty"):
        move_to_directory(PostgresStore(url), busy)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        move_to_directory(PostgresStore(url), tmp_path / "file")
    assert _moved_to(vaults, db) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert move_to_directory(PostgresStore(url), empty).directory == empty
    assert FileStore(empty).verify_audit().ok
    with psycopg.connect(url) as conn:  # the retired database still holds its rows
        row = conn.execute("SELECT count(*) FROM glasskey.audit").fetchone()
    assert row is not None and row[0] == FileStore(empty).audit_head().seq


def test_migrate_to_a_directory_end_to_end(pg_vaults: PgVaults, tmp_path: Path) -> None:
    """The CLI both ways: a directory vault into the database, a checkout there, then
    `glasskey migrate --to DIR` back out; each retired source names the next home."""
    first = tmp_path / "first"
    m = Machine(tmp_path, "bob", str(first))
    found_cli_vault(m, tmp_path)
    db = pg_vaults.new_database()
    url = pg_vaults.url(db)
    r = m("migrate", "--to", url, "--yes")
    assert r.returncode == 0, r.stderr
    m.env["GLASSKEY_VAULT"] = url
    r = m("request", "db-root", "--reason", "primary down", "--ticket", "INC-42",
          "--duration", "30m", "--json", *m.auth(0, "alice"))
    assert r.returncode == 0, r.stderr
    req = json.loads(r.stdout)["id"]
    r = m("approve", req, *m.auth(0))
    assert r.returncode == 0, r.stderr
    back = tmp_path / "back"
    r = m("migrate", "--to", str(back))  # no terminal to ask on, no --yes: nothing happens
    assert r.returncode == 2 and "--yes" in r.stderr, r.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes").write_text("mine")
    r = m("migrate", "--to", str(tmp_path / "busy"), "--yes")
    assert r.returncode == 2 and "is not empty" in r.stderr, r.stderr
    r = m("migrate", "--to", pg_vaults.url(pg_vaults.new_database()), "--yes")
    assert r.returncode == 2 and "into a directory (--to DIR)" in r.stderr, r.stderr
    assert not back.exists() and _moved_to(pg_vaults, db) is None
    r = m("migrate", "--to", str(back), "--yes", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["moved_to"] == str(back) and doc["entries"] == doc["head_seq"] >= 4
    assert "retired postgresql://" in r.stderr
    # The database's rows are the directory's lines, byte for byte, and the first
    # directory's log is where both begin.
    with pg_vaults.superuser(db) as su:
        rows = [bytes(x[0]) for x in su.execute("SELECT line FROM glasskey.audit ORDER BY seq")]
    assert (back / "audit.jsonl").read_bytes() == b"".join(x + b"\n" for x in rows)
    assert (back / "audit.jsonl").read_bytes().startswith((first / "audit.jsonl").read_bytes())
    # The URL is retired: one sentence naming the directory, exit 2 (as for a directory).
    for command in (("request", "list"), ("audit", "verify"), ("cred", "list")):
        r = m(*command)
        assert r.returncode == 2, (command, r.stderr)
        assert r.stderr.strip() == (f"glasskey: the vault at postgresql://{pg_vaults.server.host}:"
                                    f"{pg_vaults.server.port}/{db} moved to the directory "
                                    f"{back}; open it with --vault {back}"), r.stderr
    m.env["GLASSKEY_VAULT"] = str(back)
    r = m("audit", "verify", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stderr
    r = m("request", "list", "--json")
    assert [(c["id"], c["state"]) for c in json.loads(r.stdout)] == [(req, "approved")]
    r = m("migrate", "--to", str(tmp_path / "elsewhere"), "--yes")
    assert r.returncode == 2 and "already a directory" in r.stderr, r.stderr
    m.env["GLASSKEY_VAULT"] = str(first)
    r = m("request", "list")
    assert r.returncode == 2 and "moved to postgresql://" in r.stderr, r.stderr


def test_a_failure_once_the_copy_is_in_place_says_what_to_do(
        pg_world: tuple[World, PgVaults, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory is renamed into place just before the database is retired: if that
    last step fails, the database stays in service and the error says how to finish."""
    from glasskey.core.storage import postgres_export

    _, vaults, db = pg_world

    def broken_disk(path: Path) -> None:
        raise StorageError("cannot flush the directory (Input/output error)")

    monkeypatch.setattr(postgres_export, "fsync_dir", broken_disk)
    target = tmp_path / "back"
    with pytest.raises(StorageError, match=f"{target} holds a verified copy of the vault: "
                       "if the database vault now says it moved there, use the directory; "
                       f"if not, remove {target} and move again"):
        move_to_directory(PostgresStore(vaults.url(db)), target)
    assert _moved_to(vaults, db) is None
    assert FileStore(target).verify_audit().ok
