"""The connector interface every rotation target implements.

Rotation is two-phase (see core/rotation.py): the vault seals and stores the
pending value *before* a connector touches the target, then calls ``set`` and
``verify``; only a verified value is promoted. Connectors therefore must be
idempotent: ``set`` may be called again with the same value after a crash or a
lost reply, and ``verify`` is the only proof that the target took a value.

Connectors never receive or store secrets other than through their arguments,
and must never put a value into an exception message or a log line.

Because a connector's messages come partly from the far side (a script's
stderr, a server's error text), this module also *enforces* that rule for
every connector, built-in or site-provided: ``Connector.__init_subclass__``
wraps ``set``, ``verify`` and ``verify_rejected`` so that

* a ``ConnectorError`` leaves with every 4-character fragment of the values
  the call was given scrubbed out of its message (``scrub_fragments``), and
* any other exception becomes a ``ConnectorError`` naming only its type: a
  connector bug or an unexpected library error is a failed rotation, never an
  internal error, and its text (which may quote a value) is dropped.
"""

from __future__ import annotations

import abc
import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from glasskey.core.errors import ConnectorError, UsageError
from glasskey.core.secret import SecretValue

#: Shortest fragment of a value that must never leave the connector layer.
FRAGMENT = 4
#: What a scrubbed run of text is replaced with (3 characters: it cannot itself
#: be a 4-character fragment of a value).
REDACTED = "[\u2026]"
#: The longest deadline a connector option may ask for, in seconds.
MAX_TIMEOUT = 600.0

_F = TypeVar("_F", bound=Callable[..., Any])


def _forms(value: str) -> set[str]:
    """The value as it may appear in text: raw and JSON-escaped."""
    return {value, json.dumps(value)[1:-1]}


def scrub_fragments(text: str, values: Iterable[SecretValue | str | None],
                    keep: Iterable[str] = ()) -> str:
    """``text`` with every run that contains a 4-character fragment of a value
    (raw or JSON-escaped) replaced by ``[\u2026]``; values shorter than that are
    scrubbed where they occur whole.

    Positions are marked on the original text and each maximal marked run is
    replaced once, so no fragment survives at the edge of a replacement.

    ``keep`` lists public strings (the credential's name, target, options)
    left as they are: redacting part of a text the reader already knows would
    tell them which fragments the value contains.
    """
    grams: set[str] = set()
    whole: set[str] = set()
    for value in values:
        if value is None:
            continue
        plain = value.reveal() if isinstance(value, SecretValue) else value
        if not plain:
            continue
        for form in _forms(plain):
            if len(form) < FRAGMENT:
                whole.add(form)
            else:
                grams.update(form[i:i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1))
    if not grams and not whole:
        return text
    marked = bytearray(len(text))
    for i in range(len(text) - FRAGMENT + 1):
        if text[i:i + FRAGMENT] in grams:
            marked[i:i + FRAGMENT] = b"\x01" * FRAGMENT
    for form in whole:
        start = text.find(form)
        while start >= 0:
            marked[start:start + len(form)] = b"\x01" * len(form)
            start = text.find(form, start + 1)
    for public in keep:
        if len(public) < FRAGMENT:
            continue
        start = text.find(public)
        while start >= 0:
            marked[start:start + len(public)] = bytes(len(public))
            start = text.find(public, start + 1)
    out: list[str] = []
    i = 0
    while i < len(text):
        if marked[i]:
            while i < len(text) and marked[i]:
                i += 1
            out.append(REDACTED)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_timeout(raw: str | None, default: float, *, connector: str) -> float:
    """A connector ``timeout`` option: a finite number of seconds in (0, 600].

    ``float()`` alone accepts ``inf``, ``nan``, ``1e7`` and negatives, which
    later overflow a socket or poll call; checked here when the option is set
    (UsageError at ``cred add``) and again when it is used.
    """
    if raw is None:
        return default
    try:
        timeout = float(raw)
    except ValueError:
        timeout = math.nan
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise UsageError(
            f"{connector} option timeout must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT:g}, not {raw!r}"
        )
    return timeout


def _guard(method: _F, name: str) -> _F:
    """Wrap a connector operation: scrub fragments of its values out of a
    ConnectorError, turn any other exception into one (type name only)."""

    @functools.wraps(method)
    def guarded(self: Connector, *args: Any, **kwargs: Any) -> Any:
        values = [a for a in (*args, *kwargs.values()) if isinstance(a, SecretValue)]
        keep = self.public_strings()
        message: str | None = None
        try:
            return method(self, *args, **kwargs)
        except ConnectorError as exc:
            message = scrub_fragments(str(exc), values, keep)
        except UsageError as exc:
            message = scrub_fragments(
                f"credential {self.settings.credential!r}: {exc}", values, keep)
        except Exception as exc:  # a connector bug is a failed rotation
            message = (
                f"credential {self.settings.credential!r}: the {self.name or 'site'} "
                f"connector failed unexpectedly during {name} ({type(exc).__name__})"
            )
        # Raised outside the except blocks: the original exception (and its
        # text, maybe quoting a value) must not ride along as __context__.
        raise ConnectorError(message)

    guarded.__glasskey_guarded__ = True  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("set", "verify", "verify_rejected"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__glasskey_guarded__", False):
                setattr(cls, name, _guard(method, name))

    def public_strings(self) -> list[str]:
        """Non-secret settings that messages quote and scrubbing leaves alone."""
        out = [self.settings.credential, repr(self.settings.credential)]
        if self.settings.target:
            out += [self.settings.target, repr(self.settings.target)]
        for key, value in self.settings.options.items():
            out += [key, value, repr(value)]
        return out

    @classmethod
    def check_settings(cls, target: str | None, options: Mapping[str, str]) -> None:
        """Refuse bad non-secret settings when they are *set* (``cred add``,
        onboarding), with one sentence (UsageError), instead of failing a
        rotation later. Default: nothing to check."""
        return None

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
