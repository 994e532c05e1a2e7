"""Vaults in a real PostgreSQL for the storage tests (tests/servers.py starts it).

One server per test session (the ``postgres_server`` fixture), a fresh database
per test. Passwords reach libpq only through a pgpass file named by
``PGPASSFILE`` (set for the session, so forked children and subprocesses find
it too): no URL a test builds holds a password, as glasskey insists.
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
from psycopg import sql
from servers import PostgresServer, new_password


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
