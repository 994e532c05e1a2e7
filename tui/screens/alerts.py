"""Alerts: what needs someone now, as ``vault.alerts()`` says it.

Emergency uses (also the banner on every screen), failed rotations, values
waiting to be applied by hand, overdue leases, overdue reviews and a missing
emergency kit. ``enter`` goes where the alert is dealt with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from glasskey.core.api import Alert, AlertKind
from glasskey.tui.screens.listing import ListScreen
from glasskey.tui.widgets.vtable import Column, Row

#: The alert's kind -> (kind shown, row style); any other kind is ("alert", "warn").
KINDS = {
    AlertKind.EMERGENCY_KIT_USED: ("EMERGENCY", "alert"),
    AlertKind.ROTATION_FAILED: ("ROTATION-FAILED", "alert"),
    AlertKind.OVERDUE: ("OVERDUE", "alert"),
    AlertKind.APPLY_PENDING: ("APPLY-PENDING", "warn"),
    AlertKind.REVIEW_OVERDUE: ("review overdue", "warn"),
    AlertKind.NO_KIT: ("no kit", "warn"),
}


@dataclass(frozen=True)
class AlertRow:
    """What the screen shows of one alert and where ``enter`` takes it."""

    kind: str
    style: str
    message: str
    #: (screen, argument) for ``app.go_to``.
    target: tuple[str, str]


def alert_target(alert: Alert) -> tuple[str, str]:
    """Where an alert is dealt with: (screen, argument), from the alert's fields."""
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


def alert_row(alert: Alert) -> AlertRow:
    """What the screen shows of one alert: its kind, style, sentence and target."""
    kind, style = KINDS.get(alert.kind, ("alert", "warn"))
    return AlertRow(kind, style, alert.message, alert_target(alert))


class AlertsScreen(ListScreen[AlertRow]):
    """Every current alert; ``enter`` opens the place to deal with it."""

    LIST = "alerts"
    COLUMNS = (
        Column("Kind", 16),
        Column("Alert", None, min_width=20),
    )
    EMPTY = "No alerts."

    def on_mount(self) -> None:
        self.ready = True
        self.alerts_changed()
        self.gk.refresh_alerts()

    def refresh_view(self) -> None:
        self.gk.refresh_alerts()

    def alerts_changed(self) -> None:
        self.items = self.load()
        self.paint()

    def load(self) -> dict[str, AlertRow]:
        return {str(n): alert_row(alert) for n, alert in enumerate(self.gk.alerts)}

    def rows(self) -> Iterator[Row]:
        for key, alert in self.items.items():
            yield Row(key, (alert.kind, alert.message), alert.style)

    def summary(self) -> str:
        n = len(self.items)
        return f"{n} alert{'s' if n != 1 else ''}  ·  enter: go and deal with the highlighted one"

    def open(self, key: str) -> None:
        alert = self.items.get(key)
        if alert is not None:
            self.gk.go_to(*alert.target)
