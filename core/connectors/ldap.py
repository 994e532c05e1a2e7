"""LDAP entry passwords (``userPassword``).

``settings.target`` is the server's LDAP URL (``ldap://host:389``,
``ldaps://host:636``); ``options["dn"]`` is the entry whose password rotates.

Two ways to change the password:

* **self-rotation** (no ``options["admin_bind_dn"]``): bind as the entry with the
  ``current`` value and change the password with the RFC 3062 Password Modify
  extended operation, giving the old and the new value; the server hashes the
  new value with its own scheme (OpenLDAP: ``password-hash``, ppolicy applies);
* **admin**: bind as ``options["admin_bind_dn"]`` with a password the *site*
  keeps in the file named by the site key ``admin_password_file`` (never in the
  vault), and set the entry's new password with the same operation.

``options["password_change"] = "replace"`` uses a plain modify/replace of
``userPassword`` instead, for servers without RFC 3062 that hash on their own.
``options["start_tls"] = "true"`` runs StartTLS before binding; the site key
``ca_file`` names the CA bundle for ``ldaps://`` and StartTLS.

A simple bind sends the value as it is, to whoever answers: an ``ldap://``
target without ``start_tls`` is refused unless the site policy (outside the
vault) sets ``[ldap] allow_plaintext = true``. ``ldapi://`` (a local socket)
is allowed.

One wall-clock deadline (``options["timeout"]``, default 10 s) bounds each
operation (``set`` or ``verify``, every bind and answer in it). ldap3's own
timeouts apply to each receive, so a server that trickles one byte a second
would keep an operation alive forever; a watchdog shuts the socket down when
the deadline passes and the operation fails with ConnectorError.

``verify`` is a simple bind as the entry: success is ``True``,
``invalidCredentials`` (49) is ``False``, an unreachable server or any other
answer is ``ConnectorError``. An empty value is never bound with (a simple
bind with an empty password is an anonymous bind and would "succeed").

``set`` is idempotent: when the current value is refused but the new one binds,
an earlier call already did the work and its reply was lost.

No value ever appears in an exception or log line of this module.
"""

from __future__ import annotations

import math
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import ldap3
from glasskey.core import config
from glasskey.core.connectors.deadline import DeadlineConnector
from glasskey.core.errors import ConnectorError, UsageError
from glasskey.core.secret import SecretValue
from ldap3.core.exceptions import LDAPException

#: Seconds to wait for a TCP connection and for each answer (``options["timeout"]``).
DEFAULT_TIMEOUT = 10.0
_INVALID_CREDENTIALS = 49
_TRUE = {"1", "true", "yes", "on"}


def _describe_result(result: object) -> str:
    """Code and name of an LDAP result, without the server's free text."""
    if isinstance(result, dict):
        return f"{result.get('result')} {result.get('description')}"
    return "no result"


