"""Shared pytest fixtures. Several people add fixtures here: keep each set in its
own clearly delimited block and leave the others' blocks alone."""

from __future__ import annotations

# ==== BEGIN real-server fixtures (tests/servers.py; connector tests) =========
# Session-scoped: each server starts once per test session, on a free port in
# its own temp dir, and is stopped at the end. A server that cannot start makes
# the tests that use it FAIL with the server's log tail (never skip).
from collections.abc import Iterator

import pytest

from tests.servers import LdapServer, PostgresServer, start_postgres, start_slapd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (scram-sha-256, statement log on)."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ldap_server() -> Iterator[LdapServer]:
    """A throwaway slapd (mdb, dc=example,dc=org) on ldap://127.0.0.1:<port>."""
    server = start_slapd()
    try:
        yield server
    finally:
        server.stop()


# ==== END real-server fixtures ================================================
