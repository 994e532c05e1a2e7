"""The approvals queue: requests waiting for an approver, in the approver's own session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from glasskey.core.api import Checkout, CheckoutState, format_duration
from glasskey.tui.screens.deny import DenyModal
from glasskey.tui.screens.listing import ListScreen
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.widgets.vtable import Column, Row
from textual.binding import Binding, BindingType

S = CheckoutState


class ApprovalsScreen(ListScreen[Checkout]):
    """Open requests; an approver approves (re-authenticating) or denies with a reason."""

    LIST = "approvals"
    COLUMNS = (
        Column("Request", 12),
        Column("Credential", 18),
        Column("Requester", 10),
        Column("For", 6),
        Column("Waiting", 7),
        Column("Ticket", 10, hide_below=90),
        Column("Reason", None, min_width=10),
    )
    EMPTY = "No request is waiting for approval."

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="approvals.approve",
                tooltip="Approve the highlighted request (a TOTP code not used yet)"),
        Binding("d", "deny", "Deny", id="approvals.deny",
                tooltip="Deny the highlighted request with a reason"),
    ]

    def load(self) -> dict[str, Checkout]:
        pending = [c for c in self.gk.vault.checkouts(open_only=True) if c.state == S.REQUESTED]
        return {c.id: c for c in sorted(pending, key=lambda c: (c.created, c.id))}

    def rows(self) -> Iterator[Row]:
        me, now = self.me, self.gk.now()
        for c in self.items.values():
            yield Row(c.id, (c.id, c.cred_name, c.requester, format_duration(c.duration),
                             format_duration(now - c.created), c.ticket, c.reason),
                      "dim" if c.requester == me else "info")

    def summary(self) -> str:
        session = self.gk.session
        others = sum(1 for c in self.items.values() if c.requester != self.me)
        if session is None or not session.has("approver"):
            return "You do not hold the approver role: this queue is read-only for you."
        if others:
            return f"{others} request(s) wait for you. Your own requests are dimmed."
        return "Nothing waits for you."

    def tick(self) -> None:
        if self.items:
            self.paint()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "deny"):
            acting = self.approver_and_current()
            if acting is None:
                return None  # shown, dimmed: nothing to act on
            session, current = acting
            return current.requester != session.name or None
        return True

    def open(self, key: str) -> None:
        self.gk.open_checkout(key)

    def action_approve(self) -> None:
        current = self.current()
        if self.gk.session is None or current is None:
            return
        self.gk.push_screen(StepUpModal(current), self._done)

    def action_deny(self) -> None:
        current = self.current()
        if current is not None:
            self.gk.push_screen(DenyModal(current), self._done)

    def _done(self, result: Checkout | None) -> None:
        if result is not None:
            verb = "approved" if result.state != S.CLOSED else "denied"
            self.gk.notify(f"{result.cred_name} for {result.requester}: {verb}.",
                           markup=False)
        self.refresh_view()
