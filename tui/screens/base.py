"""What every glasskey screen shares: typed access to the app, live refresh, footer keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from typing_extensions import TypeVar

if TYPE_CHECKING:
    from glasskey.core.api import RotationResult
    from glasskey.tui.app import GlasskeyApp

#: What a modal dismisses with; a bare ``GlasskeyModal`` dismisses with nothing.
ResultT = TypeVar("ResultT", default=None)

#: (key, enabled) of every binding the footer and the palette offer on a screen.
KeyState = tuple[tuple[str, bool], ...]


def offered_keys(screen: Screen[Any]) -> KeyState:
    """What the footer shows now: the screen's active bindings, each enabled or dimmed."""
    return tuple((key, active.enabled) for key, active in screen.active_bindings.items())


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

    footer_keys: reactive[KeyState] = reactive((), repaint=False, init=False, bindings=True)
    """The keys offered, from ``check_action``; Textual redraws the footer when they change.

    A screen sets it (``recheck_keys``) after anything its ``check_action`` reads has
    moved: the highlighted row, a state, a secret in memory. The footer is rebuilt
    only when a key appears, disappears or is dimmed, not on every cursor move (a
    rebuild mounts a widget per key: the bulk of a filter keystroke's cost at
    10,000 credentials)."""

    @property
    def gk(self) -> GlasskeyApp:
        return cast("GlasskeyApp", self.app)

    def recheck_keys(self) -> None:
        self.footer_keys = offered_keys(self)

    def notify_rotation(self, result: RotationResult, *, failed: str, done: str,
                        title: str) -> None:
        """Say how a rotation the user started ended: a failure loudly, as
        ROTATION-FAILED with the core's sentence; else ``done`` under ``title``.
        Both texts follow the credential's name."""
        if result.outcome == "failed":
            self.gk.notify(f"{result.credential}{failed}: {result.message}",
                           title="ROTATION-FAILED", severity="error", markup=False)
        else:
            self.gk.notify(f"{result.credential}{done}", title=title, markup=False)

    def on_screen_resume(self) -> None:
        self.gk.call_after_refresh(self.gk._fit_footers)
        if self.ready:
            self.refresh_view()


class GlasskeyModal(ModalScreen[ResultT], LiveView):
    """A modal of the app, dismissed with a ``ResultT`` (or ``None`` on escape)."""

    @property
    def gk(self) -> GlasskeyApp:
        return cast("GlasskeyApp", self.app)

    def on_screen_resume(self) -> None:
        self.gk.call_after_refresh(self.gk._fit_footers)
