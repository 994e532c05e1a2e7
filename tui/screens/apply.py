"""APPLY-PENDING: a rotated value that a person must set on the target by hand.

After a manual credential's checkout, the vault generated the next value and
sealed a copy to every operator except the holder. Here another operator
fetches it (``vault.reveal_apply``, audited; masked until ``r``, or copied
with ``c`` and cleared from the clipboard like any secret), sets it on the
target, and confirms (``y``: ``vault.confirm_applied``) so the vault promotes
it to the current version.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import Credential, GlasskeyError, SecretValue, Session
from glasskey.tui.screens.secret_screen import SecretScreen
from glasskey.tui.widgets.alert_banner import AlertBanner
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Header, Static


def apply_key(cred_name: str) -> str:
    """The key of a value to apply in the app's secret store."""
    return f"apply:{cred_name}"


class ApplyScreen(SecretScreen):
    """Fetch, show (on ``r``), copy and confirm the value to apply for one credential."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reveal", "Reveal", id="apply.reveal",
                tooltip="Show or mask the value to apply (the first fetch is audited)"),
        Binding("c", "copy", "Copy", id="apply.copy",
                tooltip="Copy the value to the clipboard without showing it"),
        Binding("y", "confirm", "Confirm applied", id="apply.confirm",
                tooltip="The target now has the new value: make it the current version"),
        Binding("escape", "back", "Back", id="apply.back"),
    ]

    NOT_FETCHED = "Not fetched"

    def __init__(self, cred_name: str) -> None:
        super().__init__(apply_key(cred_name))
        self.cred_name = cred_name
        self.credential: Credential | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        with Vertical(id="reveal-body"):
            yield Static(f"{self.cred_name}  ·  APPLY-PENDING", id="reveal-title",
                         markup=False)
            yield Static("", id="apply-details", markup=False)
            yield from self.compose_secret("Value to apply")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()

    def refresh_view(self) -> None:
        try:
            self.credential = self.gk.vault.credential(self.cred_name)
        except GlasskeyError as exc:
            self.query_one("#apply-details", Static).update(str(exc))
            return
        cred = self.credential
        if cred.status != "apply-pending":
            self.gk.forget_secret(self.secret_key)
        pending = cred.status == "apply-pending"
        self.query_one("#apply-details", Static).update(
            f"Connector  {cred.connector}" + (f" · {cred.target}" if cred.target else "") +
            f"\nVersion    {cred.version} is current" +
            (f"; version {cred.version + 1} waits to be applied by hand" if pending else
             f"\nStatus     {cred.status}: nothing waits to be applied") +
            "\n\nSet the new value on the target yourself (the holder of the last checkout "
            "may not), then press y to confirm: the vault makes it the current version.")
        self.paint_secret()
        self.recheck_keys()

    def sealed_text(self) -> str:
        return "not fetched yet: r shows it, c copies it"

    def tick(self) -> None:
        self.paint_clipboard()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("reveal", "copy", "confirm"):
            return self.credential is not None and self.credential.status == "apply-pending"
        return True

    def fetch_secret(self, session: Session) -> SecretValue:
        return self.gk.vault.reveal_apply(session, self.cred_name)

    def action_confirm(self) -> None:
        session = self.gk.session
        if session is None:
            return
        try:
            result = self.gk.vault.confirm_applied(session, self.cred_name)
        except GlasskeyError as exc:
            self.gk.notify(str(exc), title="Not confirmed", severity="error", markup=False)
            return
        self.gk.forget_secret(self.secret_key)
        self.gk.notify(f"{result.credential}: applied value confirmed (now version "
                       f"{result.version}).", title="Applied", markup=False)
        self.gk.poll_vault()
        self.refresh_view()

    def action_back(self) -> None:
        self.gk.pop_screen()
