"""Injected time and randomness.

Expiry, TOTP windows, leases and rotation all read time through a ``Clock`` so
tests move time instead of sleeping; randomness goes through ``Random`` so
tests can count or fix it.
"""

from __future__ import annotations

import os
import time
from typing import Protocol

from glasskey.core.errors import ClockSkewError


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...


#: How far (seconds) a client's clock may lag the chain's newest entry time and
#: still write (its entry time is then clamped to the chain's); also how far a
#: sweep's clock may run ahead of the chain before it stops expiring others'
#: items (SECURITY.md, "Clock rules").
CLOCK_SKEW = 120.0


def entry_time(now: float, newest: tuple[float, str] | None, *, strict: bool = True) -> float:
    """The time the next audit entry gets: never before the chain's newest entry.

    Every backend's transaction calls this one rule (SECURITY.md, "Clock
    rules"). A clock more than CLOCK_SKEW behind the chain refuses to write
    (its expiry arithmetic would be wrong, and its entries would rewrite
    history); within the bound the time is clamped to the chain's. With
    ``strict`` False (unsigned system records of refusals) the time is only
    clamped: a refusal is always recorded.
    """
    if newest is None:
        return now
    latest, actor = newest
    if strict and now < latest - CLOCK_SKEW:
        raise ClockSkewError(
            f"this computer's clock ({iso(now)}) is {int(latest - now)} s behind the "
            f"vault's newest audit entry ({iso(latest)}, by {actor}); fix the clock "
            "(or the other client's) before writing")
    return max(now, latest)
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
