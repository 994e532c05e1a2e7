"""Where a secret value meets the screen: masked unless explicitly revealed.

The value is rendered as plain text (``markup=False``: a generated value like
``p@ss[red]w0rd[/]`` must show as typed, not restyle the screen) and the
widget refuses text selection, so the screen's copy-selection shortcut can
never lift it. The widget holds the ``SecretValue`` wrapper, not the text:
``str``/``repr`` of the widget's state shows ``<secret>``.
"""

from __future__ import annotations

from glasskey.core.api import SecretValue
from textual.reactive import reactive
from textual.widgets import Static

MASK = "\u25cf" * 16


class SecretView(Static):
    """Shows a secret masked (``MASK``) until ``shown`` is set."""

    ALLOW_SELECT = False

    shown: reactive[bool] = reactive(False)
    """Whether the plaintext is on screen (the explicit reveal)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", markup=False, id=id, classes=classes)
        self._secret: SecretValue | None = None
        self._placeholder = "not revealed yet"

    @property
    def has_secret(self) -> bool:
        return self._secret is not None

    def set_secret(self, secret: SecretValue | None, placeholder: str = "") -> None:
        """Hold ``secret`` (masked unless ``shown``); ``None`` drops it."""
        self._secret = secret
        if placeholder:
            self._placeholder = placeholder
        if secret is None:
            self.shown = False
        self._paint()

    def watch_shown(self, shown: bool) -> None:
        self.set_class(shown and self._secret is not None, "-shown")
        self._paint()

    def _paint(self) -> None:
        if self._secret is None:
            self.update(self._placeholder)
            self.set_class(True, "-empty")
            return
        self.set_class(False, "-empty")
        # The one place a secret's text reaches the screen, after the explicit reveal.
        self.update(self._secret.reveal() if self.shown else MASK)
