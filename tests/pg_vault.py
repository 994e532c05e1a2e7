"""Vaults in a real PostgreSQL for the storage tests (tests/servers.py starts it).

One server per test session (the ``postgres_server`` fixture), a fresh database
per test. Passwords reach libpq only through a pgpass file named by
``PGPASSFILE`` (set for the session, so forked children and subprocesses find
it too): no URL a test builds holds a password, as glasskey insists.

Fixtures: ``pg_vaults`` (the server, databases, operator roles), ``pg_world``
(three operators and a credential in a fresh database, as tests/checkout_world
makes them) and ``pg_bare`` (a founded vault without operator records).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from checkout_world import FAST_KDF, ROLES, SEEDS, World, passphrase
from glasskey.core.clock import FakeClock
from glasskey.core.operators import OperatorSpec
from glasskey.core.storage.postgres import PostgresStore
from glasskey.core.vault import Vault
from helpers import founding_details, new_signer
from pg_helpers import SECRET
from psycopg import sql
from servers import PostgresServer, new_password

__all__ = ["PgVaults"]


@dataclass
class PgVaults:
    """The session's server and the pgpass file every client role logs in with."""

    server: PostgresServer
    passfile: Path
    roles: dict[str, str] = field(default_factory=dict)

    def new_database(self) -> str:
        name = f"gk_{secrets.token_hex(6)}"
        self.server.execute(f'CREATE DATABASE "{name}"')
        return name

    def url(self, dbname: str, user: str | None = None) -> str:
        role = user or self.server.admin_user
        return f"postgresql://{role}@{self.server.host}:{self.server.port}/{dbname}"

    def superuser(self, dbname: str) -> psycopg.Connection[tuple[Any, ...]]:
        """A superuser connection to ``dbname``: the untrusted administrator."""
        s = self.server
        return psycopg.connect(host=s.host, port=s.port, dbname=dbname, user=s.admin_user,
                               autocommit=True)

    def operator_role(self, name: str) -> str:
        """A LOGIN role for one operator, member of glasskey_client; its password goes
        into the pgpass file only."""
        if name not in self.roles:
            password = new_password()
            self.server.create_role(name, password)
            self.server.execute(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                "'glasskey_client') THEN CREATE ROLE glasskey_client NOLOGIN; END IF; END $$")
            self.server.execute(sql.SQL("GRANT glasskey_client TO {}").format(
                sql.Identifier(name)).as_string(None))
            self.roles[name] = password
            with self.passfile.open("a") as fh:
                fh.write(f"{self.server.host}:{self.server.port}:*:{name}:{password}\n")
        return name


@pytest.fixture(scope="session")
def pg_vaults(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[PgVaults]:
    passfile = tmp_path_factory.mktemp("pgpass") / "pgpass"
    passfile.touch(mode=0o600)
    s = postgres_server
    passfile.write_text(f"{s.host}:{s.port}:*:{s.admin_user}:{s.admin_password}\n")
    old = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(passfile)
    try:
        yield PgVaults(s, passfile)
    finally:
        if old is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = old



@pytest.fixture
def pg_world(pg_vaults: PgVaults, tmp_path: Path) -> Iterator[tuple[World, PgVaults, str]]:
    """Three operators and one credential (db-root) in a fresh database; alice unlocked."""
    db = pg_vaults.new_database()
    clock = FakeClock(1_800_000_000.0)
    vault = Vault(PostgresStore(pg_vaults.url(db)), clock, allow_weak_kdf=True)
    vault.initialise([OperatorSpec(n, ROLES[n], passphrase(n), SEEDS[n])
                      for n in ("alice", "bob", "carol")], kdf_params=FAST_KDF)
    w = World(tmp_path / "unused", clock, vault)
    w.add("db-root", SECRET)
    w.s("alice")
    yield w, pg_vaults, db
    vault.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def pg_bare(pg_vaults: PgVaults) -> Iterator[tuple[PostgresStore, Any, str]]:
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

