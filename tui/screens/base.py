"""What every glasskey screen shares: typed access to the app and live refresh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import ModalScreen, Screen

if TYPE_CHECKING:
    from glasskey.tui.app import GlasskeyApp


class LiveView:
    """A screen that redraws itself from the vault when the vault changes."""

    #: Set once the screen's widgets exist; the app's timers skip it until then.
    ready: bool = False

    def refresh_view(self) -> None:
        """Re-read what the screen shows (called when ``vault.seq()`` moves)."""

    def tick(self) -> None:
        """Once a second: countdowns and other time-driven text."""

    def alerts_changed(self) -> None:
        """The app's copy of ``vault.alerts()`` changed (read in a worker)."""


class GlasskeyScreen(Screen[None], LiveView):
    """A full screen of the app."""

    @property
    def gk(self) -> GlasskeyApp:
        return cast("GlasskeyApp", self.app)

    def on_screen_resume(self) -> None:
        self.gk.call_after_refresh(self.gk._fit_footers)
        if self.ready:
            self.refresh_view()


class GlasskeyModal(ModalScreen[Any], LiveView):
    """A modal of the app (dismissed with a result, or ``None`` on escape)."""

    @property
    def gk(self) -> GlasskeyApp:
        return cast("GlasskeyApp", self.app)

    def on_screen_resume(self) -> None:
        self.gk.call_after_refresh(self.gk._fit_footers)
