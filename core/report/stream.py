"""Streaming the audit log into a _Collector, parsing only what the period needs.

Why a module of its own: this is the report's hot path (a one-day report of a
1,000,000-entry log, issue 15), written for speed over bytes; everything else
in the report works on parsed entries.
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import TYPE_CHECKING

from glasskey.core.clock import iso
from glasskey.core.report.collect import _Collector
from glasskey.core.report.values import _s

if TYPE_CHECKING:
    from glasskey.core.vault import Vault

#: Status a rotation event leaves its credential in (the log's view of it).
ROTATION_STATUS = {"rotate.commit": "active", "rotate.failed": "rotation-failed",
                   "rotate.apply-pending": "apply-pending"}
#: Checkout events that keep a request open, and those that close it.
_OPENING = frozenset({"checkout.requested", "checkout.approved", "checkout.revealed",
                      "checkout.refused"})
_CLOSING = frozenset({"checkout.denied", "checkout.cancelled", "checkout.expired",
                      "checkout.checked-in", "lease.expired"})
_ROTATION_STATUS_B = {k.encode("ascii"): v for k, v in ROTATION_STATUS.items()}
_OPENING_B = frozenset(e.encode("ascii") for e in _OPENING)
_CLOSING_B = frozenset(e.encode("ascii") for e in _CLOSING)
#: Entries before the period that no period's report uses.
_SKIP_BEFORE = frozenset({b"auth.failed", b"auth.locked", b"audit.tail-quarantined",
                          b"audit.uncommitted", b"lease.overdue", b"operator.enrolled",
                          b"operator.activated", b"operator.suspended",
                          b"operator.reactivated", b"operator.removed"})
#: Entry groups always parsed in full: rare, and each can matter to any period.
_ALWAYS = ("emergency.", "onboarding.", "report.attested", "credential.added", "drill.")
#: Rotations kept per credential from before the period (see _Feeder).
KEEP_ROTATIONS = 4


def _tail_fields(raw: bytes) -> tuple[str, str, str] | None:
    """(time, event, subject) read from the end of a canonical line without parsing it.

    Canonical JSON sorts keys, so a line ends ``"event":E,...,"subject":S,
    "time":T}``; quotes inside values are escaped, so the last ``,"event":"``
    is the top-level key. None when the line does not have that shape.
    """
    t = raw.rfind(b',"time":"')
    e = raw.rfind(b',"event":"', 0, t)
    u = raw.rfind(b',"subject":"', 0, t)
    if t < 0 or e < 0 or u < 0 or not raw.endswith(b'"}'):
        return None
    e_end = raw.find(b'"', e + 10)
    subject = raw[u + 12:t - 1]
    if b"\\" in subject or raw[t - 1:t] != b'"':
        return None
    try:
        return (raw[t + 9:-2].decode("ascii"), raw[e + 10:e_end].decode("ascii"),
                subject.decode("utf-8"))
    except UnicodeDecodeError:
        return None


class _Feeder:
    """Streams the log into a _Collector, parsing only what the period can render.

    Why: a report of one day of a 1,000,000-entry log must not hold (or even
    parse) the whole log (issue 15: 3 GB for a one-day report). Entries dated
    in or after the period are parsed (after the period only the follow-ups
    of items already known). Before the period almost nothing is parsed:

    * a checkout's lines are kept raw while the request is open and dropped
      when it closes; the requests still open when the period starts are
      parsed then (they are held across the period);
    * rotation events update each credential's log status from the event and
      subject alone; the last KEEP_ROTATIONS per credential are kept raw;
    * emergency, onboarding, attestation and credential entries (rare) are
      parsed; authentication and operator entries are skipped.

    The result is the same report as parsing everything, for a log whose
    times run forward (core/audit.py refuses times that run backwards).
    """

    def __init__(self, col: _Collector, since: float, until: float) -> None:
        self.col = col
        self.since = iso(float(math.ceil(since)))
        self.since_b = self.since.encode("ascii")
        self.until = iso(float(math.floor(until)))
        self.pending: dict[str, list[bytes]] = {}
        self.rotations: dict[str, deque[bytes]] = {}
        self.phase = 0  # 0 before the period, 1 in it, 2 after it
        self.read = 0
        self.unreadable = 0
        self.parsed = 0
        self.interest: set[str] = set()

    def _feed_slow(self, raw: bytes) -> None:
        """One line the inline fast path in _read_log did not take, in log order."""
        fields = _tail_fields(raw)
        if fields is None:
            self._parse(raw)
            return
        at, event, subject = fields
        if self.phase == 0 and at >= self.since:
            self._start_period()
        if self.phase == 1 and at > self.until:
            self._end_period()
        status = ROTATION_STATUS.get(event)
        if status is not None:
            self.col.cred_status[subject] = (status, at)
        if self.phase == 1:
            self._parse(raw)
        elif self.phase == 0:
            self._before(raw, event, subject)
        else:
            self._after(raw, event, subject)

    def _before_fast(self, raw: bytes, t: int) -> bool:
        """The common lines before the period, handled as bytes; False: use the slow path."""
        e = raw.rfind(b',"event":"', 0, t)
        if e < 0:
            return False
        e_end = raw.find(b'"', e + 10, t)
        event = raw[e + 10:e_end]
        if event in _SKIP_BEFORE:
            return True
        u = raw.rfind(b',"subject":"', e_end, t)
        subject = raw[u + 12:t - 1]
        if u < 0 or b"\\" in subject or raw[t - 1:t] != b'"':
            return False
        key = subject.decode("utf-8", "replace")
        col = self.col
        if event.startswith(b"rotate."):
            status = _ROTATION_STATUS_B.get(event)
            if status is not None:
                col.cred_status[key] = (status, raw[t + 9:-2].decode("ascii"))
            kept = self.rotations.get(key)
            if kept is None:
                kept = self.rotations[key] = deque(maxlen=KEEP_ROTATIONS)
            kept.append(raw)
            return True
        if event.startswith((b"emergency.", b"onboarding.", b"report.", b"credential.",
                             b"drill.")) \
                or key in col.checkouts or key in col.onboarding:
            return False
        if event in _OPENING_B:
            lines = self.pending.get(key)
            if lines is None:
                self.pending[key] = [raw]
            else:
                lines.append(raw)
        elif event in _CLOSING_B:
            self.pending.pop(key, None)
        elif event == b"review.recorded" and key in self.pending:
            self.pending[key].append(raw)
        return True

    def _before(self, raw: bytes, event: str, subject: str) -> None:
        """A line before the period that _before_fast declined: the same rules on parsed
        tail fields (the byte twin exists only for speed; keep the two in step)."""
        col = self.col
        if event.startswith(_ALWAYS):
            self._parse(raw)
        elif event.startswith("rotate."):
            kept = self.rotations.setdefault(subject, deque(maxlen=KEEP_ROTATIONS))
            kept.append(raw)
        elif subject in col.checkouts or subject in col.onboarding:
            if event.startswith(("checkout.", "lease.", "review.")):
                self._parse(raw)
        elif event in _OPENING:
            self.pending.setdefault(subject, []).append(raw)
        elif event in _CLOSING:
            self.pending.pop(subject, None)
        elif event == "review.recorded" and subject in self.pending:
            self.pending[subject].append(raw)

    def _after(self, raw: bytes, event: str, subject: str) -> None:
        """A line after the period: only follow-ups of items the report lists."""
        col = self.col
        known = subject in col.checkouts or subject in col.onboarding \
            or subject in col.emergency or subject in self.interest
        if event.startswith(_ALWAYS) or (event.startswith("review.") and (
                known or subject.startswith("rot-"))):
            self._parse(raw)
        elif event.startswith("rotate."):
            if subject in self.interest:
                self._parse(raw)
        elif subject in col.checkouts and event.startswith(("checkout.", "lease.")):
            self._parse(raw)

    def _start_period(self) -> None:
        self.phase = 1
        for kept in self.rotations.values():
            for raw in kept:
                self._parse(raw)
        self.rotations.clear()
        for lines in self.pending.values():
            for raw in lines:
                self._parse(raw)
        self.pending.clear()

    def _end_period(self) -> None:
        self.phase = 2
        self.interest = {rec.credential for rec in self.col.checkouts.values()} | {
            o.identity for o in self.col.onboarding.values()}

    def finish(self) -> None:
        if self.phase == 0:
            self._start_period()

    def _parse(self, raw: bytes) -> None:
        try:
            entry = json.loads(raw)
        except ValueError:
            self.unreadable += 1
            return
        if not isinstance(entry, dict):
            self.unreadable += 1
            return
        self.parsed += 1
        self.col.add(entry)
        if entry.get("event") == "credential.added":
            return
        status = ROTATION_STATUS.get(_s(entry.get("event")))
        if status is not None and _tail_fields(raw) is None:  # the fast path missed it
            self.col.cred_status[_s(entry.get("subject"))] = (status, _s(entry.get("time")))


def _read_log(vault: Vault, col: _Collector, since: float, until: float,
              limit: int | None) -> _Feeder:
    """Feed at most ``limit`` lines of the log (the verified ones) into ``col``.

    Reads the log in the store's batches (the file backend splits 4 MiB blocks in
    C): at a million lines the per-line Python work is the cost, so the common
    line before the period is handled inline here (see _Feeder._before_fast). A
    torn last line is not read.
    """
    feeder = _Feeder(col, since, until)
    since_b = feeder.since_b
    fast, slow = feeder._before_fast, feeder._feed_slow
    budget = limit if limit is not None else -1
    for lines in vault.audit_batches():
        if budget == 0:
            break
        if 0 < budget < len(lines):
            lines = lines[:budget]
        budget = max(budget - len(lines), 0) if budget > 0 else budget
        feeder.read += len(lines)
        for raw in lines:
            if feeder.phase == 0:
                t = raw.rfind(b',"time":"')
                if t > 0 and raw[t + 9:-2] < since_b and raw.endswith(b'"}') \
                        and fast(raw, t):
                    continue
            slow(raw)
    feeder.finish()
    return feeder
