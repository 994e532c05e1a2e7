"""The request form: reason, ticket and duration (the policy maximum shown)."""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.errors import GlasskeyError
from glasskey.core.models import Checkout, Credential, format_duration, parse_duration
from glasskey.tui.screens.base import GlasskeyModal
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Label, Static

DEFAULT_DURATION = 30 * 60


def duration_text(seconds: int) -> str:
    """The shortest text ``parse_duration`` reads back as ``seconds``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


class RequestModal(GlasskeyModal):
    """Ask for a checkout; dismisses with the new ``Checkout`` (or ``None``)."""

    AUTO_FOCUS = "#request-reason"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Submit", id="request.submit",
                tooltip="Send the request (Enter in the duration field does the same)"),
        Binding("escape", "cancel", "Cancel", id="request.cancel"),
    ]

    def __init__(self, credential: Credential) -> None:
        super().__init__()
        self.credential = credential

    def compose(self) -> ComposeResult:
        cred = self.credential
        maximum = cred.policy.max_duration
        default = duration_text(min(DEFAULT_DURATION, maximum))
        with Vertical(id="request-box", classes="dialog"):
            yield Static(f"Request {cred.name}", classes="dialog-title", markup=False)
            yield Static(
                f"{cred.kind} · {cred.connector} · needs {cred.policy.k - 1} approver(s) "
                "besides you. The lease starts when you reveal the secret.",
                classes="dialog-help", markup=False)
            with Horizontal(classes="form-row"):
                yield Label("Reason", classes="form-label")
                yield Input(id="request-reason", compact=True,
                            placeholder="why: the outage, what you will do")
            with Horizontal(classes="form-row"):
                yield Label("Ticket", classes="form-label")
                yield Input(id="request-ticket", compact=True, placeholder="e.g. INC-1234")
            with Horizontal(classes="form-row"):
                yield Label("Duration", classes="form-label")
                yield Input(default, id="request-duration", compact=True,
                            restrict=r"[0-9smh ]*", max_length=8)
                yield Label(f"maximum {format_duration(maximum)} (policy)",
                            id="request-max")
            yield Static("", id="request-error", classes="form-error", markup=False)
        yield Footer(compact=True)

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        event.stop()
        order = ["request-reason", "request-ticket", "request-duration"]
        wid = event.input.id or ""
        if wid in order[:-1]:
            # Enter moves on, always: Enter in the ticket field must not submit with a
            # prefilled duration nobody looked at. Enter in the duration field submits.
            self.screen.set_focus(self.query_one(f"#{order[order.index(wid) + 1]}", Input))
            return
        self.action_submit()

    def _error(self, message: str) -> None:
        self.query_one("#request-error", Static).update(message)

    def action_submit(self) -> None:
        session = self.gk.session
        if session is None:
            self._error("The vault is locked; unlock first.")
            return
        reason = self.query_one("#request-reason", Input).value.strip()
        ticket = self.query_one("#request-ticket", Input).value.strip()
        if not reason:
            self._error("Give a reason: it goes into the audit log and the review.")
            self.screen.set_focus(self.query_one("#request-reason", Input))
            return
        if not ticket:
            self._error("Give a ticket reference (the incident or change).")
            self.screen.set_focus(self.query_one("#request-ticket", Input))
            return
        try:
            duration = parse_duration(self.query_one("#request-duration", Input).value)
            checkout: Checkout = self.gk.vault.request(session, self.credential.name, reason,
                                                       ticket, duration)
        except GlasskeyError as exc:
            self._error(str(exc))
            return
        self.dismiss(checkout)

    def action_cancel(self) -> None:
        self.dismiss(None)
