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

The new value is sent only as a verifier: libpq's ``PQencryptPasswordConn``
computes the SCRAM-SHA-256 verifier on this side, so ``log_statement = all`` or
a failing statement in the server log shows a verifier, never the password.

Logging in hands a value to *whoever answers*, so every login of the role
carries ``require_auth=scram-sha-256``: libpq (16 and later) then refuses a
server that asks for a cleartext (``password``) or ``md5`` password before
sending anything, and an impostor learns nothing it can replay. Where TLS is
required (``sslmode=require``/``verify-ca``/``verify-full``) it also carries
``channel_binding=require``, tying the SCRAM exchange to the TLS channel. The
admin connection carries ``require_auth=!password,!md5`` (it may use
certificates). A libpq without ``require_auth`` is refused outright: there is
no other way to stop it answering a cleartext request. A target off loopback
must say ``sslmode=verify-full`` (otherwise a man in the middle can record the
SCRAM exchange for an offline guess, or see the ``ALTER ROLE`` verifier),
unless the site policy sets ``[postgres] allow_unverified_tls = true``.

One wall-clock deadline (``options["timeout"]``, default 30 s) bounds each
operation: ``connect_timeout`` is what is left of it (libpq's minimum is 2 s),
and every statement runs
with ``lock_timeout`` and ``statement_timeout`` set to what is left, so an
``ALTER ROLE`` blocked behind another session's lock fails cleanly instead of
hanging the check-in.

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

import ipaddress
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from glasskey.core import config
from glasskey.core.connectors.base import scrub_fragments
from glasskey.core.connectors.deadline import DeadlineConnector
from glasskey.core.errors import ConnectorError
from glasskey.core.secret import SecretValue
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: Seconds libpq waits for a connection (unless the target sets connect_timeout).
DEFAULT_CONNECT_TIMEOUT = 5
#: Seconds one operation (set, verify) may take in all (``options["timeout"]``).
DEFAULT_TIMEOUT = 30.0
#: The only way a role's value may be sent at login.
ROLE_REQUIRE_AUTH = "scram-sha-256"
#: The admin service may use anything but a replayable password exchange.
ADMIN_REQUIRE_AUTH = "!password,!md5"
_TLS_MODES = ("require", "verify-ca", "verify-full")
_ALGORITHM = b"scram-sha-256"
_AUTH_FAILED = ("password authentication failed", "28P01")
_MAX_REASON = 300

# libpq reads PGSERVICEFILE from the environment when it has no ``servicefile``
# parameter; changing the environment is serialised with this lock.
_ENV_LOCK = threading.Lock()


def _libpq_has_servicefile() -> bool:
    return any(opt.keyword == b"servicefile" for opt in pq.Conninfo.get_defaults())


def _libpq_has_require_auth() -> bool:
    return any(opt.keyword == b"require_auth" for opt in pq.Conninfo.get_defaults())


def _is_loopback(host: str) -> bool:
    """A Unix socket directory, ``localhost`` or a loopback address."""
    if not host or host.startswith(("/", "@")) or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(exc: BaseException, *values: SecretValue | None) -> str:
    """libpq's (or the server's) message on one line, shortened, with every
    4-character fragment of a value scrubbed out: the server side of the text is
    not ours, and an impostor could echo what it was sent."""
    text = scrub_fragments(" ".join(str(exc).split()), values)
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    return text


def _deadline_reason(exc: psycopg.Error) -> str | None:
    """A plain sentence for a statement stopped by our own deadline."""
    if exc.sqlstate == "55P03":
        return ("it did not finish within the connector's deadline: another session holds "
                "a lock on the role (lock timeout)")
    if exc.sqlstate == "57014":
        return "it did not finish within the connector's deadline (statement timeout)"
    return None


def _is_auth_failure(exc: psycopg.OperationalError) -> bool:
    if exc.sqlstate == "28P01":
        return True
    return any(marker in str(exc) for marker in _AUTH_FAILED)


class PostgresConnector(DeadlineConnector):
    """Rotates a PostgreSQL role's password (self-rotation or through an admin service)."""

    name = "postgres"
    default_timeout = DEFAULT_TIMEOUT

    def _check_target(self) -> None:
        """The conninfo parses and the role's login would be protected."""
        self._transport(self._params(), ROLE_REQUIRE_AUTH)

    # ----------------------------------------------------------------- interface

    def _set(self, current: SecretValue | None, new: SecretValue) -> None:
        if self.settings.options.get("admin_service"):
            self._set_as_admin(new)
        else:
            self._set_as_self(current, new)

    def _verify(self, value: SecretValue) -> bool:
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

    def _left(self) -> float:
        """Seconds left before the deadline; ConnectorError once it has passed."""
        left = (self._deadline or time.monotonic() + DEFAULT_TIMEOUT) - time.monotonic()
        if left <= 0.05:
            raise ConnectorError(
                f"credential {self._cred!r}: PostgreSQL did not finish within the "
                "connector's deadline (option timeout)"
            )
        return left

    def _limits(self, params: dict[str, Any]) -> dict[str, Any]:
        """``connect_timeout``, ``lock_timeout`` and ``statement_timeout`` from
        what is left of the deadline (libpq's connect_timeout is whole seconds,
        at least 2)."""
        left = self._left()
        limited = dict(params)
        given = limited.get("connect_timeout")
        try:
            wanted = int(given) if given is not None else DEFAULT_CONNECT_TIMEOUT
        except ValueError:
            wanted = DEFAULT_CONNECT_TIMEOUT
        limited["connect_timeout"] = max(2, min(wanted, math.ceil(left)))
        ms = max(1, int(left * 1000))
        extra = f"-c lock_timeout={ms} -c statement_timeout={ms}"
        limited["options"] = f"{limited['options']} {extra}" if limited.get("options") \
            else extra
        return limited

    def _transport(self, params: dict[str, Any], require_auth: str) -> dict[str, Any]:
        """Add the authentication and TLS requirements, or refuse the target."""
        if not _libpq_has_require_auth():
            raise ConnectorError(
                f"credential {self._cred!r}: this libpq ({pq.version()}) cannot refuse a "
                "server that asks for a cleartext password (require_auth needs libpq 16 or "
                "later); install psycopg[binary] or a newer libpq"
            )
        out = dict(params)
        out["require_auth"] = require_auth
        sslmode = str(out.get("sslmode", "prefer"))
        if sslmode in _TLS_MODES and require_auth == ROLE_REQUIRE_AUTH:
            out["channel_binding"] = "require"
        hosts = [h for h in str(out.get("host", "")).split(",")]
        hosts += [h for h in str(out.get("hostaddr", "")).split(",") if h]
        remote = [h for h in hosts if not _is_loopback(h.strip())]
        if remote and sslmode != "verify-full" and \
                not config.site_policy().postgres_allow_unverified_tls:
            raise ConnectorError(
                f"credential {self._cred!r}: the postgres target {remote[0]!r} is not on "
                "loopback and does not say sslmode=verify-full; a value must not go to a "
                "server whose identity is unchecked (the site policy may allow it with "
                "[postgres] allow_unverified_tls = true)"
            )
        return out

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
        params = self._limits(self._transport(self._params(), ROLE_REQUIRE_AUTH))
        conninfo = make_conninfo("", **params)
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
        # What is left of the deadline now, not at connect time; the lock wait
        # gives up a little earlier, so a blocked ALTER ROLE says why.
        left_ms = max(2, int(self._left() * 1000))
        conn.execute(sql.SQL("SELECT set_config('lock_timeout', {}, false), "
                             "set_config('statement_timeout', {}, false)").format(
            sql.Literal(f"{left_ms * 9 // 10}ms"), sql.Literal(f"{left_ms}ms")))
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
            if self._verify(new):
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
                reason = _deadline_reason(exc) or _reason(exc, current, new)
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
            reason = _deadline_reason(exc) or _reason(exc, new)
        if reason is not None:
            raise ConnectorError(
                f"credential {self._cred!r}: changing the password of role {role!r} "
                f"through service {service!r} failed: {reason}"
            )

    @contextmanager
    def _admin_connection(self, service: str) -> Iterator[psycopg.Connection[Any]]:
        """``service=NAME`` with the site's service file and pgpass."""
        site: Mapping[str, str] = self.settings.site
        params: dict[str, Any] = self._limits(
            self._transport({"service": service}, ADMIN_REQUIRE_AUTH))
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
