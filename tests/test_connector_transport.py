"""No value to whoever answers, and one deadline per operation (issue 15, "Connectors").

Real parts where the finding used them:

* a fake PostgreSQL (an asyncio TCP server speaking just enough of protocol
  v3) that asks for a cleartext (``R`` code 3) or md5 (code 5) password and
  records every byte it receives: no value may ever reach it, and the rotation
  is recorded as failed, not committed;
* a real PostgreSQL with the role locked by another session's open
  transaction: check-in fails cleanly within the deadline;
* the real slapd: plain ``ldap://`` is refused unless the site policy allows it;
* a TCP server that trickles one byte at a time: an LDAP verify stops at its
  deadline.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from checkout_world import World, decrypt_version, make_world
from glasskey.core.connectors.base import ConnectorSettings
from glasskey.core.connectors.ldap import LdapConnector
from glasskey.core.connectors.postgres import PostgresConnector
from glasskey.core.connectors.registry import make
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import ConnectorError, UsageError
from glasskey.core.secret import SecretValue
from servers import LdapServer, PostgresServer, free_port, new_password


def site_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str = "") -> None:
    path = tmp_path / "site-policy.toml"
    path.write_text(text)
    monkeypatch.setenv("GLASSKEY_SITE_CONFIG", str(path))


# ============================================================== a fake PostgreSQL
class FakePostgres:
    """Asks every client for a cleartext (3) or md5 (5) password, accepts any
    answer, and answers any query with success. Records every byte received."""

    def __init__(self, auth_code: int) -> None:
        self.auth_code = auth_code
        self.port = free_port()
        self.received = bytearray()
        self.password_messages = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakePostgres:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _read(self, reader: asyncio.StreamReader, n: int) -> bytes:
        data = await reader.readexactly(n)
        self.received += data
        return data

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:  # SSLRequest / GSSENCRequest, then the StartupMessage
                (length,) = struct.unpack("!I", await self._read(reader, 4))
                body = await self._read(reader, length - 4)
                (code,) = struct.unpack("!I", body[:4])
                if code in (80877103, 80877104):
                    writer.write(b"N")
                    await writer.drain()
                    continue
                break
            if self.auth_code == 5:
                writer.write(b"R" + struct.pack("!II", 12, 5) + b"salt")
            else:
                writer.write(b"R" + struct.pack("!II", 8, 3))
            await writer.drain()
            while True:
                kind = await self._read(reader, 1)
                (length,) = struct.unpack("!I", await self._read(reader, 4))
                await self._read(reader, length - 4)
                if kind == b"p":
                    self.password_messages += 1
                    writer.write(b"R" + struct.pack("!II", 8, 0))
                    for key, value in ((b"server_version", b"15.0"),
                                       (b"client_encoding", b"UTF8"),
                                       (b"standard_conforming_strings", b"on"),
                                       (b"DateStyle", b"ISO, MDY"),
                                       (b"integer_datetimes", b"on")):
                        payload = key + b"\0" + value + b"\0"
                        writer.write(b"S" + struct.pack("!I", 4 + len(payload)) + payload)
                    writer.write(b"K" + struct.pack("!III", 12, 1234, 5678))
                    writer.write(b"Z" + struct.pack("!I", 5) + b"I")
                elif kind == b"Q":
                    tag = b"ALTER ROLE\0"
                    writer.write(b"C" + struct.pack("!I", 4 + len(tag)) + tag)
                    writer.write(b"Z" + struct.pack("!I", 5) + b"I")
                elif kind in (b"P", b"B", b"D", b"E", b"S"):
                    reply = {b"P": b"1", b"B": b"2", b"D": b"n"}.get(kind)
                    if reply:
                        writer.write(reply + struct.pack("!I", 4))
                    elif kind == b"E":
                        tag = b"ALTER ROLE\0"
                        writer.write(b"C" + struct.pack("!I", 4 + len(tag)) + tag)
                    else:
                        writer.write(b"Z" + struct.pack("!I", 5) + b"I")
                elif kind == b"X":
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def add(w: World, name: str, connector: str, value: str, target: str,
        options: dict[str, str] | None = None) -> None:
    w.vault.add_credential(w.s("bob"), CredentialSpec(
        name, connector=connector, secret=SecretValue(value), target=target,
        options=options or {}))


@pytest.mark.parametrize("auth_code", [3, 5], ids=["cleartext", "md5"])
def test_a_fake_postgres_asking_for_a_password_gets_nothing(tmp_path: Path,
                                                            auth_code: int) -> None:
    w = make_world(tmp_path)
    old = "CANARY-old-" + new_password()
    with FakePostgres(auth_code) as fake:
        add(w, "pg-fake", "postgres", old,
            f"host=127.0.0.1 port={fake.port} dbname=postgres user=breakglass")
        req = w.checkout("pg-fake")
        assert w.vault.reveal(w.s("alice"), req).reveal() == old
        result = w.vault.checkin(w.s("alice"), req)
    new = decrypt_version(w, "pg-fake", "pending")
    assert new
    assert fake.connections >= 1, "the test never reached the fake server"
    assert fake.password_messages == 0, "a password message reached an impostor"
    for value in (old, new):
        assert value.encode() not in fake.received
    assert result.outcome == "failed", result
    assert "scram-sha-256" in result.message
    assert w.vault.credential("pg-fake").status == "rotation-failed"


def test_off_loopback_targets_need_verify_full_unless_the_site_allows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site_policy(tmp_path, monkeypatch)

    def pg(target: str) -> PostgresConnector:
        c = make("postgres", ConnectorSettings(credential="pg", target=target,
                                               options={"timeout": "3"}))
        assert isinstance(c, PostgresConnector)
        return c

    remote = "host=192.0.2.7 port=5432 dbname=postgres user=breakglass"
    started = time.monotonic()
    with pytest.raises(ConnectorError, match="not on loopback"):
        pg(remote + " sslmode=require").verify(SecretValue("value-1234"))
    assert time.monotonic() - started < 1  # refused before any connection
    # verify-full passes the policy (and then cannot reach the TEST-NET address)
    with pytest.raises(ConnectorError) as info:
        pg(remote + " sslmode=verify-full connect_timeout=2").verify(SecretValue("value-1234"))
    assert "not on loopback" not in str(info.value)
    # channel binding wherever TLS is required
    params = pg(remote + " sslmode=verify-full")._transport(
        pg(remote)._params() | {"sslmode": "verify-full"}, "scram-sha-256")
    assert params["channel_binding"] == "require"
    assert params["require_auth"] == "scram-sha-256"
    site_policy(tmp_path, monkeypatch, "[postgres]\nallow_unverified_tls = true\n")
    with pytest.raises(ConnectorError) as info:
        pg(remote + " connect_timeout=2").verify(SecretValue("value-1234"))
    assert "not on loopback" not in str(info.value)


# ======================================================= a real lock on the role
def test_checkin_blocked_by_a_lock_on_the_role_fails_within_the_deadline(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    w = make_world(tmp_path)
    role, initial = "gk_locked_role", new_password()
    postgres_server.create_role(role, initial)
    add(w, "pg-locked", "postgres", initial, postgres_server.role_conninfo(role),
        {"timeout": "4"})
    req = w.checkout("pg-locked")
    w.vault.reveal(w.s("alice"), req)
    blocker = psycopg.connect(postgres_server.admin_conninfo)
    try:
        blocker.execute(f"ALTER ROLE {role} VALID UNTIL 'infinity'")  # open transaction
        outcome: dict[str, object] = {}

        def checkin() -> None:
            started = time.monotonic()
            try:
                outcome["result"] = w.vault.checkin(w.s("alice"), req)
            except BaseException as exc:  # reported below
                outcome["error"] = exc
            outcome["took"] = time.monotonic() - started

        thread = threading.Thread(target=checkin, daemon=True)
        thread.start()
        thread.join(20)
        hung = thread.is_alive()
    finally:
        blocker.rollback()
        blocker.close()
    thread.join(30)
    assert not hung, "check-in still blocked on the role's lock after 20 s"
    assert "error" not in outcome, outcome
    result = outcome["result"]
    took = outcome["took"]
    assert isinstance(took, float) and took < 4 + 2.5, took
    assert getattr(result, "outcome", None) == "failed", result
    assert "another session holds a lock" in getattr(result, "message", "")
    assert w.vault.credential("pg-locked").status == "rotation-failed"


# ================================================================= LDAP transports
def ldap(target: str, dn: str, **options: str) -> LdapConnector:
    c = make("ldap", ConnectorSettings(credential="ldap-cred", target=target,
                                       options={"dn": dn, **options}))
    assert isinstance(c, LdapConnector)
    return c


def test_plain_ldap_is_refused_unless_the_site_allows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ldap_server: LdapServer) -> None:
    uid = "transport-user"
    password = new_password()
    dn = ldap_server.add_user(uid, password)
    site_policy(tmp_path, monkeypatch)  # the strictest policy: no file content
    with pytest.raises(ConnectorError, match="plain LDAP"):
        ldap(ldap_server.url, dn).verify(SecretValue(password))
    assert f"BIND dn=\"{dn}\"" not in ldap_server.log_text()
    # the vault's own glasskey.toml has no say
    site_policy(tmp_path, monkeypatch, "[ldap]\nallow_plaintext = true\n")
    assert ldap(ldap_server.url, dn).verify(SecretValue(password)) is True


class Trickle:
    """Accepts connections and sends the start of a 1 MB LDAP message, then one
    byte every 0.3 s: every receive returns in time, the answer never ends."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.sendall(b"\x30\x83\x10\x00\x00")
            while not self.stop.wait(0.3):
                conn.sendall(b"\x04")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def trickle() -> Iterator[Trickle]:
    server = Trickle()
    try:
        yield server
    finally:
        server.close()


