"""The emergency banner: loud, on every screen, until two approvers have reviewed the use.

The app keeps the current ``vault.alerts()`` (read in a worker when the vault
changes) and paints every banner in the screen stack; a banner shows the
``EMERGENCY_KIT_USED`` alerts only and hides itself when there are none. Its
text is the core's sentence (which carries a person's reason and ticket), so
it is drawn with ``markup=False``.
"""

from __future__ import annotations

from collections.abc import Sequence

from glasskey.core.api import Alert, AlertKind, printable
from textual.widgets import Static

#: The opening of the core's sentence for an emergency-kit use (said once on the banner).
EMERGENCY_PREFIX = "EMERGENCY KIT USED"


def emergency_alerts(alerts: Sequence[Alert]) -> list[str]:
    return [a.message for a in alerts if a.kind == AlertKind.EMERGENCY_KIT_USED]


class AlertBanner(Static):
    """One line per emergency use (at most two, then '+N more'); hidden when none."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)
        self.display = False

    def on_mount(self) -> None:
        alerts = getattr(self.app, "alerts", [])
        self.show_alerts(alerts)

    def show_alerts(self, alerts: Sequence[Alert]) -> None:
        lines = emergency_alerts(alerts)
        self.display = bool(lines)
        if not lines:
            self.update("")
            return
        # The core's summary starts with "EMERGENCY:" too; say it once.
        shown = ["!! " + printable(line).replace(f"{EMERGENCY_PREFIX}: EMERGENCY: ",
                                      f"{EMERGENCY_PREFIX}: ", 1) for line in lines[:2]]
        if len(lines) > 2:
            shown.append(f"!! and {len(lines) - 2} more emergency use(s)")
        shown[-1] += "   (v: reviews)"
        self.update("\n".join(shown))
