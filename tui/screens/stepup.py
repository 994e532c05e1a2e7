"""Approve in one's own session: a fresh TOTP code steps the session up, then approve.

An approval releases a secret, so an approver who unlocked a while ago proves
presence again with a TOTP code they have not used yet
(``vault.confirm_totp``: counted, each 30-second step once, back-off lockout)
and then approves. No passphrase: the session already holds the keys.
"""

from __future__ import annotations

from glasskey.core.api import Checkout, CheckoutKind, Session, format_duration, printable, totp
from glasskey.tui.screens.form import FormModal, Invalid, form_row
from glasskey.tui.widgets.demo_panel import DemoPanel
from textual import on
from textual.app import ComposeResult
from textual.widgets import Input, Static


class StepUpModal(FormModal[Checkout]):
    """Confirm a fresh TOTP code and approve ``checkout``; dismisses with the result.

    At most one attempt at a time: each extra attempt with a code already spent
    would be recorded as auth.failed and count toward lockout.
    """

    FORM = "stepup"
    FIELDS = ("stepup-code",)
    SUBMIT = ("Approve", "Confirm the code and approve (six digits do the same)")

    def __init__(self, checkout: Checkout) -> None:
        super().__init__()
        self.checkout = checkout
        #: The code an event carried (Enter, six digits); ``None``: read the field.
        self._typed: str | None = None

    def _me(self) -> str:
        return self.gk.session.name if self.gk.session else ""

    def compose_form(self) -> ComposeResult:
        c = self.checkout
        what = "an onboarding secret" if c.kind == CheckoutKind.ONBOARDING else c.cred_name
        yield Static(f"Approve as {self._me()}", classes="dialog-title", markup=False)
        yield Static(
            f"{c.requester} asks for {what} for {format_duration(c.duration)}\n"
            f"Reason: {printable(c.reason)}\nTicket: {printable(c.ticket)}    "
            f"Request: {c.id}",
            id="stepup-request", markup=False)
        yield Static("Approving releases a secret: type a TOTP code from your "
                     "authenticator that you have not used yet.",
                     classes="dialog-help", markup=False)
        yield form_row("TOTP code", Input(id="stepup-code", compact=True, restrict=r"[0-9 ]*",
                                          max_length=7, placeholder="6 digits"))

    def compose_after(self) -> ComposeResult:
        if self.gk.demo is not None:
            ops = [o for o in self.gk.demo.operators if o[0] == self._me()]
            if ops:
                yield DemoPanel(ops, self.gk.now, compact=True, id="stepup-demo")

    @on(Input.Changed, "#stepup-code")
    def _typed_code(self, event: Input.Changed) -> None:
        event.stop()
        # A burst of digits (a paste, an auto-typer, tmux) queues one Changed per digit;
        # an event whose value is no longer the field's is stale and must not submit again.
        if event.value != event.input.value:
            return
        if len(event.value.replace(" ", "")) == 6:
            self._submit_code(event.value)

    def entered(self, event: Input.Submitted) -> None:
        self._submit_code(event.value)

    def _submit_code(self, raw: str) -> None:
        self._typed = raw
        try:
            self.action_submit()
        finally:
            self._typed = None

    def submit(self, session: Session) -> Checkout:
        raw = self._typed if self._typed is not None else self.field("stepup-code").value
        code = raw.replace(" ", "")
        if len(code) != 6:
            raise Invalid("Type the 6-digit TOTP code from your authenticator.")
        now = self.gk.now()
        if session.totp_seed and int(now) // totp.PERIOD == int(self.gk.unlocked_at) // \
                totp.PERIOD and code == totp.code_at(session.totp_seed, now):
            # The code that just unlocked this session: spending it again would only be
            # recorded as a failure (and count toward lockout). Say what to do instead.
            wait = totp.PERIOD - int(now) % totp.PERIOD
            self.field("stepup-code").value = ""
            raise Invalid(f"You unlocked with this code a moment ago; wait {wait} s for the "
                          "next code.")
        vault = self.gk.vault
        vault.confirm_totp(session, code)
        return vault.approve(session, self.checkout.id)

    def refused(self) -> None:
        self.field("stepup-code").value = ""
