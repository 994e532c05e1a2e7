"""Emergency access with the kit, and the kit's one-time display.

*Emergency*: when no approver can be reached, a requester and the recovery
code from the safe open one credential without an approval. The screen says
what that sets off before anything is typed: the use is loud (a banner on
every operator's screen until two approvers have reviewed it, the site's
notification hook, the audit log), the kit is burned and must be re-issued,
and the credential is rotated at check-in like any checkout. The recovery
code goes into a password field and is cleared from it at once; the secret
then appears on the usual reveal screen, masked until ``r``.

*Kit issued*: the kit's fingerprint and who holds its two parts; each holder
prints theirs with ``glasskey kit part`` on their own terminal. No part is
shown here.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import (
    Checkout,
    GlasskeyError,
    KitIssued,
    SecretValue,
    cap_all,
    format_duration,
    parse_duration,
)
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.screens.form import next_empty_field
from glasskey.tui.screens.request import DEFAULT_DURATION, duration_input, duration_text
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, Label, LoadingIndicator, Select, Static

WARNING = (
    "EMERGENCY ACCESS: only when no approver can be reached.\n"
    "• Loud: every operator sees a banner until TWO approvers have reviewed this use, "
    "and the site's notification hook runs now.\n"
    "• Burned: the kit opens this one credential and never anything again; two "
    "operators must issue a new kit.\n"
    "• Recorded: the use, your reason and ticket go into the audit log "
    "(emergency.used); the credential is checked out to you and rotated at check-in."
)

FIELDS = ("emg-reason", "emg-ticket", "emg-duration", "emg-code")


class EmergencyScreen(GlasskeyScreen):
    """Open one credential with the emergency kit (requester + recovery code)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Open with the kit", id="emergency.submit",
                tooltip="Use the kit now (Enter in a complete form does the same)"),
        Binding("escape", "back", "Back", id="emergency.back"),
    ]

    def __init__(self, credential: str = "") -> None:
        super().__init__()
        self.credential = credential
        self._busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        with VerticalScroll(id="emergency-body"):
            yield Static(WARNING, id="emergency-warning", markup=False)
            yield Static("", id="emergency-kit", markup=False)
            # Chosen from a list, not typed: only what the kit can open is offered (never a
            # one-time onboarding secret), and a typo cannot cost the typed recovery code.
            choices = self._choices()
            with Horizontal(classes="form-row"):
                yield Label("Credential", classes="form-label")
                yield Select([(n, n) for n in choices], id="emg-cred", compact=True,
                             prompt="choose the credential",
                             value=self.credential if self.credential in choices
                             else Select.NULL)
            rows = (
                ("Reason", "emg-reason", "", "why no approver could be reached, and what for"),
                ("Ticket", "emg-ticket", "", "e.g. INC-1234"),
            )
            for label, wid, value, placeholder in rows:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(value, id=wid, compact=True, placeholder=placeholder)
            with Horizontal(classes="form-row"):
                yield Label("Duration", classes="form-label")
                yield duration_input(duration_text(DEFAULT_DURATION), "emg-duration")
                yield Label("at most the credential's policy maximum", id="emg-max")
            with Horizontal(classes="form-row"):
                yield Label("Kit parts", classes="form-label")
                yield Input(id="emg-code", compact=True, password=True,
                            placeholder="GK2-1-… GK2-2-…: both envelopes from the safe")
            with Horizontal(id="emergency-busy"):
                yield LoadingIndicator()
                yield Label("Opening with the kit…")
            yield Static("", id="emergency-error", classes="form-error", markup=False)
            demo = self.gk.demo
            if demo is not None and demo.kit_code:
                box = Static(f"The demo kit's two parts (a real vault never shows both together):\n"
                             f"{demo.kit_code}", id="emergency-demo", markup=False)
                box.border_title = "DEMO"
                yield box
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.query_one("#emergency-busy").display = False
        select = self.query_one("#emg-cred", Select)
        self.screen.set_focus(select if select.is_blank() else
                              self.query_one("#emg-reason", Input))
        self.refresh_view()

    def refresh_view(self) -> None:
        try:
            kit = self.gk.vault.active_kit()
        except GlasskeyError as exc:
            self.query_one("#emergency-kit", Static).update(str(exc))
            return
        text = (f"Active kit {kit['id']}  ·  fingerprint {kit['fingerprint']}  ·  "
                "check it against the envelope" if kit else
                "No emergency kit is issued: nothing can be opened this way. An admin and a "
                "second operator issue one (Operators screen, k).")
        widget = self.query_one("#emergency-kit", Static)
        widget.update(text)
        widget.set_class(kit is None, "-missing")

    def _choices(self) -> list[str]:
        """What the kit may open: every credential but the one-time onboarding secrets."""
        try:
            creds = self.gk.vault.credentials()
        except GlasskeyError:
            return []
        return [c.name for c in creds if c.kind != "onboarding" and c.status != "revoked"]

    def _cred(self) -> str:
        select = self.query_one("#emg-cred", Select)
        return "" if select.is_blank() else str(select.value)

    def _value(self, wid: str) -> str:
        if wid == "emg-cred":
            return self._cred()
        return self.query_one(f"#{wid}", Input).value.strip()

    @on(Select.Changed, "#emg-cred")
    def _chosen(self, event: Select.Changed) -> None:
        event.stop()
        if not self.query_one("#emg-cred", Select).is_blank():
            self.screen.set_focus(self.query_one("#emg-reason", Input))

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        event.stop()
        target = next_empty_field(FIELDS, event.input.id or "", self._value)
        if target is not None:
            self.screen.set_focus(self.query_one(f"#{target}", Input))
            return
        self.action_submit()

    def _error(self, message: str) -> None:
        self.query_one("#emergency-error", Static).update(message)

    def action_submit(self) -> None:
        session = self.gk.session
        if session is None or self._busy:
            return
        for wid, what in (("emg-cred", "the credential to open"), ("emg-reason", "a reason"),
                          ("emg-ticket", "a ticket reference"),
                          ("emg-code", "both kit parts from the safe")):
            if not self._value(wid):
                self._error(f"Give {what}.")
                self.screen.set_focus(self.query_one(f"#{wid}"))
                return
        # Everything but the code is checked here, before the code leaves its field: a slip
        # in the duration or a too-long reason must not cost the typed recovery code.
        try:
            duration = parse_duration(self._value("emg-duration"))
            cap_all(reason=self._value("emg-reason"), ticket=self._value("emg-ticket"))
            maximum = self.gk.vault.credential(self._cred()).policy.max_duration
        except GlasskeyError as exc:
            self._error(str(exc))
            return
        if duration > maximum:
            self._error(f"The duration {format_duration(duration)} exceeds "
                        f"{self._cred()}'s maximum of {format_duration(maximum)}.")
            self.screen.set_focus(self.query_one("#emg-duration", Input))
            return
        code_input = self.query_one("#emg-code", Input)
        code = code_input.value
        code_input.value = ""  # the code never stays in a widget
        self._error("")
        self._set_busy(True)
        vault, cred = self.gk.vault, self._cred()
        reason, ticket = self._value("emg-reason"), self._value("emg-ticket")
        run_vault_call(self, "emergency", lambda: vault.emergency_reveal(
            session, cred, code, reason, ticket, duration))

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.query_one("#emergency-busy").display = busy
        for widget in self.query(Input):
            widget.disabled = busy
        self.query_one("#emg-cred", Select).disabled = busy

    @on(Done)
    def _opened(self, event: Done[tuple[Checkout, SecretValue]]) -> None:
        self._set_busy(False)
        checkout, secret = event.result
        self.gk.emergency_opened(checkout, secret)

    @on(Failed)
    def _not_opened(self, event: Failed) -> None:
        self._set_busy(False)
        self._error(event.sentence)
        self.screen.set_focus(self.query_one("#emg-code", Input))

    def action_back(self) -> None:
        self.gk.pop_screen()


