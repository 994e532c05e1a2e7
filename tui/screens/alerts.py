"""Alerts: what needs someone now, as ``vault.alerts()`` says it.

Emergency uses (also the banner on every screen), failed rotations, values
waiting to be applied by hand, overdue leases, overdue reviews and a missing
emergency kit. ``enter`` goes where the alert is dealt with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from glasskey.tui.screens.listing import ListScreen
from glasskey.tui.widgets.vtable import Column, Row
from textual.binding import Binding, BindingType

#: (prefix of the core's sentence, kind shown, row style)
KINDS = (
    ("EMERGENCY KIT USED", "EMERGENCY", "alert"),
    ("ROTATION-FAILED", "ROTATION-FAILED", "alert"),
    ("OVERDUE", "OVERDUE", "alert"),
    ("APPLY-PENDING", "APPLY-PENDING", "warn"),
    ("review overdue", "review overdue", "warn"),
    ("no emergency kit", "no kit", "warn"),
)


@dataclass(frozen=True)
class AlertRow:
    """What the screen shows of one alert and where ``enter`` takes it."""

    kind: str
    style: str
    message: str
    #: (screen, argument) for ``app.go_to``.
    target: tuple[str, str]


def alert_row(alert: str) -> AlertRow:
    """The one place that reads the core's alert sentences (their prefixes and ids)."""
    kind, style = next(((k, s) for prefix, k, s in KINDS if alert.startswith(prefix)),
                       ("alert", "warn"))
    target = ("dashboard", "")
    if kind in ("EMERGENCY", "review overdue"):
        target = ("reviews", "")
    elif kind == "OVERDUE":
        m = re.search(r"\(([^()]+)\)$", alert)
        target = ("checkout", m.group(1)) if m else ("dashboard", "")
    elif kind in ("ROTATION-FAILED", "APPLY-PENDING"):
        m = re.match(r"[A-Z-]+: (\S+?)(:| waits)", alert)
        target = ("dashboard", m.group(1) if m else "")
    elif kind == "no kit":
        target = ("operators", "")
    return AlertRow(kind, style, alert, target)


class AlertsScreen(ListScreen[AlertRow]):
    """Every current alert; ``enter`` opens the place to deal with it."""

    LIST = "alerts"
    COLUMNS = (
        Column("Kind", 16),
        Column("Alert", None, min_width=20),
    )
    EMPTY = "No alerts."

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="alerts.back"),
    ]

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