class _Watchdog:
    """Shuts ``conn``'s socket down once the deadline has passed, and again every
    0.1 s until stopped (the socket may be opened after the first try)."""

    def __init__(self, conn: ldap3.Connection, left: float) -> None:
        self.fired = False
        self._conn = conn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(left,), daemon=True,
                                        name="glasskey-ldap-deadline")
        self._thread.start()

    def _run(self, left: float) -> None:
        if self._stop.wait(left):
            return
        self.fired = True
        while not self._stop.is_set():
            sock = getattr(self._conn, "socket", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class LdapConnector(DeadlineConnector):
    """Rotates an LDAP entry's password by self-bind or an admin bind."""

    name = "ldap"
    default_timeout = DEFAULT_TIMEOUT
    empty_verify_note = " (it would be an anonymous bind)"

    @classmethod
    def _check_required(cls, target: str | None, options: Mapping[str, str]) -> None:
        if not options.get("dn"):
            raise UsageError("the ldap connector needs --dn (the entry whose password rotates)")
        if not target:
            raise UsageError("the ldap connector needs --target, the server's LDAP URL")

    def _check_target(self) -> None:
        self._check_transport(self.settings.target or "")

    # ----------------------------------------------------------------- interface

    def _set(self, current: SecretValue | None, new: SecretValue) -> None:
        dn = self._dn
        admin_dn = self.settings.options.get("admin_bind_dn")
        if admin_dn:
            with self._bound(admin_dn, self._admin_password(), who="the admin DN") as conn:
                if conn is None:
                    raise ConnectorError(
                        f"credential {self._cred!r}: the LDAP server refused the admin bind "
                        f"as {admin_dn!r}; check the site's admin_password_file"
                    )
                self._change(conn, dn, None, new)
            return
        if current is None:
            raise ConnectorError(
                f"credential {self._cred!r}: no current value to bind as {dn!r} and no "
                "admin_bind_dn configured"
            )
        with self._bound(dn, current, who="the entry") as conn:
            if conn is not None:
                self._change(conn, dn, current, new)
                return
        # The current value is refused: if the new one binds, an earlier set
        # went through and only its reply was lost.
        if self._verify(new):
            return
        raise ConnectorError(
            f"credential {self._cred!r}: the LDAP server refuses both the current and the "
            f"new value for {dn!r}; configure admin_bind_dn to reset it"
        )

    def _verify(self, value: SecretValue) -> bool:
        with self._bound(self._dn, value, who="the entry") as conn:
            return conn is not None

    def describe(self) -> str:
        dn = self.settings.options.get("dn", "-")
        admin = self.settings.options.get("admin_bind_dn")
        how = f" via {admin}" if admin else ""
        return f"ldap:{dn}@{self.settings.target or '-'}{how}"

    # ----------------------------------------------------------------- internals

    @property
    def _dn(self) -> str:
        dn = self.settings.options.get("dn")
        if not dn:
            raise ConnectorError(
                f"credential {self._cred!r}: the ldap connector needs options dn (the entry)"
            )
        return dn

    def _left(self) -> float:
        left = (self._deadline or time.monotonic() + self._timeout) - time.monotonic()
        if left <= 0.05:
            raise self._too_slow()
        return left

    def _too_slow(self) -> ConnectorError:
        return ConnectorError(
            f"credential {self._cred!r}: the LDAP server {self.settings.target} did not "
            f"finish within the connector's deadline ({self._timeout:g} s, option timeout)"
        )

    def _check_transport(self, url: str) -> None:
        """A simple bind over plain LDAP hands the value to anyone on the path."""
        scheme = url.split(":", 1)[0].lower()
        if scheme in ("ldaps", "ldapi"):
            return
        if self.settings.options.get("start_tls", "").lower() in _TRUE:
            return
        if config.site_policy().ldap_allow_plaintext:
            return
        raise ConnectorError(
            f"credential {self._cred!r}: {url} is plain LDAP, where a bind sends the value "
            "in clear; use ldaps://, set option start_tls=true, or have the site policy "
            "allow it ([ldap] allow_plaintext = true)"
        )

    def _server(self) -> ldap3.Server:
        url = self.settings.target
        if not url:
            raise ConnectorError(
                f"credential {self._cred!r}: the ldap connector needs a target LDAP URL"
            )
        self._check_transport(url)
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED, ca_certs_file=self.settings.site.get("ca_file") or None
        )
        try:
            return ldap3.Server(url, get_info=ldap3.NONE, connect_timeout=self._left(), tls=tls)
        except LDAPException as exc:
            raise ConnectorError(
                f"credential {self._cred!r}: bad LDAP URL {url!r}: {type(exc).__name__}"
            ) from None

    def _admin_password(self) -> SecretValue:
        name = self.settings.site.get("admin_password_file")
        if not name:
            raise ConnectorError(
                f"credential {self._cred!r}: admin_bind_dn is set but the site config has no "
                "admin_password_file for the ldap connector"
            )
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConnectorError(
                f"credential {self._cred!r}: cannot read the LDAP admin password file "
                f"{name!r}: {type(exc).__name__}"
            ) from None
        password = SecretValue(text.rstrip("\r\n"))
        if not len(password):
            raise ConnectorError(
                f"credential {self._cred!r}: the LDAP admin password file {name!r} is empty"
            )
        return password

    @contextmanager
    def _bound(
        self, dn: str, password: SecretValue, *, who: str
    ) -> Iterator[ldap3.Connection | None]:
        """A connection bound as ``dn``, or None when the server says
        invalidCredentials. Anything else (unreachable, TLS, other result codes)
        is ConnectorError."""
        server = self._server()
        left = self._left()
        conn = ldap3.Connection(
            server,
            user=dn,
            password=password.reveal(),
            authentication=ldap3.SIMPLE,
            auto_bind=ldap3.AUTO_BIND_NONE,
            # ldap3 packs this into SO_RCVTIMEO: whole seconds only, per receive.
            receive_timeout=max(1, math.ceil(left)),
            raise_exceptions=False,
        )
        watchdog = _Watchdog(conn, left)
        try:
            with self._deadline_errors(watchdog):
                yield self._bind(conn, dn, who)
        finally:
            watchdog.stop()
            try:
                conn.unbind()
            except LDAPException:
                pass

    @contextmanager
    def _deadline_errors(self, watchdog: _Watchdog) -> Iterator[None]:
        """Once the watchdog has cut the socket, whatever failed, it failed
        because the deadline passed: say so."""
        failed = False
        try:
            yield
        except (LDAPException, ConnectorError):
            if not watchdog.fired:
                raise
            failed = True
        if failed:
            raise self._too_slow()

    def _bind(self, conn: ldap3.Connection, dn: str, who: str) -> ldap3.Connection | None:
        try:
            if self.settings.options.get("start_tls", "").lower() in _TRUE:
                conn.open()
                if not conn.start_tls():
                    raise ConnectorError(
                        f"credential {self._cred!r}: StartTLS to {self.settings.target} "
                        f"failed ({_describe_result(conn.result)})"
                    )
            bound = conn.bind()
        except LDAPException as exc:
            raise ConnectorError(
                f"credential {self._cred!r}: cannot reach the LDAP server "
                f"{self.settings.target}: {type(exc).__name__}"
            ) from None
        if bound:
            return conn
        if conn.result and conn.result.get("result") == _INVALID_CREDENTIALS:
            return None
        raise ConnectorError(
            f"credential {self._cred!r}: the LDAP bind as {who} {dn!r} failed "
            f"({_describe_result(conn.result)})"
        )

    def _change(
        self, conn: ldap3.Connection, dn: str, current: SecretValue | None, new: SecretValue
    ) -> None:
        method = self.settings.options.get("password_change", "exop")
        try:
            if method == "exop":
                ok = conn.extend.standard.modify_password(
                    user=dn,
                    old_password=current.reveal() if current is not None else None,
                    new_password=new.reveal(),
                )
            elif method == "replace":
                ok = conn.modify(dn, {"userPassword": [(ldap3.MODIFY_REPLACE, [new.reveal()])]})
            else:
                raise ConnectorError(
                    f"credential {self._cred!r}: ldap option password_change must be "
                    "'exop' or 'replace'"
                )
        except LDAPException as exc:
            raise ConnectorError(
                f"credential {self._cred!r}: the LDAP server {self.settings.target} failed "
                f"during the password change: {type(exc).__name__}"
            ) from None
        # modify_password answers True, False, or a server-generated password
        # (which would mean the server ignored ours): only True is success.
        if ok is not True:
            raise ConnectorError(
                f"credential {self._cred!r}: the LDAP server refused the password change "
                f"for {dn!r} ({_describe_result(conn.result)})"
            )
