"""One-time onboarding secrets: issue, approve, reveal once, activate.

A deliverer issues a temporary password for a new identity (reason, ticket,
delivery channel, expiry: 24 h by default, 72 h at most); an approver
approves it (countersign here, or from this list with a fresh TOTP code); the
deliverer sees it exactly once on the reveal screen and, when the recipient
has used it, marks it activated, which revokes it. Unused, it expires and is
revoked by the sweep. Every one lands in the review queue.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.errors import GlasskeyError
from glasskey.core.models import Checkout, CheckoutState, format_duration, parse_duration
from glasskey.core.onboarding import DEFAULT_EXPIRY, MAX_EXPIRY
from glasskey.tui.screens.base import GlasskeyModal, GlasskeyScreen
from glasskey.tui.screens.request import duration_text
from glasskey.tui.screens.reveal import onboarding_identity
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.states import CLOSED_REASONS
from glasskey.tui.widgets.vtable import Column, Row, VirtualTable
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Input, Label, Static

S = CheckoutState

COLUMNS = [
    Column("Secret", 12),
    Column("Identity", 16),
    Column("State", 21),
    Column("Deliverer", 10),
    Column("Expires", 9),
    Column("Ticket", 10, hide_below=90),
    Column("Reason", None, min_width=10),
]


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


class OnboardingScreen(GlasskeyScreen):
    """Every onboarding secret and its state; ``n`` issues a new one."""

    AUTO_FOCUS = "#onboarding-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "issue", "Issue", id="onboarding.issue",
                tooltip="Issue a one-time secret for a new identity"),
        Binding("a", "approve", "Approve", id="onboarding.approve",
                tooltip="Approve the highlighted secret (a TOTP code not used yet)"),
        Binding("escape", "back", "Back", id="onboarding.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._items: dict[str, Checkout] = {}
        self._keys_sig: tuple[str, str] = ("", "")

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        yield Static("", id="onboarding-summary", markup=False)
        yield VirtualTable(COLUMNS, id="onboarding-table",
                           empty_text="No onboarding secret yet: n issues one.")
        yield Footer(compact=True)

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#onboarding-table", VirtualTable)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()

    def refresh_view(self) -> None:
        try:
            items = self.gk.vault.onboarding_secrets()
        except GlasskeyError as exc:
            self.gk.notify(str(exc), severity="error", markup=False)
            return
        # Open ones first (oldest first), then the closed ones, newest first.
        live = sorted((c for c in items if c.state != S.CLOSED), key=lambda c: (c.created, c.id))
        done = sorted((c for c in items if c.state == S.CLOSED),
                      key=lambda c: (-(c.ended_at or c.created), c.id))
        self._items = {c.id: c for c in live + done}
        self._paint()

    def _paint(self) -> None:
        now = self.gk.now()
        rows = []
        for c in self._items.values():
            label, style = onboarding_state(c, now)
            left = c.created + c.duration - now
            expires = "" if c.state == S.CLOSED else (
                format_duration(left) if left > 0 else "EXPIRED")
            rows.append(Row(c.id, (c.id, onboarding_identity(c.cred_name), label, c.requester,
                                   expires, c.ticket, c.reason), style))
        self.table.set_rows(rows)
        live = [c for c in self._items.values() if c.state != S.CLOSED]
        waiting = sum(1 for c in live if c.state == S.REQUESTED)
        self.query_one("#onboarding-summary", Static).update(
            f"{len(live)} open, {waiting} awaiting approval  ·  "
            f"expiry {format_duration(DEFAULT_EXPIRY)} by default, "
            f"{format_duration(MAX_EXPIRY)} at most  ·  enter opens one")
        self._refresh_keys()

    def tick(self) -> None:
        if any(c.state != S.CLOSED for c in self._items.values()):
            self._paint()

    def _current(self) -> Checkout | None:
        try:
            key = self.table.cursor_key
        except NoMatches:  # composing, or torn down (bindings are checked then too)
            return None
        return self._items.get(key) if key else None

    def _refresh_keys(self) -> None:
        current = self._current()
        sig = (current.id if current else "", str(current.state) if current else "")
        if sig != self._keys_sig:
            self._keys_sig = sig
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        session = self.gk.session
        if action == "approve":
            current = self._current() if self.is_mounted else None
            if session is None or not session.has("approver") or current is None:
                return None
            return (current.state == S.REQUESTED and current.requester != session.name) or None
        if action == "issue":
            return bool(session and session.has("requester")) or None
        return True

    @on(VirtualTable.Highlighted, "#onboarding-table")
    def _moved(self, event: VirtualTable.Highlighted) -> None:
        self._refresh_keys()

    @on(VirtualTable.Selected, "#onboarding-table")
    def _selected(self, event: VirtualTable.Selected) -> None:
        event.stop()
        self.gk.open_checkout(event.key)

    def action_issue(self) -> None:
        def done(result: Checkout | None) -> None:
            if result is not None:
                self.gk.notify(f"{result.id} issued for {onboarding_identity(result.cred_name)};"
                               " an approver approves it next.", title="Issued", markup=False)
                self.refresh_view()
                self.gk.open_checkout(result.id)

        self.gk.push_screen(IssueOnboardingModal(), done)

    def action_approve(self) -> None:
        current = self._current()
        if current is not None and self.gk.session is not None:
            self.gk.push_screen(StepUpModal(current), self._approved)

    def _approved(self, result: Checkout | None) -> None:
        if result is not None:
            self.gk.notify(f"{result.id} approved; {result.requester} can reveal it once.",
                           title="Approved", markup=False)
        self.refresh_view()

    def action_back(self) -> None:
        self.gk.pop_screen()


class IssueOnboardingModal(GlasskeyModal):
    """Identity, reason, ticket, delivery channel and expiry; dismisses with the Checkout."""

    AUTO_FOCUS = "#onb-identity"

    FIELDS = ("onb-identity", "onb-reason", "onb-ticket", "onb-channel", "onb-expiry")

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Issue", id="issue.submit",
                tooltip="Issue it (Enter in a complete form does the same)"),
        Binding("escape", "cancel", "Cancel", id="issue.cancel"),
    ]

    def compose(self) -> ComposeResult:
        rows = (
            ("Identity", "onb-identity", "the new account: e.g. jdoe or svc-backup", ""),
            ("Reason", "onb-reason", "why: first day, new service…", ""),
            ("Ticket", "onb-ticket", "e.g. HR-1234", ""),
            ("Channel", "onb-channel", "how it reaches them: in person, sealed envelope…", ""),
        )
        with Vertical(id="issue-box", classes="dialog"):
            yield Static("Issue a one-time onboarding secret", classes="dialog-title",
                         markup=False)
            yield Static("An approver approves it; you see it exactly once and deliver it. "
                         "When the recipient has used it, mark it activated (t): that "
                         "revokes it. Unused, it expires and is revoked.",
                         classes="dialog-help", markup=False)
            for label, wid, placeholder, value in rows:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(value, id=wid, compact=True, placeholder=placeholder)
            with Horizontal(classes="form-row"):
                yield Label("Expires in", classes="form-label")
                yield Input(duration_text(DEFAULT_EXPIRY), id="onb-expiry", compact=True,
                            restrict=r"[0-9smh ]*", max_length=8)
                yield Label(f"maximum {format_duration(MAX_EXPIRY)}", id="onb-max")
            yield Static("", id="issue-error", classes="form-error", markup=False)
        yield Footer(compact=True)

    def _value(self, wid: str) -> str:
        return self.query_one(f"#{wid}", Input).value.strip()

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        event.stop()
        wid = event.input.id or ""
        empty = [f for f in self.FIELDS if not self._value(f)]
        if wid in self.FIELDS and empty:
            after = [f for f in self.FIELDS[self.FIELDS.index(wid) + 1:] if f in empty]
            self.screen.set_focus(self.query_one(f"#{(after or empty)[0]}", Input))
            return
        self.action_submit()

    def action_submit(self) -> None:
        session = self.gk.session
        error = self.query_one("#issue-error", Static)
        if session is None:
            error.update("The vault is locked; unlock first.")
            return
        for wid, what in (("onb-identity", "the identity it is for"),
                          ("onb-reason", "a reason"), ("onb-ticket", "a ticket reference"),
                          ("onb-channel", "the delivery channel")):
            if not self._value(wid):
                error.update(f"Give {what}.")
                self.screen.set_focus(self.query_one(f"#{wid}", Input))
                return
        try:
            expires = parse_duration(self._value("onb-expiry"))
            result = self.gk.vault.issue_onboarding(
                session, self._value("onb-identity"), self._value("onb-reason"),
                self._value("onb-ticket"), self._value("onb-channel"), expires)
        except GlasskeyError as exc:
            error.update(str(exc))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)
