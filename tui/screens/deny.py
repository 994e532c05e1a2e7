"""Deny a request: the reason is required and goes into the audit log."""

from __future__ import annotations

from glasskey.core.api import Checkout, Session, printable
from glasskey.tui.screens.form import FormModal, Invalid, form_row
from textual.app import ComposeResult
from textual.widgets import Input, Static


class DenyModal(FormModal[Checkout]):
    """Deny ``checkout`` in the approver's own session; dismisses with the result."""

    FORM = "deny"
    FIELDS = ("deny-reason",)
    SUBMIT = ("Deny", "Deny the request with this reason")

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
