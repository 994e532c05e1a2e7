"""Injected time and randomness.

Expiry, TOTP windows, leases and rotation all read time through a ``Clock`` so
tests move time instead of sleeping; randomness goes through ``Random`` so
tests can count or fix it.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def set(self, t: float) -> None:
        self._t = t


class Random(Protocol):
    def bytes(self, n: int) -> bytes: ...


class SystemRandom:
    def bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def choice(self, alphabet: str) -> str:
        return secrets.choice(alphabet)


def iso(t: float) -> str:
    """RFC 3339 UTC with seconds, the only time format in files and output."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
