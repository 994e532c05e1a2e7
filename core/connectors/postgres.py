"""PostgreSQL role passwords.

``settings.target`` is a libpq conninfo naming the role whose password rotates,
for example ``host=db1.example.org port=5432 dbname=postgres user=breakglass``
(no password in it: the vault supplies the values).

Two ways to change the password:

* **self-rotation** (no ``options["admin_service"]``): log in *as the role* with
  the ``current`` value and ``ALTER ROLE <role> PASSWORD ...`` — a role may
  always change its own password;
* **admin** (``options["admin_service"] = NAME``): connect with ``service=NAME``,
  a pg_service entry of the site whose password sits in the site's pgpass, and
  alter the role named in the target. The service file and pgpass come from
  ``PGSERVICEFILE``/``PGPASSFILE`` or from the site keys ``service_file`` and
  ``passfile``. Use this when the current value may be unknown or stale.

The new value never reaches the server as plaintext: libpq's
``PQencryptPasswordConn`` computes the SCRAM-SHA-256 verifier on this side and
only the verifier is sent, so ``log_statement = all`` or a failing statement in
the server log shows a verifier, never the password.

``verify`` is a real login as the role over the target's connection (give the
target a TCP ``host``). A refused password is ``False``; an unreachable server,
or a login that never asked for a password (``trust``/``peer`` in pg_hba.conf,
which would make every value look valid) is ``ConnectorError``. Telling a
refusal apart relies on the server's message, so the server's ``lc_messages``
must be English (the PostgreSQL default); libpq reports no SQLSTATE for a
failed connection.

No value ever appears in an exception or log line of this module.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.connectors.base import Connector
from core.errors import ConnectorError
from core.secret import SecretValue

#: Seconds libpq waits for a connection (unless the target sets connect_timeout).
DEFAULT_CONNECT_TIMEOUT = 5
_ALGORITHM = b"scram-sha-256"
_AUTH_FAILED = ("password authentication failed", "28P01")
_MAX_REASON = 300

# libpq reads PGSERVICEFILE from the environment when it has no ``servicefile``
# parameter; changing the environment is serialised with this lock.
_ENV_LOCK = threading.Lock()


def _libpq_has_servicefile() -> bool:
    return any(opt.keyword == b"servicefile" for opt in pq.Conninfo.get_defaults())


def _reason(exc: BaseException, *values: SecretValue | None) -> str:
    """libpq's message on one line, shortened, with any value scrubbed out
    (libpq never puts a password in a message; this is belt and braces)."""
    text = " ".join(str(exc).split())
    for value in values:
        if value is not None and len(value):
            text = text.replace(value.reveal(), "<secret>")
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    return text


def _is_auth_failure(exc: psycopg.OperationalError) -> bool:
    if exc.sqlstate == "28P01":
        return True
    return any(marker in str(exc) for marker in _AUTH_FAILED)


class PostgresConnector(Connector):
    """Rotates a PostgreSQL role's password (self-rotation or through an admin service)."""

    name = "postgres"

    # ----------------------------------------------------------------- interface

    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        if not len(new):
            raise ConnectorError(f"credential {self._cred!r}: refusing an empty password")
        if self.settings.options.get("admin_service"):
            self._set_as_admin(new)
        else:
            self._set_as_self(current, new)

    def verify(self, value: SecretValue) -> bool:
        if not len(value):
            raise ConnectorError(f"credential {self._cred!r}: an empty value cannot be verified")
        conn = self._login(value)
        if conn is None:
            return False
        with conn:
            self._require_password_auth(conn)
        return True

    def describe(self) -> str:
        try:
            params = self._params()
        except ConnectorError:
            return f"postgres:{self.settings.target or '-'} (invalid target)"
        where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
        admin = self.settings.options.get("admin_service")
        how = f" via service {admin}" if admin else ""
        return f"postgres:role {params['user']}@{where}{how}"

    @property
    def role(self) -> str:
        """The role whose password rotates (``user`` in the target)."""
        return str(self._params()["user"])

    # ----------------------------------------------------------------- internals

    @property
    def _cred(self) -> str:
        return self.settings.credential

    def _params(self) -> dict[str, Any]:
        """The target conninfo as a dict, checked: a role, no password."""
        target = self.settings.target
        if not target:
            raise ConnectorError(
                f"credential {self._cred!r}: the postgres connector needs a target "
                "conninfo naming the role (user=...)"
            )
        try:
            params: dict[str, Any] = dict(conninfo_to_dict(target))
        except psycopg.ProgrammingError as exc:
            raise ConnectorError(
                f"credential {self._cred!r}: the postgres target is not a valid libpq "
                f"conninfo ({_reason(exc)})"
            ) from None
        if "password" in params:
            raise ConnectorError(
                f"credential {self._cred!r}: the postgres target must not contain a "
                "password; the vault supplies it"
            )
        if not params.get("user"):
            raise ConnectorError(
                f"credential {self._cred!r}: the postgres target names no role (user=...)"
            )
        params.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        return params

    def _login(self, value: SecretValue) -> psycopg.Connection[Any] | None:
        """Log in as the role with ``value``: the connection, or None when the
        server refuses the password. ConnectorError when it cannot tell."""
        conninfo = make_conninfo("", **self._params())
        reason: str | None = None
        try:
            # The value goes to libpq as a keyword (never into a conninfo string
            # that could end up in a message), and no pgpass entry can stand in.
            return psycopg.connect(
                conninfo, password=value.reveal(), passfile=os.devnull, autocommit=True
            )
        except psycopg.OperationalError as exc:
            if _is_auth_failure(exc):
                return None
            reason = _reason(exc, value)
        # Raised outside the except block: psycopg's exception keeps the failed
        # connection, password included, and must not ride along as __context__.
        raise ConnectorError(
            f"credential {self._cred!r}: cannot reach PostgreSQL for role {self.role!r}: {reason}"
        )

    def _require_password_auth(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.pgconn.used_password:
            raise ConnectorError(
                f"credential {self._cred!r}: PostgreSQL let role {self.role!r} in without "
                "asking for a password (trust/peer in pg_hba.conf), so a login proves "
                "nothing; give the target a host/port that requires scram-sha-256"
            )

    def _alter(self, conn: psycopg.Connection[Any], new: SecretValue) -> None:
        role = self.role
        verifier = conn.pgconn.encrypt_password(new.encode(), role.encode(), _ALGORITHM)
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(verifier.decode("ascii"))
            )
        )

    def _set_as_self(self, current: SecretValue | None, new: SecretValue) -> None:
        if current is None:
            raise ConnectorError(
                f"credential {self._cred!r}: no current value to log in as role {self.role!r} "
                "and no admin_service configured"
            )
        conn = self._login(current)
        if conn is None:
            # The current value is refused: maybe an earlier set went through and
            # its reply was lost. Then the new value already logs in: done.
            if self.verify(new):
                return
            raise ConnectorError(
                f"credential {self._cred!r}: PostgreSQL refuses both the current and the new "
                f"value for role {self.role!r}; configure admin_service to reset it"
            )
        reason: str | None = None
        with conn:
            self._require_password_auth(conn)
            try:
                self._alter(conn, new)
            except psycopg.Error as exc:
                reason = _reason(exc, current, new)
        if reason is not None:
            raise ConnectorError(
                f"credential {self._cred!r}: PostgreSQL refused the password change for "
                f"role {self.role!r}: {reason}"
            )

    def _set_as_admin(self, new: SecretValue) -> None:
        service = self.settings.options["admin_service"]
        role = self.role
        reason: str | None = None
        try:
            with self._admin_connection(service) as conn:
                self._alter(conn, new)
        except psycopg.Error as exc:
            reason = _reason(exc, new)
        if reason is not None:
            raise ConnectorError(
                f"credential {self._cred!r}: changing the password of role {role!r} "
                f"through service {service!r} failed: {reason}"
            )

    @contextmanager
    def _admin_connection(self, service: str) -> Iterator[psycopg.Connection[Any]]:
        """``service=NAME`` with the site's service file and pgpass."""
        site: Mapping[str, str] = self.settings.site
        params: dict[str, Any] = {"service": service}
        if site.get("passfile"):
            params["passfile"] = site["passfile"]
        service_file = site.get("service_file")
        if service_file and _libpq_has_servicefile():
            params["servicefile"] = service_file
            service_file = None
        conninfo = make_conninfo("", **params)
        if service_file:
            conn = _connect_with_service_file(conninfo, service_file)
        else:
            conn = psycopg.connect(conninfo, autocommit=True)
        with conn:
            yield conn


def _connect_with_service_file(conninfo: str, service_file: str) -> psycopg.Connection[Any]:
    """Connect with ``PGSERVICEFILE`` set for the duration of the connect (libpq
    before the ``servicefile`` parameter reads only the environment)."""
    with _ENV_LOCK:
        saved = os.environ.get("PGSERVICEFILE")
        os.environ["PGSERVICEFILE"] = service_file
        try:
            return psycopg.connect(conninfo, autocommit=True)
        finally:
            if saved is None:
                os.environ.pop("PGSERVICEFILE", None)
            else:
                os.environ["PGSERVICEFILE"] = saved