def test_a_trickling_ldap_server_cannot_outlast_the_deadline(trickle: Trickle) -> None:
    c = ldap(f"ldap://127.0.0.1:{trickle.port}", "uid=x,dc=example,dc=org", timeout="2")
    outcome: dict[str, object] = {}

    def verify() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = c.verify(SecretValue("value-1234"))
        except ConnectorError as exc:
            outcome["error"] = str(exc)
        outcome["took"] = time.monotonic() - started

    thread = threading.Thread(target=verify, daemon=True)
    thread.start()
    thread.join(15)
    alive = thread.is_alive()
    trickle.close()
    thread.join(10)
    assert not alive, "the verify was still running 15 s into a 2 s deadline"
    assert "deadline" in str(outcome.get("error")), outcome
    took = outcome["took"]
    assert isinstance(took, float) and took < 4, took


def test_unsafe_transports_are_refused_when_the_credential_is_added(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world(tmp_path / "w")
    site_policy(tmp_path, monkeypatch)
    with pytest.raises(UsageError, match="not on loopback"):
        add(w, "pg-remote", "postgres", "v-1234567",
            "host=db1.example.org dbname=postgres user=breakglass sslmode=require")
    with pytest.raises(UsageError, match="plain LDAP"):
        add(w, "ldap-plain", "ldap", "v-1234567", "ldap://ldap.example.org",
            {"dn": "uid=x,dc=example,dc=org"})
    add(w, "pg-ok", "postgres", "v-1234567",
        "host=db1.example.org dbname=postgres user=breakglass sslmode=verify-full")
    add(w, "ldap-ok", "ldap", "v-1234567", "ldaps://ldap.example.org",
        {"dn": "uid=x,dc=example,dc=org"})
    add(w, "ldap-tls", "ldap", "v-1234567", "ldap://ldap.example.org",
        {"dn": "uid=x,dc=example,dc=org", "start_tls": "true"})
