"""Unlock: choose an operator, type the passphrase and the TOTP code."""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import GlasskeyError, Session
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.auth_form import AuthForm
from glasskey.tui.widgets.demo_panel import DemoPanel
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Static


class UnlockScreen(GlasskeyScreen):
    """The first screen: nothing is readable past it without passphrase + TOTP."""

    AUTO_FOCUS = "#auth-operator"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Unlock", id="unlock.submit",
                tooltip="Unlock with the operator, passphrase and TOTP code entered"),
    ]

    def compose(self) -> ComposeResult:
        vault = self.gk.vault
        try:
            ops = vault.operators()
            label = str(vault.meta().get("label", ""))
            problem = ""
        except GlasskeyError as exc:
            ops, label, problem = [], "", str(exc)
        rows = [(op.name, f"{', '.join(op.roles)}" + ("" if op.active else f" ({op.status})"),
                 op.status in ("active", "enrolling")) for op in ops]
        yield Header()
        yield AlertBanner()
        with Horizontal(id="unlock-body"):
            with Vertical(id="unlock-panel"):
                title = f"Unlock the {label} vault" if label else "Unlock the vault"
                yield Static(title, id="unlock-title", markup=False)
                yield Static(
                    "Choose yourself (Enter), type your passphrase (Enter), then the "
                    "6-digit code from your authenticator: six digits unlock.",
                    id="unlock-help", markup=False)
                yield AuthForm(rows, self._unlock, id="unlock-form")
                if problem:
                    yield Static(problem, id="unlock-problem", markup=False)
            if self.gk.demo is not None:
                yield DemoPanel(self.gk.demo.operators, self.gk.now, id="demo-panel",
                                vault=str(self.gk.demo.root),
                                second=self.gk.demo.second_terminal())
        yield Footer(compact=True)

    def _unlock(self, name: str, passphrase: str, code: str) -> Session:
        # Runs in the form's thread worker: Argon2id must not freeze the screen.
        return self.gk.vault.unlock(name, passphrase, code)

    def action_submit(self) -> None:
        self.query_one(AuthForm).submit()

    @on(AuthForm.Succeeded, "#unlock-form")
    def _unlocked(self, event: AuthForm.Succeeded) -> None:
        event.stop()
        self.gk.unlocked(event.result)
