"""The postgres connector against a real PostgreSQL server.

Why a real server: the connector's promises are about what the server does —
the new password logs in, the old one is refused (RELIABILITY.md R1: "old
value proven rejected after commit"), a retried ``set`` after a lost reply is
harmless, and the plaintext never reaches the server (only a client-side SCRAM
verifier does, so the statement log cannot leak it). A mock would only repeat
our assumptions. The cluster (tests/servers.py) uses scram-sha-256 for every
role, so "refused" really means the password was checked, and logs every
statement, so grepping its log for a value is meaningful.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from glasskey.core.connectors import postgres as pg_module
from glasskey.core.connectors.base import ConnectorSettings
from glasskey.core.connectors.postgres import PostgresConnector
from glasskey.core.connectors.registry import make
from glasskey.core.errors import ConnectorError
from glasskey.core.secret import SecretValue
from servers import TRUST_PROBE_USER, PostgresServer, new_password

_counter = itertools.count()


@pytest.fixture
def role(postgres_server: PostgresServer) -> Iterator[tuple[str, SecretValue]]:
    """A fresh LOGIN role with a known password, so tests do not depend on each other."""
    name = f"bg_rot_{next(_counter)}"
    password = new_password()
    postgres_server.create_role(name, password)
    yield name, SecretValue(password)


def connector(
    server: PostgresServer,
    user: str,
    *,
    options: dict[str, str] | None = None,
    site: dict[str, str] | None = None,
) -> PostgresConnector:
    c = make(
        "postgres",
        ConnectorSettings(
            credential=f"pg-{user}",
            target=server.role_conninfo(user),
            options=options or {},
            site=site or {},
        ),
    )
    assert isinstance(c, PostgresConnector)
    return c


def can_login(server: PostgresServer, user: str, password: SecretValue) -> bool:
    """An independent check with psycopg, not through the connector."""
    try:
        with psycopg.connect(server.role_conninfo(user), password=password.reveal()) as conn:
            return conn.execute("SELECT current_user").fetchone() == (user,)
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
        return False


def test_breakglass_role_from_fixture_logs_in(postgres_server: PostgresServer) -> None:
    pg = postgres_server
    assert can_login(pg, pg.breakglass_user, SecretValue(pg.breakglass_password))
    assert not can_login(pg, pg.breakglass_user, SecretValue("not-the-password"))


def test_self_rotation_with_wrong_current_and_new_not_set_fails(
    postgres_server: PostgresServer, role: tuple[str, SecretValue]
) -> None:
    user, old = role
    wrong = SecretValue(new_password())
    new = SecretValue(new_password())
    c = connector(postgres_server, user)
    with pytest.raises(ConnectorError) as info:
        c.set(wrong, new)
    assert "refuses both" in str(info.value)
    for v in (old, wrong, new):
        assert v.reveal() not in str(info.value)
    assert c.verify(old)


def test_self_rotation_needs_current(
    postgres_server: PostgresServer, role: tuple[str, SecretValue]
) -> None:
    user, _old = role
    with pytest.raises(ConnectorError, match="no current value"):
        connector(postgres_server, user).set(None, SecretValue(new_password()))


def test_admin_service_with_service_file_and_pgpass(
    postgres_server: PostgresServer, role: tuple[str, SecretValue], tmp_path: Path
) -> None:
    user, old = role
    service_file, passfile = postgres_server.write_service_files(tmp_path, "gk-admin")
    c = connector(
        postgres_server,
        user,
        options={"admin_service": "gk-admin"},
        site={"service_file": str(service_file), "passfile": str(passfile)},
    )
    new = SecretValue(new_password())
    c.set(None, new)  # the admin path needs no current value
    assert c.verify(new)
    assert c.verify_rejected(old)
    # Idempotent: the same value again through the admin path.
    c.set(old, new)
    assert c.verify(new)
    assert can_login(postgres_server, user, new)


def test_admin_service_from_environment(
    postgres_server: PostgresServer,
    role: tuple[str, SecretValue],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, old = role
    service_file, passfile = postgres_server.write_service_files(tmp_path, "gk-env")
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    c = connector(postgres_server, user, options={"admin_service": "gk-env"})
    new = SecretValue(new_password())
    c.set(old, new)
    assert c.verify(new)
    assert not c.verify(old)


def test_admin_service_file_through_environment_fallback(
    postgres_server: PostgresServer,
    role: tuple[str, SecretValue],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libpq without a ``servicefile`` parameter: the site's service file is
    passed through PGSERVICEFILE for the connect, and the environment restored."""
    user, _old = role
    service_file, passfile = postgres_server.write_service_files(tmp_path, "gk-fallback")
    monkeypatch.setattr(pg_module, "_libpq_has_servicefile", lambda: False)
    monkeypatch.delenv("PGSERVICEFILE", raising=False)
    c = connector(
        postgres_server,
        user,
        options={"admin_service": "gk-fallback"},
        site={"service_file": str(service_file), "passfile": str(passfile)},
    )
    new = SecretValue(new_password())
    c.set(None, new)
    assert c.verify(new)
    import os

    assert "PGSERVICEFILE" not in os.environ


