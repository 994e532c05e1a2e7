"""Shared pytest fixtures. Several people add fixtures here: keep each set in its
own clearly delimited block and leave the others' blocks alone."""

from __future__ import annotations

# ==== BEGIN real-server fixtures (tests/servers.py; connector tests) =========
# Session-scoped: each server starts once per test session, on a free port in
# its own temp dir, and is stopped at the end. A server that cannot start makes
# the tests that use it FAIL with the server's log tail (never skip).
from collections.abc import Iterator

import pytest
from servers import LdapServer, PostgresServer, start_postgres, start_slapd


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


@pytest.fixture(autouse=True, scope="session")
def _site_policy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """GLASSKEY_SITE_CONFIG -> a test site policy (never /etc/glasskey/site.toml),
    for the whole session so module-scoped fixtures see it too: command targets
    may sit anywhere under pytest's temp dir, and plain ldap:// is allowed (the
    test slapd listens on loopback without TLS). Tests of the policy itself
    point the variable at their own file with monkeypatch."""
    base = tmp_path_factory.getbasetemp().resolve()
    path = base / "site.toml"
    path.write_text(f'[command]\nallowed_dirs = ["{base}"]\n'
                    "[ldap]\nallow_plaintext = true\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GLASSKEY_SITE_CONFIG", str(path))
        yield path


# ==== END real-server fixtures ================================================


# ==== BEGIN foundation fixtures (tests/helpers.py; store/audit/auth tests) ====
# Autouse: every test gets its own client state dir (witness checkpoints never
# touch the real user's) and tiny Argon2id parameters are allowed.
from pathlib import Path  # noqa: E402

from helpers import StoreEnv, VaultEnv, make_store, make_vault  # noqa: E402


@pytest.fixture(autouse=True)
def _glasskey_test_env(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> Path:
    """GLASSKEY_STATE_DIR -> a fresh temp dir; GLASSKEY_INSECURE_FAST_KDF=1."""
    state = tmp_path_factory.mktemp("client-state")
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(state))
    monkeypatch.setenv("GLASSKEY_INSECURE_FAST_KDF", "1")
    monkeypatch.delenv("GLASSKEY_VAULT", raising=False)
    return state


@pytest.fixture
def vault2(tmp_path: Path) -> VaultEnv:
    """A vault with alice (requester, admin) and bob (approver, admin, requester)."""
    return make_vault(tmp_path, operators=2)


@pytest.fixture
def vault3(tmp_path: Path) -> VaultEnv:
    """As vault2 plus carol (approver, requester)."""
    return make_vault(tmp_path, operators=3)


@pytest.fixture
def store_env(tmp_path: Path) -> StoreEnv:
    """A bare Store at tmp_path/store with one founder ("tester") signing entries."""
    return make_store(tmp_path / "store")


# ==== END foundation fixtures =================================================