class CodeText(Static):
    """The recovery code: plain text that the selection copy cannot lift."""

    ALLOW_SELECT = False


class KitIssuedScreen(GlasskeyScreen):
    """A new kit: its fingerprint and who holds its two parts (never a code here)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,escape", "done", "Done", key_display="enter",
                id="kit.done", tooltip="Close"),
    ]

    def __init__(self, issued: KitIssued) -> None:
        super().__init__()
        self._issued: KitIssued | None = issued

    def compose(self) -> ComposeResult:
        issued = self._issued
        assert issued is not None
        yield Header()
        with Vertical(id="kit-text"):
            yield Static(f"EMERGENCY KIT {issued.id}", id="kit-title", markup=False)
            yield Static("The kit has two parts and nobody holds both. Each holder prints "
                         "theirs on their own terminal, seals it in an envelope with their "
                         "name and puts it in the safe. Any earlier kit is burned.",
                         id="kit-help", markup=False)
            yield Static("Fingerprint", classes="kit-label", markup=False)
            yield Static(issued.fingerprint, id="kit-fingerprint", markup=False)
            yield Static("Each part holder runs", classes="kit-label", markup=False)
            yield CodeText("\n".join(f"glasskey kit part --as {name}"
                                     for name in issued.holders),
                           id="kit-code", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True

    def action_done(self) -> None:
        self._issued = None
        self.gk.pop_screen()
