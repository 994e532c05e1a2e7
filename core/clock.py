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


#: How far (seconds) a client's clock may lag the chain's newest entry time and
#: still write (its entry time is then clamped to the chain's); also how far a
#: sweep's clock may run ahead of the chain before it stops expiring others'
#: items (SECURITY.md, "Clock rules").
CLOCK_SKEW = 120.0
#: Test-only clock shift for whole processes (seconds, may be negative).
OFFSET_ENV = "GLASSKEY_TEST_CLOCK_OFFSET"


def test_offset() -> float:
    """The process clock shift, honoured only together with GLASSKEY_INSECURE_FAST_KDF=1.

    It exists so tests can run real ``glasskey`` processes with a skewed clock.
    Gating it on the insecure-KDF switch keeps it out of ordinary use; it
    grants nothing an operator lacks anyway (anyone can run their client under
    a shifted clock), which is why the clock rules never trust one client's time.
    """
    raw = os.environ.get(OFFSET_ENV)
    if not raw or os.environ.get("GLASSKEY_INSECURE_FAST_KDF") != "1":
        return 0.0
    try:
        return float(raw)
    except ValueError:
        return 0.0


class SystemClock:
    def __init__(self) -> None:
        self._offset = test_offset()

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

    def choice(self, alphabet: str) -> str:
        return secrets.choice(alphabet)


def iso(t: float) -> str:
    """RFC 3339 UTC with seconds, the only time format in files and output."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
