"""The connector interface every rotation target implements.

Rotation is two-phase (see core/rotation.py): the vault seals and stores the
pending value *before* a connector touches the target, then calls ``set`` and
``verify``; only a verified value is promoted. Connectors therefore must be
idempotent: ``set`` may be called again with the same value after a crash or a
lost reply, and ``verify`` is the only proof that the target took a value.

Connectors never receive or store secrets other than through their arguments,
and must never put a value into an exception message or a log line.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.secret import SecretValue


@dataclass(frozen=True)
class ConnectorSettings:
    """Non-secret settings of one credential's target, stored in the vault.

    ``target`` is connector-specific: a libpq conninfo naming the role for
    postgres, an LDAP URL for ldap, an executable path for command.
    ``options`` holds extra non-secret keys (``dn``, ``admin_service``, ...).
    ``site`` is the site configuration section for this connector (from the
    config file beside the vault; never a secret value in it).
    """

    credential: str
    target: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    site: Mapping[str, str] = field(default_factory=dict)


class Connector(abc.ABC):
    """One rotation target."""

    #: Name used on the command line (``--connector NAME``) and in the vault.
    name: str = ""
    #: True when the vault is the source of truth and there is nothing to set.
    vault_is_source_of_truth: bool = False
    #: True when a person must apply the value (APPLY-PENDING until confirmed).
    needs_person: bool = False

    def __init__(self, settings: ConnectorSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        """Make ``new`` the target's value. ``current`` is the value the vault
        believes the target has (for self-rotation); it may be stale after a
        crash, so implementations fall back to an admin connection or report
        ConnectorError. Must be idempotent."""

    @abc.abstractmethod
    def verify(self, value: SecretValue) -> bool:
        """True when a real login/bind with ``value`` succeeds; False when the
        target rejects it. Raise ConnectorError when the target cannot be
        reached (unknown is not the same as rejected)."""

    def verify_rejected(self, old: SecretValue) -> bool:
        """True when the target provably refuses ``old``. Default: the inverse
        of ``verify``."""
        return not self.verify(old)

    def describe(self) -> str:
        """A one-line, secret-free description for screens and the audit log."""
        return f"{self.name}:{self.settings.target or '-'}"
