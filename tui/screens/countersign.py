"""Approving with a fresh authentication: "countersign here" and the step-up approval.

*Countersign here*: the approver steps up to the requester's keyboard and
authenticates in this modal; their keys approve the request right here and
are forgotten when the modal closes (the requester's session is untouched).
The same modal, with the operator fixed, is how an approver approves from the
queue in their own session: an approval releases a secret, so it asks for the
approver's passphrase and a fresh TOTP code again.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import Checkout, format_duration, printable
from glasskey.tui.screens.base import GlasskeyModal
from glasskey.tui.widgets.auth_form import AuthForm
from glasskey.tui.widgets.demo_panel import DemoPanel
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Static


class CountersignModal(GlasskeyModal[Checkout]):
    """Authenticate an approver and approve ``checkout``; dismisses with the result."""

    AUTO_FOCUS = ""  # the form decides: the operator list, or the passphrase if one choice

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Approve", id="countersign.submit",
                tooltip="Authenticate and approve (six digits in the code field do the same)"),
        Binding("escape", "cancel", "Cancel", id="countersign.cancel"),
    ]

    def __init__(self, checkout: Checkout, *, operator: str | None = None) -> None:
        """``operator``: approve as this operator only (the step-up in one's own session)."""
        super().__init__()
        self.checkout = checkout
        self.fixed = operator

    def _eligible(self) -> list[tuple[str, str, bool]]:
        requester = self.checkout.requester
        out = []
        for op in self.gk.vault.operators():
            if self.fixed is not None and op.name != self.fixed:
                continue
            if op.name == requester or not op.has("approver"):
                continue
            ok = op.active
            out.append((op.name, ", ".join(op.roles) + ("" if ok else f" ({op.status})"), ok))
        return out

    def compose(self) -> ComposeResult:
        c = self.checkout
        eligible = self._eligible()
        title = "Countersign here" if self.fixed is None else f"Approve as {self.fixed}"
        with Vertical(id="countersign-box", classes="dialog"):
            yield Static(title, classes="dialog-title", markup=False)
            yield Static(
                f"{c.requester} asks for {c.cred_name} for {format_duration(c.duration)}\n"
                f"Reason: {printable(c.reason)}\nTicket: {printable(c.ticket)}    Request: {c.id}",
                id="countersign-request", markup=False)
            if self.fixed is None:
                hint = ("An approver other than the requester authenticates here; their "
                        "keys approve this request and are forgotten at once.")
            else:
                hint = ("Approving releases a secret: confirm with your passphrase and a "
                        "TOTP code you have not used yet.")
            yield Static(hint, classes="dialog-help", markup=False)
            if eligible:
                yield AuthForm(eligible, self._approve, busy_text="Authenticating (Argon2id)…",
                               id="countersign-form")
            else:
                yield Static("No other active operator holds the approver role.",
                             classes="form-error", markup=False)
            if self.gk.demo is not None:
                ops = [o for o in self.gk.demo.operators if o[0] in {e[0] for e in eligible}]
                if ops:
                    yield DemoPanel(ops, self.gk.now, compact=True, id="countersign-demo")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        forms = self.query(AuthForm)
        if forms:
            forms.first().focus_first()

    def _approve(self, name: str, passphrase: str, code: str) -> Checkout:
        # Thread worker: unlock (Argon2id) then approve; the session is dropped on return.
        vault = self.gk.vault
        approver = vault.unlock(name, passphrase, code)
        return vault.approve(approver, self.checkout.id)

    @on(AuthForm.Succeeded, "#countersign-form")
    def _approved(self, event: AuthForm.Succeeded) -> None:
        event.stop()
        self.dismiss(event.result)

    def action_submit(self) -> None:
        forms = self.query(AuthForm)
        if forms:
            forms.first().submit()

    def action_cancel(self) -> None:
        self.dismiss(None)
