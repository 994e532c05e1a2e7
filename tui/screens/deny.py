"""Deny a request: the reason is required and goes into the audit log."""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.errors import GlasskeyError
from glasskey.core.models import Checkout
from glasskey.core.text import printable
from glasskey.tui.screens.base import GlasskeyModal
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Label, Static


class DenyModal(GlasskeyModal):
    """Deny ``checkout`` in the approver's own session; dismisses with the result."""

    AUTO_FOCUS = "#deny-reason"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Deny", id="deny.submit",
                tooltip="Deny the request with this reason"),
        Binding("escape", "cancel", "Cancel", id="deny.cancel"),
    ]

    def __init__(self, checkout: Checkout) -> None:
        super().__init__()
        self.checkout = checkout

    def compose(self) -> ComposeResult:
        c = self.checkout
        with Vertical(id="deny-box", classes="dialog"):
            yield Static(f"Deny {c.requester}'s request for {c.cred_name}",
                         classes="dialog-title", markup=False)
            yield Static(f"Reason given: {printable(c.reason)}\n"
                         f"Ticket: {printable(c.ticket)}    Request: {c.id}",
                         markup=False)
            with Horizontal(classes="form-row"):
                yield Label("Why not", classes="form-label")
                yield Input(id="deny-reason", compact=True,
                            placeholder="the requester and the review will read this")
            yield Static("", id="deny-error", classes="form-error", markup=False)
        yield Footer(compact=True)

    @on(Input.Submitted, "#deny-reason")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        session = self.gk.session
        reason = self.query_one("#deny-reason", Input).value.strip()
        if session is None:
            self.query_one("#deny-error", Static).update("The vault is locked.")
            return
        if not reason:
            self.query_one("#deny-error", Static).update("Say why: a reason is required.")
            return
        try:
            result = self.gk.vault.deny(session, self.checkout.id, reason)
        except GlasskeyError as exc:
            self.query_one("#deny-error", Static).update(str(exc))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)
