"""Injected time and randomness.

Expiry, TOTP windows, leases and rotation all read time through a ``Clock`` so
tests move time instead of sleeping; randomness goes through ``Random`` so
tests can count or fix it.
"""

from __future__ import annotations

import os
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...


#: How far (seconds) a client's clock may lag the chain's newest entry time and
#: still write (its entry time is then clamped to the chain's); also how far a
#: sweep's clock may run ahead of the chain before it stops expiring others'
#: items (SECURITY.md, "Clock rules").
CLOCK_SKEW = 120.0
class SystemClock:
    """The computer's clock, shifted by ``offset`` seconds (only tests shift it: the
    fronts pass a shift from the environment, tui/environment.py)."""

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset

    def now(self) -> float:
        return time.time() + self._offset


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


def iso(t: float) -> str:
    """RFC 3339 UTC with seconds, the only time format in files and output."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
