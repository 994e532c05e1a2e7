"""Telling this operator what happened to requests (issue 11), without a keypress.

Approvers hear (toast + bell) when someone else asks; a requester hears when
their request is denied (with the reason) or expires, and when a lease they
hold is about to end. The watcher compares the open checkouts with its last
look; the first look after an unlock only remembers, so nobody is told about
what was already there. It holds no vault state of its own beyond that look.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glasskey.core.api import (
    Checkout,
    CheckoutState,
    GlasskeyError,
    Session,
    Vault,
    format_duration,
)

S = CheckoutState

#: Seconds before a lease ends when its holder is warned (toast and bell).
LEASE_WARNINGS = (60, 300)


class RequestWatcher:
    def __init__(self, vault: Vault, now: Callable[[], float], tell: Callable[..., Any],
                 bell: Callable[[], None]) -> None:
        self.vault = vault
        self.now = now
        self.tell = tell
        self.bell = bell
        #: Open checkouts at the last look (None: not looked since the unlock).
        self.open: dict[str, Checkout] | None = None
        self._lease_warned: set[tuple[str, int]] = set()
        self._told_expired: set[str] = set()

    def forget(self) -> None:
        """A lock: the next session starts with a fresh look."""
        self.open = None

    def look(self, session: Session | None) -> None:
        """Compare the open checkouts with the last look and tell what changed."""
        if session is None:
            self.open = None
            return
        try:
            now_open = {c.id: c for c in self.vault.checkouts(open_only=True)}
        except GlasskeyError:
            return
        before, self.open = self.open, now_open
        if before is None:
            return
        me = session.name
        for rid, c in now_open.items():
            if rid not in before and c.state == S.REQUESTED and c.requester != me \
                    and session.has("approver") and c.kind != "emergency":
                self.bell()
                self.tell(f"{c.requester} asks for {c.cred_name}: {c.reason} "
                          f"({c.ticket}). Press a for the approvals queue.",
                          title="New request", severity="warning", timeout=10)
        for rid, old in before.items():
            if rid in now_open or old.requester != me:
                continue
            try:
                c = self.vault.checkout(rid)
            except GlasskeyError:
                continue
            if c.closed_reason == "denied":
                self.bell()
                self.tell(f"Your request for {c.cred_name} was denied by {c.denied_by}: "
                          f"{c.deny_reason}", title="Request denied", severity="error",
                          timeout=15)
            elif c.closed_reason in ("expired", "request-expired", "approval-expired"):
                self._tell_expired(c)

    def _tell_expired(self, c: Checkout) -> None:
        if c.id in self._told_expired:
            return
        self._told_expired.add(c.id)
        self.bell()
        self.tell(f"Your request for {c.cred_name} expired before it was used; ask again "
                  "if you still need it.", title="Request expired", severity="warning",
                  timeout=15)

    def lease_warnings(self, session: Session | None) -> None:
        """Toast and bell 5 minutes and 1 minute before a lease this operator holds ends;
        say so when a request of theirs expired without any write to the vault."""
        if session is None or not self.open:
            return
        now = self.now()
        for c in self.open.values():
            if c.requester != session.name:
                continue
            shown = c.display_state(now)
            if shown in ("expired", "approval-expired"):
                self._tell_expired(c)
                continue
            if c.state != S.CHECKED_OUT or not c.lease_expires:
                continue
            left = c.lease_expires - now
            mark = next((m for m in LEASE_WARNINGS if 0 < left <= m), None)  # the closest
            if mark is not None and (c.id, mark) not in self._lease_warned:
                # a larger mark passed unnoticed (app started late) is not announced later
                self._lease_warned.update((c.id, m) for m in LEASE_WARNINGS if m >= mark)
                self.bell()
                self.tell(f"Your lease on {c.cred_name} ends in "
                          f"{format_duration(left)}; check in (i) when done.",
                          title="Lease ending", severity="warning", timeout=10)
