"""Alerts: what needs someone now, as ``vault.alerts()`` says it.

Emergency uses (also the banner on every screen), failed rotations, values
waiting to be applied by hand, overdue leases, overdue reviews and a missing
emergency kit. ``enter`` goes where the alert is dealt with.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import Alert, AlertKind
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.vtable import Column, Row, VirtualTable
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static

COLUMNS = [
    Column("Kind", 16),
    Column("Alert", None, min_width=20),
]

#: The alert's kind -> (kind shown, row style); any other kind is ("alert", "warn").
KINDS = {
    AlertKind.EMERGENCY_KIT_USED: ("EMERGENCY", "alert"),
    AlertKind.ROTATION_FAILED: ("ROTATION-FAILED", "alert"),
    AlertKind.OVERDUE: ("OVERDUE", "alert"),
    AlertKind.APPLY_PENDING: ("APPLY-PENDING", "warn"),
    AlertKind.REVIEW_OVERDUE: ("review overdue", "warn"),
    AlertKind.NO_KIT: ("no kit", "warn"),
}


def alert_kind(alert: Alert) -> tuple[str, str]:
    return KINDS.get(alert.kind, ("alert", "warn"))


def alert_target(alert: Alert) -> tuple[str, str]:
    """Where an alert is dealt with: (screen, argument)."""
    kind = alert.kind
    if kind in (AlertKind.EMERGENCY_KIT_USED, AlertKind.REVIEW_OVERDUE):
        return "reviews", ""
    if kind == AlertKind.OVERDUE:
        return ("checkout", alert.request_id) if alert.request_id else ("dashboard", "")
    if kind in (AlertKind.ROTATION_FAILED, AlertKind.APPLY_PENDING):
        return "dashboard", alert.credential or ""
    if kind == AlertKind.NO_KIT:
        return "operators", ""
    return "dashboard", ""


class AlertsScreen(GlasskeyScreen):
    """Every current alert; ``enter`` opens the place to deal with it."""

    AUTO_FOCUS = "#alerts-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="alerts.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        yield Static("", id="alerts-summary", markup=False)
        yield VirtualTable(COLUMNS, id="alerts-table", empty_text="No alerts.")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.alerts_changed()
        self.gk.refresh_alerts()

    def refresh_view(self) -> None:
        self.gk.refresh_alerts()

    def alerts_changed(self) -> None:
        alerts = self.gk.alerts
        rows = []
        for n, alert in enumerate(alerts):
            kind, style = alert_kind(alert)
            rows.append(Row(str(n), (kind, alert.message), style))
        self.query_one(VirtualTable).set_rows(rows)
        self.query_one("#alerts-summary", Static).update(
            f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}  ·  enter: go and deal "
            "with the highlighted one")

    @on(VirtualTable.Selected, "#alerts-table")
    def _selected(self, event: VirtualTable.Selected) -> None:
        event.stop()
        try:
            alert = self.gk.alerts[int(event.key)]
        except (ValueError, IndexError):
            return
        where, arg = alert_target(alert)
        self.gk.go_to(where, arg)

    def action_back(self) -> None:
        self.gk.pop_screen()
