"""The connector contract (glasskey.core.connectors.testing) against real targets.

Every built-in connector that changes a live target — postgres against the
throwaway PostgreSQL cluster, ldap against the throwaway slapd (both from
tests/servers.py), command against a small script keeping its password in a
file — passes the same checks a site's own connector is asked to pass. Each
(connector, check) pair is its own test, so a failure names both.

The last tests run the contract against in-memory connectors that break one
promise each: the suite must be able to fail.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ldap3
import psycopg
import pytest
from glasskey.core.connectors.base import Connector, ConnectorSettings
from glasskey.core.connectors.registry import make
from glasskey.core.connectors.testing import (
    CHECKS,
    ConnectorContract,
    ContractViolation,
    LiveAccount,
    check_connector,
    closed_port,
    silent_listener,
)
from glasskey.core.errors import ConnectorError
from glasskey.core.secret import SecretValue
from servers import LdapServer, PostgresServer

_n = itertools.count()

# -- postgres -----------------------------------------------------------------------------------


def _pg_can_login(server: PostgresServer, role: str, value: SecretValue) -> bool:
    """A login with psycopg, not through the connector."""
    try:
        with psycopg.connect(server.role_conninfo(role), password=value.reveal()):
            return True
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc), "unexpected failure kind"
        return False


def postgres_contract(server: PostgresServer, silent_port: int) -> ConnectorContract:
    def account(initial: SecretValue) -> LiveAccount:
        role = f"gk_contract_{next(_n)}"
        server.create_role(role, initial.reveal())
        connector = make("postgres", ConnectorSettings(
            credential=f"pg-{role}", target=server.role_conninfo(role)))
        return LiveAccount(connector, accepts=lambda v: _pg_can_login(server, role, v))

    def unreachable() -> Connector:
        return make("postgres", ConnectorSettings(
            credential="pg-unreachable",
            target=f"host=127.0.0.1 port={closed_port()} dbname=postgres user=nobody",
            options={"timeout": "5"}))

    def hung(timeout: float) -> Connector:
        return make("postgres", ConnectorSettings(
            credential="pg-hung",
            target=f"host=127.0.0.1 port={silent_port} dbname=postgres user=nobody",
            options={"timeout": f"{timeout:g}"}))

    return ConnectorContract(account, unreachable=unreachable, hung=hung)


# -- ldap ---------------------------------------------------------------------------------------


def _ldap_can_bind(server: LdapServer, dn: str, value: SecretValue) -> bool:
    """A bind with ldap3, not through the connector."""
    conn = ldap3.Connection(ldap3.Server(server.url), user=dn, password=value.reveal())
    try:
        ok = bool(conn.bind())
        assert ok or conn.result["result"] == 49, "unexpected failure kind"
        return ok
    finally:
        conn.unbind()


def ldap_contract(server: LdapServer, silent_port: int) -> ConnectorContract:
    def account(initial: SecretValue) -> LiveAccount:
        dn = server.add_user(f"contract{next(_n)}", initial.reveal())
        connector = make("ldap", ConnectorSettings(
            credential="ldap-contract", target=server.url, options={"dn": dn}))
        return LiveAccount(connector, accepts=lambda v: _ldap_can_bind(server, dn, v))

    def unreachable() -> Connector:
        return make("ldap", ConnectorSettings(
            credential="ldap-unreachable", target=f"ldap://127.0.0.1:{closed_port()}",
            options={"dn": server.user_dn("nobody"), "timeout": "5"}))

    def hung(timeout: float) -> Connector:
        return make("ldap", ConnectorSettings(
            credential="ldap-hung", target=f"ldap://127.0.0.1:{silent_port}",
            options={"dn": server.user_dn("nobody"), "timeout": f"{timeout:g}"}))

    return ConnectorContract(account, unreachable=unreachable, hung=hung)


# -- command ------------------------------------------------------------------------------------

#: A target system in a file: set needs the right current value, or succeeds
#: when the new value is already there (idempotent, like a real target).
FILE_TARGET = """
req = json.load(sys.stdin)
have = open(STATE).read()
if req["action"] == "set":
    if have == req["value"]:
        sys.exit(0)
    if have != req["current"]:
        print("current value does not match", file=sys.stderr)
        sys.exit(1)
    open(STATE, "w").write(req["value"])
    sys.exit(0)
