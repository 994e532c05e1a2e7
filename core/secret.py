"""A wrapper for secret values that refuses to print itself.

Secrets travel through the core as ``SecretValue`` so an accidental ``repr``
in a log line, an exception or a test failure shows ``<secret>`` instead of
the value. Only ``reveal()`` hands out the text, and grepping for it finds
every place a secret leaves the wrapper.
"""

from __future__ import annotations

import hmac
from typing import NoReturn


class SecretValue:
    """An opaque secret string; ``str``/``repr`` never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        self._value = value

    def reveal(self) -> str:
        """The plaintext. Call only where the secret must leave glasskey."""
        return self._value

    def encode(self) -> bytes:
        return self._value.encode("utf-8")

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "<secret>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(("SecretValue", len(self._value)))

    def __reduce__(self) -> NoReturn:
        raise TypeError("secret values are not picklable")
