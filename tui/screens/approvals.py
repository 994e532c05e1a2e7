"""The approvals queue: requests waiting for an approver, in the approver's own session."""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.errors import GlasskeyError
from glasskey.core.models import Checkout, CheckoutState, format_duration
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.screens.deny import DenyModal
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.vtable import Column, Row, VirtualTable
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static

S = CheckoutState

COLUMNS = [
    Column("Request", 12),
    Column("Credential", 18),
    Column("Requester", 10),
    Column("For", 6),
    Column("Waiting", 7),
    Column("Ticket", 10, hide_below=90),
    Column("Reason", None, min_width=10),
]


class ApprovalsScreen(GlasskeyScreen):
    """Open requests; an approver approves (re-authenticating) or denies with a reason."""

    AUTO_FOCUS = "#approvals-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="approvals.approve",
                tooltip="Approve the highlighted request (a TOTP code not used yet)"),
        Binding("d", "deny", "Deny", id="approvals.deny",
                tooltip="Deny the highlighted request with a reason"),
        Binding("escape", "back", "Back", id="approvals.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, Checkout] = {}
        self._keys_sig: tuple[str, bool] = ("", False)

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        yield Static("", id="approvals-summary", markup=False)
        yield VirtualTable(COLUMNS, id="approvals-table",
                           empty_text="No request is waiting for approval.")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()

    def refresh_view(self) -> None:
        try:
            pending = [c for c in self.gk.vault.checkouts(open_only=True)
                       if c.state == S.REQUESTED]
        except GlasskeyError as exc:
            self.gk.notify(str(exc), severity="error", markup=False)
            return
        self._pending = {c.id: c for c in pending}
        self._paint()

    def tick(self) -> None:
        if self._pending:
            self._paint()

    def _paint(self) -> None:
        session = self.gk.session
        me = session.name if session else ""
        now = self.gk.now()
        rows = []
        for c in sorted(self._pending.values(), key=lambda c: (c.created, c.id)):
            mine = c.requester == me
            rows.append(Row(c.id, (c.id, c.cred_name, c.requester, format_duration(c.duration),
                                   format_duration(now - c.created), c.ticket, c.reason),
                            "dim" if mine else "info"))
        self.query_one(VirtualTable).set_rows(rows)
        can = session is not None and session.has("approver")
        others = sum(1 for c in self._pending.values() if c.requester != me)
        if not can:
            note = "You do not hold the approver role: this queue is read-only for you."
        elif others:
            note = f"{others} request(s) wait for you. Your own requests are dimmed."
        else:
            note = "Nothing waits for you."
        self.query_one("#approvals-summary", Static).update(note)
        self._refresh_keys()

    def _refresh_keys(self) -> None:
        current = self._current()
        sig = (current.id if current else "", self.gk.session is not None)
        if sig != self._keys_sig:
            self._keys_sig = sig
            self.refresh_bindings()

    def _current(self) -> Checkout | None:
        key = self.query_one(VirtualTable).cursor_key
        return self._pending.get(key) if key else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "deny"):
            session = self.gk.session
            current = self._current() if self.is_mounted else None
            if session is None or not session.has("approver") or current is None:
                return None  # shown, dimmed: nothing to act on
            return current.requester != session.name or None
        return True

    @on(VirtualTable.Highlighted)
    def _moved(self, event: VirtualTable.Highlighted) -> None:
        self._refresh_keys()

    @on(VirtualTable.Selected)
    def _open(self, event: VirtualTable.Selected) -> None:
        event.stop()
        self.gk.open_checkout(event.key)

    def action_approve(self) -> None:
        current = self._current()
        if self.gk.session is None or current is None:
            return
        self.gk.push_screen(StepUpModal(current), self._done)

    def action_deny(self) -> None:
        current = self._current()
        if current is not None:
            self.gk.push_screen(DenyModal(current), self._done)

    def _done(self, result: Checkout | None) -> None:
        if result is not None:
            verb = "approved" if result.state != S.CLOSED else "denied"
            self.gk.notify(f"{result.cred_name} for {result.requester}: {verb}.",
                           markup=False)
        self.refresh_view()

    def action_back(self) -> None:
        self.gk.pop_screen()
