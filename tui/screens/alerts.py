"""Alerts: what needs someone now, as ``vault.alerts()`` says it.

Emergency uses (also the banner on every screen), failed rotations, values
waiting to be applied by hand, overdue leases, overdue reviews and a missing
emergency kit. ``enter`` goes where the alert is dealt with.
"""

from __future__ import annotations

import re
from typing import ClassVar

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

#: (prefix of the core's sentence, kind shown, row style)
KINDS = (
    ("EMERGENCY KIT USED", "EMERGENCY", "alert"),
    ("ROTATION-FAILED", "ROTATION-FAILED", "alert"),
    ("OVERDUE", "OVERDUE", "alert"),
    ("APPLY-PENDING", "APPLY-PENDING", "warn"),
    ("review overdue", "review overdue", "warn"),
    ("no emergency kit", "no kit", "warn"),
)


def alert_kind(alert: str) -> tuple[str, str]:
    for prefix, kind, style in KINDS:
        if alert.startswith(prefix):
            return kind, style
    return "alert", "warn"


def alert_target(alert: str) -> tuple[str, str]:
    """Where an alert is dealt with: (screen, argument)."""
    kind, _style = alert_kind(alert)
    if kind in ("EMERGENCY", "review overdue"):
        return "reviews", ""
    if kind == "OVERDUE":
        m = re.search(r"\(([^()]+)\)$", alert)
        return ("checkout", m.group(1)) if m else ("dashboard", "")
    if kind in ("ROTATION-FAILED", "APPLY-PENDING"):
        m = re.match(r"[A-Z-]+: (\S+?)(:| waits)", alert)
        return "dashboard", m.group(1) if m else ""
    if kind == "no kit":
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
            rows.append(Row(str(n), (kind, alert), style))
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
