"""Site settings beside the vault (``glasskey.toml``): never a secret value in it.

Connector admin connections name the site's own mechanisms (a pg_service
entry, a file holding an LDAP bind password that the site protects), policy
defaults and the notification hook. Secrets stay where the site keeps them.

What decides *which code runs* and *which transports may carry a value* is not
here but in the site policy file outside the vault (``SitePolicy`` below):
whoever can write the vault directory must not be able to widen it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glasskey.core.errors import UsageError

CONFIG_FILE = "glasskey.toml"
FORBIDDEN_KEYS = ("password", "secret", "token", "passphrase")


def load(root: Path) -> dict[str, Any]:
    path = root / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{CONFIG_FILE} is not valid TOML: {exc}") from None
    _refuse_secrets(data, "")
    return data


def _refuse_secrets(node: Any, where: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else key
            if any(word == key.lower() or key.lower().endswith("_" + word)
                   for word in FORBIDDEN_KEYS):
                raise UsageError(
                    f"{CONFIG_FILE} holds a secret at {path}; keep secrets in the site's own "
                    "files (pgpass, a protected password file) and name the file instead")
            _refuse_secrets(value, path)


def connector_section(config: dict[str, Any], name: str) -> dict[str, str]:
    section = config.get("connectors", {}).get(name, {})
    return {str(k): str(v) for k, v in section.items()} if isinstance(section, dict) else {}


# --------------------------------------------------------------------------- site policy
#: Environment variable naming the site config; default path otherwise.
SITE_CONFIG_ENV = "GLASSKEY_SITE_CONFIG"
DEFAULT_SITE_CONFIG = Path("/etc/glasskey/site.toml")


@dataclass(frozen=True)
class OnboardingTemplate:
    """Where an onboarding secret goes, fixed by the site (``[onboarding.templates.NAME]``)."""

    name: str
    connector: str
    target: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmtpLogin:
    """Where and as whom notification mail is sent with a password (site policy only)."""

    host: str
    port: int
    username: str
    password_file: Path


@dataclass(frozen=True)
class SitePolicy:
    """What the machine's administrator allows, read from a file *outside* the
    vault (``$GLASSKEY_SITE_CONFIG`` or ``/etc/glasskey/site.toml``).

    Everyone who can write to the vault directory can write ``glasskey.toml``
    beside it, so nothing that decides which code runs in operators' processes
    or which transports may carry a value can live there. An absent file is the
    strictest policy: no command targets, TLS required.
    """

    path: Path | None = None
    #: Directories (symlinks resolved) a ``command`` target must sit under.
    command_allowed_dirs: tuple[Path, ...] = ()
    #: PostgreSQL targets off loopback without ``sslmode=verify-full`` are allowed.
    postgres_allow_unverified_tls: bool = False
    #: LDAP simple binds over ``ldap://`` without StartTLS are allowed.
    ldap_allow_plaintext: bool = False
    onboarding_templates: dict[str, OnboardingTemplate] = field(default_factory=dict)
    #: ``[notify.email]`` of the site policy: the SMTP relay glasskey may log in
    #: to and the file holding its password (core/notify.py). Only here, never in
    #: glasskey.toml: whoever writes the vault could otherwise point the login at
    #: their own server, or the password file at any file the operator can read.
    smtp_login: SmtpLogin | None = None


def site_policy_path() -> Path:
    return Path(os.environ.get(SITE_CONFIG_ENV) or DEFAULT_SITE_CONFIG)


def site_policy() -> SitePolicy:
    """The site policy, read afresh (it is small, and a change must apply at once)."""
    path = site_policy_path()
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return SitePolicy()
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the site config {path} cannot be read: {exc}") from None
    _refuse_secrets(data, "")
    command = _table(data, "command", path)
    dirs = command.get("allowed_dirs", [])
    if not (isinstance(dirs, list) and all(isinstance(d, str) and d.startswith("/")
                                           for d in dirs)):
        raise UsageError(f"{path}: [command] allowed_dirs must be a list of absolute paths")
    templates: dict[str, OnboardingTemplate] = {}
    for name, tdoc in _table(_table(data, "onboarding", path), "templates", path).items():
        if not (isinstance(tdoc, dict) and isinstance(tdoc.get("connector"), str)):
            raise UsageError(f"{path}: onboarding template {name!r} needs a connector")
        options = tdoc.get("options", {})
        if not isinstance(options, dict):
            raise UsageError(f"{path}: onboarding template {name!r}: options must be a table")
        target = tdoc.get("target")
        templates[str(name)] = OnboardingTemplate(
            str(name), tdoc["connector"], str(target) if target is not None else None,
            {str(k): str(v) for k, v in options.items()})
    return SitePolicy(
        path=path,
        smtp_login=_smtp_login(_table(_table(data, "notify", path), "email", path), path),
        command_allowed_dirs=tuple(Path(os.path.realpath(d)) for d in dirs),
        postgres_allow_unverified_tls=_flag(data, "postgres", "allow_unverified_tls", path),
        ldap_allow_plaintext=_flag(data, "ldap", "allow_plaintext", path),
        onboarding_templates=templates,
    )


def _table(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{path}: [{key}] must be a table")
    return value


def _flag(data: dict[str, Any], section: str, key: str, path: Path) -> bool:
    value = _table(data, section, path).get(key, False)
    if not isinstance(value, bool):
        raise UsageError(f"{path}: [{section}] {key} must be true or false")
    return value


def _smtp_login(doc: dict[str, Any], path: Path) -> SmtpLogin | None:
    if not doc:
        return None
    host, user, pfile = doc.get("host"), doc.get("username"), doc.get("password_file")
    port = doc.get("port", 587)
    if not (isinstance(host, str) and host and isinstance(user, str) and user
            and isinstance(pfile, str) and pfile.startswith("/")
            and isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
        raise UsageError(f"{path}: [notify.email] needs host, username, an absolute "
                         "password_file and a port number")
    return SmtpLogin(host, port, user, Path(pfile))


# --------------------------------------------------------------------------- [notify]
NOTIFY_FORMATS = ("json", "slack", "teams", "mattermost")
#: Seconds a committing process spends delivering, all channels together.
NOTIFY_BUDGET_DEFAULT = 3.0
NOTIFY_BUDGET_MAX = 10.0


@dataclass(frozen=True)
class EmailSettings:
    """``[notify.email]`` in glasskey.toml: no password here (see SmtpLogin)."""

    host: str
    port: int
    sender: str
    #: role -> addresses (``[notify.email.to]``; ``approver``, ``requester``, ``admin``).
    to_role: dict[str, tuple[str, ...]]
    #: operator name -> address (``[notify.email.operators]``), for personal events.
    to_operator: dict[str, str]
    starttls: bool = True
    cafile: Path | None = None


@dataclass(frozen=True)
class NotifySettings:
    webhook: str | None = None
    format: str = "json"
    command: str | None = None
    email: EmailSettings | None = None
    #: Wall-clock seconds the committing process may spend delivering.
    budget: float = NOTIFY_BUDGET_DEFAULT

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("webhook", self.webhook), ("command", self.command),
                                           ("email", self.email)) if on)


def _address(value: Any, where: str) -> str:
    if not (isinstance(value, str) and "@" in value and len(value) <= 254
            and not any(ord(c) < 33 or c in "<>,;\"\x7f" for c in value)):
        raise UsageError(f"{CONFIG_FILE}: {where} is not a plain e-mail address")
    return value


def notify_settings(config: dict[str, Any]) -> NotifySettings | None:
    """``[notify]`` of glasskey.toml, validated; None when no channel is configured."""
    section = config.get("notify")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise UsageError(f"{CONFIG_FILE}: [notify] must be a table")
    webhook = section.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and webhook.lower().startswith(
            ("https://", "http://")) and not any(ord(c) < 33 for c in webhook)):
        raise UsageError(f"{CONFIG_FILE}: [notify] webhook must be an http(s) URL")
    fmt = section.get("format", "json")
    if fmt not in NOTIFY_FORMATS:
        raise UsageError(f"{CONFIG_FILE}: [notify] format must be one of "
                         f"{', '.join(NOTIFY_FORMATS)}")
    command = section.get("command")
    if command is not None and not isinstance(command, str):
        raise UsageError(f"{CONFIG_FILE}: [notify] command must be a path")
    budget = section.get("timeout", NOTIFY_BUDGET_DEFAULT)
    if isinstance(budget, bool) or not isinstance(budget, int | float) \
            or not 0 < budget <= NOTIFY_BUDGET_MAX:
        raise UsageError(f"{CONFIG_FILE}: [notify] timeout must be a number of seconds in "
                         f"(0, {NOTIFY_BUDGET_MAX:g}]")
    email = None
    edoc = section.get("email")
    if edoc is not None:
        if not isinstance(edoc, dict):
            raise UsageError(f"{CONFIG_FILE}: [notify.email] must be a table")
        host, port = edoc.get("host"), edoc.get("port", 587)
        if not (isinstance(host, str) and host and isinstance(port, int)
                and not isinstance(port, bool) and 0 < port < 65536):
            raise UsageError(f"{CONFIG_FILE}: [notify.email] needs host and a port number")
        to_role: dict[str, tuple[str, ...]] = {}
        for role, addrs in (edoc.get("to") or {}).items():
            items = [addrs] if isinstance(addrs, str) else addrs
            if not isinstance(items, list):
                raise UsageError(f"{CONFIG_FILE}: [notify.email.to] {role} must be a list")
            to_role[str(role)] = tuple(_address(a, f"[notify.email.to] {role}") for a in items)
        to_op = {str(k): _address(v, f"[notify.email.operators] {k}")
                 for k, v in (edoc.get("operators") or {}).items()}
        starttls = edoc.get("starttls", True)
        cafile = edoc.get("cafile")
        if not isinstance(starttls, bool) or (cafile is not None and not (
                isinstance(cafile, str) and cafile.startswith("/"))):
            raise UsageError(f"{CONFIG_FILE}: [notify.email] starttls is true or false, "
                             "cafile an absolute path")
        email = EmailSettings(host, port, _address(edoc.get("from"), "[notify.email] from"),
                              to_role, to_op, starttls, Path(cafile) if cafile else None)
    out = NotifySettings(webhook, str(fmt), command, email, float(budget))
    return out if out.channels else None
