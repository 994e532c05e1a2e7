"""A screen holding one secret: fetched once (audited), masked until ``r``, copied with ``c``.

The reveal screen (a checkout's secret) and the apply screen (a value to set
by hand) share it. The first reveal or copy makes the audited vault call;
after that the value comes from the app's memory (``app.secrets``), never
from a second call. Copying claims the value without showing it, and the
line under the box says while the clipboard holds it.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import GlasskeyError, SecretValue, Session
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.widgets.secret import SecretView
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class SecretScreen(GlasskeyScreen):
    """The secret box, its hint and the clipboard line, and the ``reveal``/``copy`` actions."""

    #: The title of a failed fetch's notification.
    NOT_FETCHED: ClassVar[str] = "Not revealed"

    def __init__(self, secret_key: str) -> None:
        """``secret_key``: where the value is kept in ``app.secrets``."""
        super().__init__()
        self.secret_key = secret_key

    # -- what differs -----------------------------------------------------------------------
    def fetch_secret(self, session: Session) -> SecretValue:
        """The audited vault call that hands the value over (once)."""
        raise NotImplementedError

    def fetch_ended(self) -> None:
        """After a fetch, done or refused: the state shown may have moved."""

    def sealed_text(self) -> str:
        """What the box says while no value is held."""
        return "sealed"

    # -- the box --------------------------------------------------------------------------
    def compose_secret(self, title: str) -> ComposeResult:
        with Vertical(id="secret-box") as box:
            box.border_title = title
            yield SecretView(id="secret")
            yield Static("", id="secret-hint", markup=False)
        yield Static("", id="clipboard-status", markup=False)

    @property
    def held(self) -> bool:
        """Whether the value is in memory (fetched in this session)."""
        return self.secret_key in self.gk.secrets

    def paint_secret(self) -> None:
        view = self.query_one("#secret", SecretView)
        secret = self.gk.secrets.get(self.secret_key)
        hint = ""
        if secret is not None:
            view.set_secret(secret)
            hint = ("r hides it again · c copies it" if view.shown
                    else "r shows it · c copies it without showing it")
        else:
            view.set_secret(None, self.sealed_text())
        hint_widget = self.query_one("#secret-hint", Static)
        hint_widget.update(hint)
        hint_widget.display = bool(hint)
        self.paint_clipboard()

    def paint_clipboard(self) -> None:
        self.query_one("#clipboard-status", Static).update(
            self.gk.clipboard_status(self.secret_key))

    def _claim(self) -> bool:
        """Fetch once; later calls use the value in memory."""
        if self.held:
            return True
        session = self.gk.session
        if session is None:
            return False
        try:
            secret = self.fetch_secret(session)
        except GlasskeyError as exc:
            self.gk.notify(str(exc), title=self.NOT_FETCHED, severity="error", markup=False)
            self.fetch_ended()
            return False
        self.gk.secrets[self.secret_key] = secret
        self.fetch_ended()
        return True

    def action_reveal(self) -> None:
        view = self.query_one("#secret", SecretView)
        if self.held:
            view.shown = not view.shown
        elif self._claim():
            view.shown = True
        self.paint_secret()

    def action_copy(self) -> None:
        if self._claim():
            self.gk.copy_secret(self.secret_key)
            self.paint_secret()
            self.tick()
