"""One-time onboarding secrets: issue, approve, reveal once, activate.

A deliverer issues a temporary password for a new identity (reason, ticket,
delivery channel, expiry: 24 h by default, 72 h at most); an approver
approves it (countersign here, or from this list with a fresh TOTP code); the
deliverer sees it exactly once on the reveal screen and, when the recipient
has used it, marks it activated, which revokes it. Unused, it expires and is
revoked by the sweep. Every one lands in the review queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from glasskey.core.api import (
    DEFAULT_EXPIRY,
    MAX_EXPIRY,
    Checkout,
    CheckoutState,
    Session,
    format_duration,
    parse_duration,
)
from glasskey.tui.screens.form import Enter, FormModal, Invalid, form_row
from glasskey.tui.screens.listing import ListScreen
from glasskey.tui.screens.request import duration_input, duration_text
from glasskey.tui.screens.reveal import onboarding_identity
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.widgets.states import CLOSED_REASONS
from glasskey.tui.widgets.vtable import Column, Row
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Label, Static

S = CheckoutState


def onboarding_state(c: Checkout, now: float) -> tuple[str, str]:
    """(label, row style) of an onboarding secret."""
    if c.state == S.REQUESTED:
        return "awaiting approval", "info"
    if c.state == S.APPROVED:
        return "approved: reveal once", "ok"
    if c.state == S.CHECKED_OUT:
        return "delivered", "warn"
    if c.state == S.CLOSED and c.closed_reason == "expired":
        return "EXPIRED (revoked)", "alert"
    if c.state == S.CLOSED and c.closed_reason == "activated":
        return "activated (revoked)", "dim"
    if c.state == S.CLOSED:
        return CLOSED_REASONS.get(c.closed_reason, c.closed_reason or "closed"), "dim"
    return str(c.state), "dim"


class OnboardingScreen(ListScreen[Checkout]):
    """Every onboarding secret and its state; ``n`` issues a new one."""

    LIST = "onboarding"
    COLUMNS = (
        Column("Secret", 12),
        Column("Identity", 16),
        Column("State", 21),
        Column("Deliverer", 10),
        Column("Expires", 9),
        Column("Ticket", 10, hide_below=90),
        Column("Reason", None, min_width=10),
    )
    EMPTY = "No onboarding secret yet: n issues one."

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "issue", "Issue", id="onboarding.issue",
                tooltip="Issue a one-time secret for a new identity"),
        Binding("a", "approve", "Approve", id="onboarding.approve",
                tooltip="Approve the highlighted secret (a TOTP code not used yet)"),
    ]

    def load(self) -> dict[str, Checkout]:
        items = self.gk.vault.onboarding_secrets()
        # Open ones first (oldest first), then the closed ones, newest first.
        live = sorted((c for c in items if c.state != S.CLOSED), key=lambda c: (c.created, c.id))
        done = sorted((c for c in items if c.state == S.CLOSED),
                      key=lambda c: (-(c.ended_at or c.created), c.id))
        return {c.id: c for c in live + done}

    def rows(self) -> Iterator[Row]:
        now = self.gk.now()
        for c in self.items.values():
            label, style = onboarding_state(c, now)
            left = c.created + c.duration - now
            expires = "" if c.state == S.CLOSED else (
                format_duration(left) if left > 0 else "EXPIRED")
            yield Row(c.id, (c.id, onboarding_identity(c.cred_name), label, c.requester,
                             expires, c.ticket, c.reason), style)

    def summary(self) -> str:
        live = [c for c in self.items.values() if c.state != S.CLOSED]
        waiting = sum(1 for c in live if c.state == S.REQUESTED)
        return (f"{len(live)} open, {waiting} awaiting approval  ·  "
                f"expiry {format_duration(DEFAULT_EXPIRY)} by default, "
                f"{format_duration(MAX_EXPIRY)} at most  ·  enter opens one")

    def tick(self) -> None:
        if any(c.state != S.CLOSED for c in self.items.values()):
            self.paint()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "approve":
            acting = self.approver_and_current()
            if acting is None:
                return None
            session, current = acting
            return (current.state == S.REQUESTED and current.requester != session.name) or None
        if action == "issue":
            issuer = self.gk.session
            return bool(issuer and issuer.has("requester")) or None
        return True

    def open(self, key: str) -> None:
        self.gk.open_checkout(key)

    def action_issue(self) -> None:
        def done(result: Checkout | None) -> None:
            if result is not None:
                self.gk.notify(f"{result.id} issued for {onboarding_identity(result.cred_name)};"
                               " an approver approves it next.", title="Issued", markup=False)
                self.refresh_view()
                self.gk.open_checkout(result.id)

        self.gk.push_screen(IssueOnboardingModal(), done)

    def action_approve(self) -> None:
        current = self.current()
        if current is not None and self.gk.session is not None:
            self.gk.push_screen(StepUpModal(current), self._approved)

    def _approved(self, result: Checkout | None) -> None:
        if result is not None:
            self.gk.notify(f"{result.id} approved; {result.requester} can reveal it once.",
                           title="Approved", markup=False)
        self.refresh_view()


class IssueOnboardingModal(FormModal[Checkout]):
    """Identity, reason, ticket, delivery channel and expiry; dismisses with the Checkout."""

    FORM = "issue"
    FIELDS = ("onb-identity", "onb-reason", "onb-ticket", "onb-channel", "onb-expiry")
    ENTER = Enter.NEXT_EMPTY
    LOCKED = "The vault is locked; unlock first."
    SUBMIT = ("Issue", "Issue it (Enter in a complete form does the same)")

    def compose_form(self) -> ComposeResult:
        rows = (
            ("Identity", "onb-identity", "the new account: e.g. jdoe or svc-backup"),
            ("Reason", "onb-reason", "why: first day, new service…"),
            ("Ticket", "onb-ticket", "e.g. HR-1234"),
            ("Channel", "onb-channel", "how it reaches them: in person, sealed envelope…"),
        )
        yield Static("Issue a one-time onboarding secret", classes="dialog-title",
                     markup=False)
        yield Static("An approver approves it; you see it exactly once and deliver it. "
                     "When the recipient has used it, mark it activated (t): that "
                     "revokes it. Unused, it expires and is revoked.",
                     classes="dialog-help", markup=False)
        for label, wid, placeholder in rows:
            yield form_row(label, Input("", id=wid, compact=True, placeholder=placeholder))
        yield form_row("Expires in", duration_input(duration_text(DEFAULT_EXPIRY), "onb-expiry"),
                       Label(f"maximum {format_duration(MAX_EXPIRY)}", id="onb-max"))

    def submit(self, session: Session) -> Checkout:
        for wid, what in (("onb-identity", "the identity it is for"),
                          ("onb-reason", "a reason"), ("onb-ticket", "a ticket reference"),
                          ("onb-channel", "the delivery channel")):
            if not self.value(wid):
                raise Invalid(f"Give {what}.", wid)
        expires = parse_duration(self.value("onb-expiry"))
        return self.gk.vault.issue_onboarding(
            session, self.value("onb-identity"), self.value("onb-reason"),
            self.value("onb-ticket"), self.value("onb-channel"), expires)
