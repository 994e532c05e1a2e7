"""The ldap connector against a real slapd.

Why a real server: what matters is what the directory does — a bind with the
new password succeeds, the old one gets invalidCredentials (RELIABILITY.md R1:
"old value proven rejected after commit"), the Password Modify extended
operation is accepted under real ACLs (self write on userPassword, or the
rootdn), a retried ``set`` is harmless, and an unreachable server is an error,
never "rejected". The slapd (tests/servers.py) has an mdb database with
``dc=example,dc=org`` and logs every operation at ``stats`` level, so grepping
its log for the values checks that nothing in the exchange echoes them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
from glasskey.core.connectors.base import ConnectorSettings
from glasskey.core.connectors.ldap import LdapConnector
from glasskey.core.connectors.registry import make
from glasskey.core.errors import ConnectorError
from glasskey.core.secret import SecretValue
from servers import LdapServer, free_port, new_password

_counter = itertools.count()


@pytest.fixture
def entry(ldap_server: LdapServer) -> Iterator[tuple[str, SecretValue]]:
    """A fresh entry with a known password, so tests do not depend on each other."""
    password = new_password()
    dn = ldap_server.add_user(f"bg{next(_counter)}", password)
    yield dn, SecretValue(password)


def connector(
    server: LdapServer,
    dn: str,
    *,
    options: dict[str, str] | None = None,
    site: dict[str, str] | None = None,
) -> LdapConnector:
    c = make(
        "ldap",
        ConnectorSettings(
            credential="ldap-cred",
            target=server.url,
            options={"dn": dn, **(options or {})},
            site=site or {},
        ),
    )
    assert isinstance(c, LdapConnector)
    return c


def can_bind(server: LdapServer, dn: str, password: SecretValue) -> bool:
    """An independent check with ldap3, not through the connector."""
    conn = ldap3.Connection(ldap3.Server(server.url), user=dn, password=password.reveal())
    try:
        ok = bool(conn.bind())
        if not ok:
            assert conn.result["result"] == 49
        return ok
    finally:
        conn.unbind()


def test_breakglass_entry_from_fixture_binds(ldap_server: LdapServer) -> None:
    s = ldap_server
    assert can_bind(s, s.breakglass_dn, SecretValue(s.breakglass_password))
    assert not can_bind(s, s.breakglass_dn, SecretValue("not-the-password"))


def test_self_rotation_stores_a_hash(
    ldap_server: LdapServer, entry: tuple[str, SecretValue]
) -> None:
    """The extended operation lets the server hash the value (password-hash {SSHA})."""
    dn, old = entry
    new = SecretValue(new_password())
    connector(ldap_server, dn).set(old, new)
    conn = ldap3.Connection(
        ldap3.Server(ldap_server.url),
        user=ldap_server.admin_dn,
        password=ldap_server.admin_password,
        auto_bind=True,
    )
    conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["userPassword"])
    stored = conn.entries[0].userPassword.value
    conn.unbind()
    stored = stored if isinstance(stored, bytes) else stored[0]
    assert stored.startswith(b"{SSHA}")
    assert new.encode() not in stored


def test_self_rotation_with_wrong_current_fails_without_change(
    ldap_server: LdapServer, entry: tuple[str, SecretValue]
) -> None:
    dn, old = entry
    wrong = SecretValue(new_password())
    new = SecretValue(new_password())
    c = connector(ldap_server, dn)
    with pytest.raises(ConnectorError) as info:
        c.set(wrong, new)
    assert "refuses both" in str(info.value)
    for v in (old, wrong, new):
        assert v.reveal() not in str(info.value)
    assert c.verify(old)


def test_self_rotation_needs_current(
    ldap_server: LdapServer, entry: tuple[str, SecretValue]
) -> None:
    dn, _old = entry
    with pytest.raises(ConnectorError, match="no current value"):
        connector(ldap_server, dn).set(None, SecretValue(new_password()))


def test_self_rotation_with_replace(
    ldap_server: LdapServer, entry: tuple[str, SecretValue]
) -> None:
    dn, old = entry
    new = SecretValue(new_password())
    c = connector(ldap_server, dn, options={"password_change": "replace"})
    c.set(old, new)
    assert c.verify(new)
    assert not c.verify(old)


def test_unknown_password_change_method(
    ldap_server: LdapServer, entry: tuple[str, SecretValue]
) -> None:
    dn, old = entry
    c = connector(ldap_server, dn, options={"password_change": "telepathy"})
    with pytest.raises(ConnectorError, match="password_change"):
        c.set(old, SecretValue(new_password()))
    assert c.verify(old)


def test_admin_bind(
    ldap_server: LdapServer, entry: tuple[str, SecretValue], tmp_path: Path
) -> None:
    dn, old = entry
    pw_file = ldap_server.write_admin_password_file(tmp_path)
    c = connector(
        ldap_server,
        dn,
        options={"admin_bind_dn": ldap_server.admin_dn},
        site={"admin_password_file": str(pw_file)},
    )
    new = SecretValue(new_password())
    c.set(None, new)  # the admin path needs no current value
    assert c.verify(new)
    assert c.verify_rejected(old)
    c.set(old, new)  # idempotent through the admin path too
    assert c.verify(new)
    assert can_bind(ldap_server, dn, new)


def test_admin_bind_wrong_password_file(
    ldap_server: LdapServer, entry: tuple[str, SecretValue], tmp_path: Path
) -> None:
    dn, old = entry
    pw_file = tmp_path / "wrong.pw"
    pw_file.write_text("wrong-admin-password\n")
    c = connector(
        ldap_server,
        dn,
        options={"admin_bind_dn": ldap_server.admin_dn},
        site={"admin_password_file": str(pw_file)},
    )
    with pytest.raises(ConnectorError, match="refused the admin bind") as info:
        c.set(None, SecretValue(new_password()))
    assert "wrong-admin-password" not in str(info.value)
    assert c.verify(old)


def test_admin_bind_without_password_file(
    ldap_server: LdapServer, entry: tuple[str, SecretValue], tmp_path: Path
) -> None:
    dn, _old = entry
    c = connector(ldap_server, dn, options={"admin_bind_dn": ldap_server.admin_dn})
    with pytest.raises(ConnectorError, match="admin_password_file"):
        c.set(None, SecretValue(new_password()))
    c = connector(
        ldap_server,
        dn,
        options={"admin_bind_dn": ldap_server.admin_dn},
        site={"admin_password_file": str(tmp_path / "missing.pw")},
    )
    with pytest.raises(ConnectorError, match="cannot read"):
        c.set(None, SecretValue(new_password()))


def test_verify_empty_value_is_not_an_anonymous_bind(
    ldap_server: LdapServer, entry: tuple[str, SecretValue]
) -> None:
    dn, _old = entry
    with pytest.raises(ConnectorError, match="anonymous"):
        connector(ldap_server, dn).verify(SecretValue(""))


def test_verify_unknown_entry_is_false(ldap_server: LdapServer) -> None:
    c = connector(ldap_server, ldap_server.user_dn("nobody-here"))
    assert c.verify(SecretValue("whatever")) is False


def test_unreachable_port_is_connector_error(entry: tuple[str, SecretValue]) -> None:
    dn, old = entry
    new = SecretValue(new_password())
    c = LdapConnector(
        ConnectorSettings(
            credential="ldap-unreachable",
            target=f"ldap://127.0.0.1:{free_port()}",
            options={"dn": dn, "timeout": "2"},
        )
    )
    with pytest.raises(ConnectorError, match="cannot reach") as info:
        c.verify(old)
    assert old.reveal() not in str(info.value)
    with pytest.raises(ConnectorError) as info:
        c.set(old, new)
    assert old.reveal() not in str(info.value)
    assert new.reveal() not in str(info.value)
    with pytest.raises(ConnectorError):
        c.verify_rejected(old)


def test_missing_settings() -> None:
    c = LdapConnector(ConnectorSettings(credential="x", target="ldap://127.0.0.1:1"))
    with pytest.raises(ConnectorError, match="dn"):
        c.verify(SecretValue("v"))
    c = LdapConnector(ConnectorSettings(credential="x", options={"dn": "uid=a"}))
    with pytest.raises(ConnectorError, match="URL"):
        c.verify(SecretValue("v"))


def test_values_never_reach_the_server_log(
    ldap_server: LdapServer, entry: tuple[str, SecretValue], tmp_path: Path
) -> None:
    dn, old = entry
    c = connector(ldap_server, dn)
    self_new = SecretValue(new_password())
    c.set(old, self_new)
    pw_file = ldap_server.write_admin_password_file(tmp_path)
    admin = connector(
        ldap_server,
        dn,
        options={"admin_bind_dn": ldap_server.admin_dn},
        site={"admin_password_file": str(pw_file)},
    )
    admin_new = SecretValue(new_password())
    admin.set(None, admin_new)
    assert not admin.verify(self_new)
    log = ldap_server.log_text()
    assert "EXT oid=1.3.6.1.4.1.4203.1.11.1" in log  # the operations are logged
    for value in (old, self_new, admin_new):
        assert value.reveal() not in log