sys.exit(0 if have == req["value"] else 1)
"""


def _script(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "target.py"
    path.write_text(f"#!{sys.executable}\nimport json, sys, time\n"
                    f"STATE = {str(directory / 'state')!r}\n" + body)
    path.chmod(0o755)
    return path


def command_contract(base: Path) -> ConnectorContract:
    def account(initial: SecretValue) -> LiveAccount:
        directory = base / f"account-{next(_n)}"
        script = _script(directory, FILE_TARGET)
        (directory / "state").write_text(initial.reveal())
        connector = make("command", ConnectorSettings(
            credential="cmd-contract", target=str(script)))
        return LiveAccount(connector,
                           accepts=lambda v: (directory / "state").read_text() == v.reveal())

    def unreachable() -> Connector:
        script = _script(base / f"down-{next(_n)}",
                         "print('no route to host', file=sys.stderr)\nsys.exit(3)\n")
        return make("command", ConnectorSettings(credential="cmd-down", target=str(script)))

    def hung(timeout: float) -> Connector:
        script = _script(base / f"hung-{next(_n)}", "time.sleep(120)\n")
        return make("command", ConnectorSettings(
            credential="cmd-hung", target=str(script), options={"timeout": f"{timeout:g}"}))

    return ConnectorContract(account, unreachable=unreachable, hung=hung)


# -- the suite ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    with silent_listener() as port:
        yield port


@pytest.fixture(params=["postgres", "ldap", "command"])
def contract(request: pytest.FixtureRequest, silent_port: int,
             tmp_path_factory: pytest.TempPathFactory) -> ConnectorContract:
    kind = request.param
    if kind == "postgres":
        return postgres_contract(request.getfixturevalue("postgres_server"), silent_port)
    if kind == "ldap":
        return ldap_contract(request.getfixturevalue("ldap_server"), silent_port)
    return command_contract(tmp_path_factory.mktemp("command-contract"))


@pytest.mark.parametrize("check", CHECKS)
def test_builtin_connector_meets_the_contract(contract: ConnectorContract, check: str) -> None:
    contract.run(check)


def test_unknown_check_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no contract check"):
        command_contract(tmp_path).run("teleport")


# -- the contract can fail ----------------------------------------------------------------------


class MemoryTarget:
    """One account's value, and switches that make a connector break a promise."""

    def __init__(self, value: SecretValue) -> None:
        self.value = value.reveal()


#: The in-memory targets, by the connector's target name.
MEMORY: dict[str, MemoryTarget] = {}


class MemoryConnector(Connector):
    """A well-behaved in-memory connector; subclasses break one rule each."""

    name = "memory"
    delay = 0.0

    def _target(self) -> MemoryTarget:
        time.sleep(self.delay)
        target = MEMORY.get(self.settings.target or "")
        if target is None:
            raise ConnectorError(f"credential {self.settings.credential!r}: target down")
        return target

    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        target = self._target()
        if target.value == new.reveal():
            return
        if current is None or target.value != current.reveal():
            raise ConnectorError(f"credential {self.settings.credential!r}: refused")
        target.value = new.reveal()

    def verify(self, value: SecretValue) -> bool:
        return self._target().value == value.reveal()


class ForgetfulConnector(MemoryConnector):
    """set reports success and changes nothing."""

    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        self._target()


class NotIdempotentConnector(MemoryConnector):
    """A retried set fails once the first went through."""

    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        target = self._target()
        if current is None or target.value != current.reveal():
            raise ConnectorError(f"credential {self.settings.credential!r}: refused")
        target.value = new.reveal()


class DownMeansRejectedConnector(MemoryConnector):
    """An unreachable target reads as "rejected"."""

    def verify(self, value: SecretValue) -> bool:
        try:
            return super().verify(value)
        except ConnectorError:
            return False


class SlowConnector(MemoryConnector):
    """Ignores its timeout option."""

    delay = 1.0


def memory_contract(cls: type[MemoryConnector], timeout: float = 1.0,
                    slack: float = 5.0) -> ConnectorContract:
    def account(initial: SecretValue) -> LiveAccount:
        key = f"account-{next(_n)}"
        MEMORY[key] = MemoryTarget(initial)
        return LiveAccount(cls(ConnectorSettings(credential="mem", target=key)))

    def hung(timeout: float) -> Connector:
        # No target to hang on: a connector that ignores its timeout (SlowConnector)
        # is still too slow; a well-behaved one fails at once.
        return cls(ConnectorSettings(credential="mem", target="nowhere",
                                     options={"timeout": f"{timeout:g}"}))

    def down() -> Connector:
        return cls(ConnectorSettings(credential="mem", target="nowhere"))

    return ConnectorContract(account, unreachable=down, hung=hung, timeout=timeout,
                             slack=slack)


BROKEN: list[tuple[type[MemoryConnector], str, str]] = [
    (ForgetfulConnector, "rotation", "after set, the new value"),
    (NotIdempotentConnector, "retry_after_lost_reply", "retried set"),
    (DownMeansRejectedConnector, "unreachable", "instead of raising ConnectorError"),
    (SlowConnector, "deadline", "still running"),
]


@pytest.mark.parametrize(("cls", "check", "why"), BROKEN,
                         ids=[b[0].__name__ for b in BROKEN])
def test_a_connector_breaking_a_promise_fails_the_contract(
        cls: type[MemoryConnector], check: str, why: str) -> None:
    contract = memory_contract(cls, timeout=0.05, slack=0.3)
    with pytest.raises(ContractViolation, match=why):
        contract.run(check)


def test_memory_connector_without_timeout_checks_fails_only_the_deadline() -> None:
    """The well-behaved in-memory connector passes every check except that it
    accepts any timeout option (the base class checks none)."""
    contract = memory_contract(MemoryConnector, timeout=0.05, slack=0.5)
    for check in CHECKS:
        if check == "deadline":
            with pytest.raises(ContractViolation, match="accepts the timeout 'inf'"):
                contract.run(check)
        else:
            contract.run(check)


def test_check_connector_runs_them_all_and_stops_at_the_first_failure() -> None:
    calls: list[str] = []

    def account(initial: SecretValue) -> LiveAccount:
        calls.append("account")
        return memory_contract(ForgetfulConnector).account(initial)

    down: Callable[[], Connector] = memory_contract(ForgetfulConnector).unreachable
    with pytest.raises(ContractViolation):
        check_connector(account, unreachable=down,
                        hung=memory_contract(ForgetfulConnector).hung)
    assert calls  # the checks ran against fresh accounts before the failure
