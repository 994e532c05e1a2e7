"""What the connectors that talk to a server (LDAP, PostgreSQL) share: one deadline
per operation, and the checks made before a value is sent at all.

A ``set`` may call ``verify`` (to learn whether an earlier set went through), so
the deadline belongs to the *outermost* operation: ``_operation`` starts it and
nested ones run inside it. The deadline's length is the ``timeout`` option,
checked once when the option is set (``check_settings``, a UsageError at
``cred add``) and again when it is used (a ConnectorError: a failed rotation).
Neither ``set`` nor ``verify`` ever sends an empty value.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import ClassVar

from glasskey.core.connectors.base import Connector, ConnectorSettings, parse_timeout
from glasskey.core.errors import ConnectorError, UsageError
from glasskey.core.secret import SecretValue


class DeadlineConnector(Connector):
    """A connector whose ``set`` and ``verify`` talk to a server under one deadline."""

    #: Seconds one operation may take when the ``timeout`` option is not set.
    default_timeout: ClassVar[float]
    #: Appended to the refusal to verify an empty value (why it would mislead).
    empty_verify_note: ClassVar[str] = ""
    #: Monotonic time by which the current operation must be over.
    _deadline: float | None = None

    @classmethod
    def check_settings(cls, target: str | None, options: Mapping[str, str]) -> None:
        """The timeout, the options the connector needs and the transport rule,
        at ``cred add``."""
        parse_timeout(options.get("timeout"), cls.default_timeout, connector=cls.name)
        cls._check_required(target, options)
        probe = cls(ConnectorSettings(credential="-", target=target, options=options))
        try:
            probe._check_target()
        except ConnectorError as exc:
            raise UsageError(str(exc).removeprefix("credential '-': ")) from None

    @classmethod
    def _check_required(cls, target: str | None, options: Mapping[str, str]) -> None:
        """UsageError when an option the connector cannot work without is missing."""

    @abc.abstractmethod
    def _check_target(self) -> None:
        """ConnectorError when the target is unusable or would carry a value in clear."""

    # ----------------------------------------------------------------- interface

    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        if not len(new):
            raise ConnectorError(f"credential {self._cred!r}: refusing an empty password")
        with self._operation():
            self._set(current, new)

    def verify(self, value: SecretValue) -> bool:
        if not len(value):
            raise ConnectorError(f"credential {self._cred!r}: an empty value cannot be "
                                 f"verified{self.empty_verify_note}")
        with self._operation():
            return self._verify(value)

    @abc.abstractmethod
    def _set(self, current: SecretValue | None, new: SecretValue) -> None:
        """``set`` inside the deadline, ``new`` not empty."""

    @abc.abstractmethod
    def _verify(self, value: SecretValue) -> bool:
        """``verify`` inside the deadline, ``value`` not empty."""

    # ----------------------------------------------------------------- the deadline

    @property
    def _cred(self) -> str:
        return self.settings.credential

    @property
    def _timeout(self) -> float:
        try:
            return parse_timeout(self.settings.options.get("timeout"), self.default_timeout,
                                 connector=self.name)
        except UsageError as exc:
            raise ConnectorError(f"credential {self._cred!r}: {exc}") from None

    @contextmanager
    def _operation(self) -> Iterator[None]:
        """One deadline for the outermost operation (``set`` calls ``verify``)."""
        if self._deadline is not None:
            yield
            return
        self._deadline = time.monotonic() + self._timeout
        try:
            yield
        finally:
            self._deadline = None
