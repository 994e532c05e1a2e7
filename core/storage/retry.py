"""Re-running a write that lost a serialization race (PostgreSQL SQLSTATE 40001/40P01).

A ``with store.transaction() as txn:`` body cannot be re-run by the store that
runs it: the body is the caller's code. So the PostgreSQL backend reports a
transaction the server rolled back for a conflict as ``WriteConflict`` (nothing
was committed, no secret left the transaction: a reveal returns only after its
COMMIT), and a service method whose only writes are one such transaction is
wrapped in ``retried``: it runs again from a fresh snapshot, a bounded number
of times with jittered backoff, then gives up in one sentence.

The file backend never raises ``WriteConflict``: ``retried`` changes nothing
there. With the PostgreSQL backend's writer queue (docs/team-mode.md,
"Concurrency") a conflict needs a writer that bypassed the queue; this is the
second line of defence, not the way writers normally take turns.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from glasskey.core.errors import StorageError

P = ParamSpec("P")
R = TypeVar("R")

#: How many times a conflicting transaction is run in all.
ATTEMPTS = 4
#: The first backoff (seconds); it doubles per attempt, jittered by +-50 %.
BACKOFF = 0.02


class WriteConflict(StorageError):
    """The database rolled a write transaction back because a concurrent one changed
    what it read (serialization failure or deadlock). Nothing was committed; the
    same transaction, run again from a fresh snapshot, may succeed."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"a concurrent change to the PostgreSQL vault at {where} conflicted with this "
            "one; nothing was changed, try again")
        self.where = where


def gave_up(where: str, attempts: int) -> StorageError:
    return StorageError(
        f"the PostgreSQL vault at {where} kept changing under this operation ({attempts} "
        "attempts, each rolled back by a concurrent change); nothing was changed, try again")


def retried(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` again after a ``WriteConflict``, up to ``ATTEMPTS`` times in all.

    Only for a function whose effects all sit in one write transaction (and whose
    work before it can simply be repeated): after a conflict nothing of it happened.
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn(*args, **kwargs)
            except WriteConflict as exc:
                if attempt == ATTEMPTS:
                    raise gave_up(exc.where, ATTEMPTS) from None
                pause(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    return run


def pause(attempt: int) -> None:
    """Jittered exponential backoff, so racing clients do not collide again in step."""
    time.sleep(BACKOFF * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5))
