"""Approve in one's own session: a fresh TOTP code steps the session up, then approve.

An approval releases a secret, so an approver who unlocked a while ago proves
presence again with a TOTP code they have not used yet
(``vault.confirm_totp``: counted, each 30-second step once, back-off lockout)
and then approves. No passphrase: the session already holds the keys.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core import totp
from glasskey.core.errors import GlasskeyError
from glasskey.core.models import Checkout, CheckoutKind, format_duration
from glasskey.core.text import printable
from glasskey.tui.screens.base import GlasskeyModal
from glasskey.tui.widgets.demo_panel import DemoPanel
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Label, Static


class StepUpModal(GlasskeyModal):
    """Confirm a fresh TOTP code and approve ``checkout``; dismisses with the result."""

    AUTO_FOCUS = "#stepup-code"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Approve", id="stepup.submit",
                tooltip="Confirm the code and approve (six digits do the same)"),
        Binding("escape", "cancel", "Cancel", id="stepup.cancel"),
    ]

    def __init__(self, checkout: Checkout) -> None:
        super().__init__()
        self.checkout = checkout
        self._busy = False

    def compose(self) -> ComposeResult:
        c = self.checkout
        me = self.gk.session.name if self.gk.session else ""
        what = "an onboarding secret" if c.kind == CheckoutKind.ONBOARDING else c.cred_name
        with Vertical(id="stepup-box", classes="dialog"):
            yield Static(f"Approve as {me}", classes="dialog-title", markup=False)
            yield Static(
                f"{c.requester} asks for {what} for {format_duration(c.duration)}\n"
                f"Reason: {printable(c.reason)}\nTicket: {printable(c.ticket)}    "
                f"Request: {c.id}",
                id="stepup-request", markup=False)
            yield Static("Approving releases a secret: type a TOTP code from your "
                         "authenticator that you have not used yet.",
                         classes="dialog-help", markup=False)
            with Horizontal(classes="form-row"):
                yield Label("TOTP code", classes="form-label")
                yield Input(id="stepup-code", compact=True, restrict=r"[0-9 ]*", max_length=7,
                            placeholder="6 digits")
            yield Static("", id="stepup-error", classes="form-error", markup=False)
            if self.gk.demo is not None:
                ops = [o for o in self.gk.demo.operators if o[0] == me]
                if ops:
                    yield DemoPanel(ops, self.gk.now, compact=True, id="stepup-demo")
        yield Footer(compact=True)

    @on(Input.Changed, "#stepup-code")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        # A burst of digits (a paste, an auto-typer, tmux) queues one Changed per digit;
        # an event whose value is no longer the field's is stale and must not submit again.
        if event.value != event.input.value:
            return
        if len(event.value.replace(" ", "")) == 6:
            self._submit(event.value)

    @on(Input.Submitted, "#stepup-code")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(event.value)

    def action_submit(self) -> None:
        self._submit(self.query_one("#stepup-code", Input).value)

    def _submit(self, raw: str) -> None:
        """Confirm ``raw`` and approve, at most once at a time: each extra attempt with a
        code already spent would be recorded as auth.failed and count toward lockout."""
        if self._busy:
            return
        session = self.gk.session
        error = self.query_one("#stepup-error", Static)
        code = raw.replace(" ", "")
        if session is None:
            error.update("The vault is locked.")
            return
        if len(code) != 6:
            error.update("Type the 6-digit TOTP code from your authenticator.")
            return
        now = self.gk.now()
        if session.totp_seed and int(now) // totp.PERIOD == int(self.gk.unlocked_at) // \
                totp.PERIOD and code == totp.code_at(session.totp_seed, now):
            # The code that just unlocked this session: spending it again would only be
            # recorded as a failure (and count toward lockout). Say what to do instead.
            wait = totp.PERIOD - int(now) % totp.PERIOD
            error.update(f"You unlocked with this code a moment ago; wait {wait} s for the "
                         "next code.")
            self.query_one("#stepup-code", Input).value = ""
            return
        self._busy = True
        vault = self.gk.vault
        try:
            vault.confirm_totp(session, code)
            result = vault.approve(session, self.checkout.id)
        except GlasskeyError as exc:
            error.update(str(exc))
            self.query_one("#stepup-code", Input).value = ""
            self._busy = False
            return
        self.dismiss(result)  # stays busy: nothing more is submitted from this modal

    def action_cancel(self) -> None:
        self.dismiss(None)
