"""The request form: reason, ticket and duration (the policy maximum shown)."""

from __future__ import annotations

from glasskey.core.api import Checkout, Credential, Session, format_duration, parse_duration
from glasskey.tui.screens.form import Enter, FormModal, Invalid, form_row
from textual.app import ComposeResult
from textual.widgets import Input, Label, Static

DEFAULT_DURATION = 30 * 60


def duration_text(seconds: int) -> str:
    """The shortest text ``parse_duration`` reads back as ``seconds``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def duration_input(value: str, wid: str) -> Input:
    """A duration field: 90s, 30m, 1h30m or 2h."""
    return Input(value, id=wid, compact=True, restrict=r"[0-9smh ]*", max_length=8)


class RequestModal(FormModal[Checkout]):
    """Ask for a checkout; dismisses with the new ``Checkout`` (or ``None``)."""

    FORM = "request"
    FIELDS = ("request-reason", "request-ticket", "request-duration")
    ENTER = Enter.NEXT
    LOCKED = "The vault is locked; unlock first."
    SUBMIT = ("Submit", "Send the request (Enter in the duration field does the same)")

    def __init__(self, credential: Credential) -> None:
        super().__init__()
        self.credential = credential

    def compose_form(self) -> ComposeResult:
        cred = self.credential
        maximum = cred.policy.max_duration
        default = duration_text(min(DEFAULT_DURATION, maximum))
        yield Static(f"Request {cred.name}", classes="dialog-title", markup=False)
        yield Static(
            f"{cred.kind} · {cred.connector} · needs {cred.policy.k - 1} approver(s) "
            "besides you. The lease starts when you reveal the secret.",
            classes="dialog-help", markup=False)
        yield form_row("Reason", Input(id="request-reason", compact=True,
                                       placeholder="why: the outage, what you will do"))
        yield form_row("Ticket", Input(id="request-ticket", compact=True,
                                       placeholder="e.g. INC-1234"))
        yield form_row("Duration", duration_input(default, "request-duration"),
                       Label(f"maximum {format_duration(maximum)} (policy)", id="request-max"))

    def submit(self, session: Session) -> Checkout:
        reason = self.value("request-reason")
        ticket = self.value("request-ticket")
        if not reason:
            raise Invalid("Give a reason: it goes into the audit log and the review.",
                          "request-reason")
        if not ticket:
            raise Invalid("Give a ticket reference (the incident or change).", "request-ticket")
        duration = parse_duration(self.field("request-duration").value)
        return self.gk.vault.request(session, self.credential.name, reason, ticket, duration)
