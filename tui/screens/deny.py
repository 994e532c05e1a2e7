"""Deny a request: the reason is required and goes into the audit log."""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import Checkout, Session, printable
from glasskey.tui.screens.form import FormModal, Invalid, form_row
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Static


class DenyModal(FormModal[Checkout]):
    """Deny ``checkout`` in the approver's own session; dismisses with the result."""

    AUTO_FOCUS = "#deny-reason"
    FORM = "deny"
    FIELDS = ("deny-reason",)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Deny", id="deny.submit",
                tooltip="Deny the request with this reason"),
        Binding("escape", "cancel", "Cancel", id="deny.cancel"),
    ]

    def __init__(self, checkout: Checkout) -> None:
        super().__init__()
        self.checkout = checkout

    def compose_form(self) -> ComposeResult:
        c = self.checkout
        yield Static(f"Deny {c.requester}'s request for {c.cred_name}",
                     classes="dialog-title", markup=False)
        yield Static(f"Reason given: {printable(c.reason)}\n"
                     f"Ticket: {printable(c.ticket)}    Request: {c.id}",
                     markup=False)
        yield form_row("Why not", Input(id="deny-reason", compact=True,
                                        placeholder="the requester and the review will read this"))

    def submit(self, session: Session) -> Checkout:
        reason = self.value("deny-reason")
        if not reason:
            raise Invalid("Say why: a reason is required.")
        return self.gk.vault.deny(session, self.checkout.id, reason)
