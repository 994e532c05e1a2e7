"""Operators: who may act, in which roles, and whether they are locked out."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static

from core.errors import GlasskeyError
from tui.screens.base import GlasskeyScreen
from tui.widgets.states import utc
from tui.widgets.vtable import Column, Row, VirtualTable

COLUMNS = [
    Column("Operator", 16),
    Column("Roles", 26),
    Column("Status", 10),
    Column("Failed", 6),
    Column("Locked until", 16),
    Column("Enrolled", None, min_width=10),
]


class OperatorsScreen(GlasskeyScreen):
    """Every operator and their status (enrolment and suspension are CLI commands)."""

    AUTO_FOCUS = "#operators-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="operators.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="operators-summary", markup=False)
        yield VirtualTable(COLUMNS, id="operators-table", empty_text="No operators.")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()

    def refresh_view(self) -> None:
        try:
            ops = sorted(self.gk.vault.operators(), key=lambda o: o.name)
        except GlasskeyError as exc:
            self.gk.notify(str(exc), severity="error", markup=False)
            return
        now = self.gk.now()
        session = self.gk.session
        rows = []
        for op in ops:
            locked = utc(op.locked_until) if op.locked_until > now else ""
            style = "alert" if locked else "dim" if not op.active else (
                "ok" if session and op.name == session.name else "")
            rows.append(Row(op.name, (op.name, ", ".join(op.roles), op.status,
                                      str(op.failures) if op.failures else "",
                                      locked, utc(op.created)), style))
        self.query_one(VirtualTable).set_rows(rows)
        active = sum(1 for op in ops if op.active)
        approvers = sum(1 for op in ops if op.active and op.has("approver"))
        self.query_one("#operators-summary", Static).update(
            f"{len(ops)} operators  ·  {active} active  ·  {approvers} active approver"
            f"{'s' if approvers != 1 else ''}  ·  enrol and suspend: glasskey operator")

    def action_back(self) -> None:
        self.gk.pop_screen()
