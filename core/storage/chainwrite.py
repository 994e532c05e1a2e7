"""What every backend's transaction does the same way with the audit chain: give the
next entry its time, build and sign it, and refuse a rolled-back or forked store.

The backends differ only in where a line lives (a byte offset in audit.jsonl, a
row in ``glasskey.audit``); everything about *what* an entry is, and when a
client must refuse, is decided here once, so the two cannot drift apart.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glasskey.core import witness
from glasskey.core.audit import Head, Signer, build_entry, line_hash
from glasskey.core.chain import Checkpoint
from glasskey.core.clock import entry_time as clock_entry_time
from glasskey.core.errors import IntegrityError, UsageError
from glasskey.core.roster import Roster
from glasskey.core.storage.interface import AuditCursor, Recorded


def time_and_actor(raw: bytes, seq: int) -> tuple[float, str]:
    """(time, actor) of audit entry ``seq`` (its line ``raw``)."""
    try:
        entry = json.loads(raw)
        stamp = calendar.timegm(time.strptime(str(entry["time"]), "%Y-%m-%dT%H:%M:%SZ"))
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"audit entry {seq} has no readable time") from None
    return float(stamp), str(entry.get("actor", "?"))


def check_witness(location: Path | str, vault_id: str, head: Head,
                  line_of: Callable[[Head], bytes | None]) -> Checkpoint:
    """Refuse a state older than (or forked from) the last head this client verified.

    Returns where verification resumes: this client's checkpoint with the roster
    verified up to it, or genesis for a client new to this vault. ``line_of``
    reads the line the checkpoint names, wherever the backend keeps it.
    """
    witness.check_pin(location, vault_id)
    loaded = witness.load_checkpoint(vault_id)
    if loaded is None or loaded[0].seq == 0:
        return Checkpoint()
    seen, roster = loaded
    if seen.seq > head.seq:
        raise IntegrityError(
            f"the vault was rolled back: this client saw audit entry {seen.seq}, "
            f"the vault now ends at {head.seq}")
    raw = line_of(seen)
    if raw is None or line_hash(raw) != seen.hash:
        raise IntegrityError(
            f"the audit log was rewritten: entry {seen.seq} differs from the one "
            "this client saw")
    return Checkpoint(seen, roster) if roster is not None else Checkpoint()


class ChainWriter:
    """The audit half of a write transaction. A backend's transaction sets ``head``,
    ``now``, ``write``, ``roster`` and ``recorded``, reads the newest line in
    ``_read_newest`` and keeps each new line in ``_keep_line`` (it goes in at commit,
    before the state it describes)."""

    head: Head
    write: bool
    roster: Roster
    recorded: list[Recorded]
    now: Callable[[], float]
    _newest: tuple[float, str] | None = None
    _newest_read = False

    def _read_newest(self) -> tuple[float, str] | None:
        raise NotImplementedError

    def _keep_line(self, line: bytes) -> None:
        raise NotImplementedError

    # -- time: the single place an entry's time is set (SECURITY.md, "Clock rules") --
    def newest_entry(self) -> tuple[float, str] | None:
        """(time, actor) of the newest entry in the chain, this transaction's included."""
        if not self._newest_read:
            self._newest_read = True
            self._newest = self._read_newest()
        return self._newest

    def entry_time(self, strict: bool = True) -> float:
        """The time the next entry gets: never before the chain's newest entry.

        A clock more than CLOCK_SKEW behind the chain refuses to write (its
        expiry arithmetic would be wrong, and its entries would rewrite
        history); within the bound the time is clamped to the chain's. With
        ``strict`` False (unsigned system records of refusals, such as a failed
        authentication) the time is only clamped: a refusal is always recorded.
        """
        return clock_entry_time(self.now(), self.newest_entry(), strict=strict)

    def record(self, signer: Signer, event: str, subject: str,
               details: dict[str, Any] | None = None) -> int:
        """Append an audit entry to this transaction; durable before the state."""
        self._require_write()
        when = self.entry_time(strict=signer.key is not None)
        line, self.head = build_entry(self.head, signer, event, subject,
                                      dict(details or {}), when)
        self._newest = (float(int(when)), signer.name)  # entries keep whole seconds
        self._newest_read = True
        self._keep_line(line)
        self.recorded.append((signer, event, subject, dict(details or {}), self.head.seq))
        return self.head.seq

    def record_change(self, signer: Signer, event: str, subject: str,
                      details: dict[str, Any], roster: Roster) -> int:
        """Record a signed roster change and adopt the roster after it."""
        seq = self.record(signer, event, subject, details)
        self.roster = roster
        return seq

    def _require_write(self) -> None:
        if not self.write:
            raise UsageError("internal: write attempted in a read-only transaction")

    @property
    def audit_head(self) -> AuditCursor:
        return AuditCursor(self.head.seq, self.head.hash)