def test_admin_service_wrong_password_is_connector_error(
    postgres_server: PostgresServer, role: tuple[str, SecretValue], tmp_path: Path
) -> None:
    user, old = role
    service_file, passfile = postgres_server.write_service_files(tmp_path, "gk-bad")
    passfile.write_text(
        f"{postgres_server.host}:{postgres_server.port}:*:{postgres_server.admin_user}:wrong\n"
    )
    c = connector(
        postgres_server,
        user,
        options={"admin_service": "gk-bad"},
        site={"service_file": str(service_file), "passfile": str(passfile)},
    )
    new = SecretValue(new_password())
    with pytest.raises(ConnectorError) as info:
        c.set(old, new)
    assert "gk-bad" in str(info.value)
    assert new.reveal() not in str(info.value)
    assert c.verify(old)


def test_login_without_password_is_not_proof(postgres_server: PostgresServer) -> None:
    """A role that pg_hba.conf trusts logs in with any value; the connector
    must notice the server never asked for the password."""
    c = connector(postgres_server, TRUST_PROBE_USER)
    # libpq's require_auth now refuses it first; the used_password check stays as a backstop.
    with pytest.raises(ConnectorError,
                       match=r"without asking for a password|did not complete authentication"):
        c.verify(SecretValue("anything"))


def test_target_validation() -> None:
    for target in (None, "host=127.0.0.1 port=1", "host=x user=u password=p", "user='unterminated"):
        c = PostgresConnector(ConnectorSettings(credential="bad", target=target))
        with pytest.raises(ConnectorError):
            c.verify(SecretValue("x-value"))
        assert "x-value" not in c.describe()


def test_quoted_role_name(postgres_server: PostgresServer) -> None:
    """sql.Identifier: a role name that needs quoting is altered correctly."""
    user = 'Bg "odd" name'
    old = SecretValue(new_password())
    postgres_server.create_role(user, old.reveal())
    target = (
        f"host={postgres_server.host} port={postgres_server.port} dbname=postgres "
        "user='Bg \"odd\" name'"
    )
    c = PostgresConnector(ConnectorSettings(credential="odd", target=target))
    new = SecretValue(new_password())
    c.set(old, new)
    assert c.verify(new)
    assert not c.verify(old)


def test_values_never_reach_the_server_log(
    postgres_server: PostgresServer, role: tuple[str, SecretValue], tmp_path: Path
) -> None:
    user, old = role
    c = connector(postgres_server, user)
    self_new = SecretValue(new_password())
    c.set(old, self_new)
    service_file, passfile = postgres_server.write_service_files(tmp_path, "gk-log")
    admin = connector(
        postgres_server,
        user,
        options={"admin_service": "gk-log"},
        site={"service_file": str(service_file), "passfile": str(passfile)},
    )
    admin_new = SecretValue(new_password())
    admin.set(None, admin_new)
    assert admin.verify(admin_new)
    assert not admin.verify(old)

    log = postgres_server.log_text()
    # The log does record the statements (log_statement = all), so absence of
    # the values means something: only SCRAM verifiers were sent.
    assert "ALTER ROLE" in log
    assert "SCRAM-SHA-256$" in log
    for value in (old, self_new, admin_new):
        assert value.reveal() not in log
