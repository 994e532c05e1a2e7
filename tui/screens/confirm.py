"""Ask before a key does something that cannot be undone (y / n).

Check in (rotates the credential), cancel a request, and quitting or locking
while holding a live lease each take one key; typing ``exit`` into the wrong
window must not rotate a credential. ``y`` confirms; ``n`` and ``esc`` leave
everything as it was.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import printable
from glasskey.tui.screens.base import GlasskeyModal
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Static


class ConfirmModal(GlasskeyModal[bool]):
    """A yes/no question; dismisses with ``True`` only on ``y``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", key_display="n", id="confirm.no"),
    ]

    def __init__(self, question: str, details: str = "", *, tone: str = "warn") -> None:
        super().__init__()
        self.question = question
        self.details = details
        self.tone = tone

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes=f"dialog -{self.tone}"):
            yield Static(printable(self.question), classes="dialog-title", markup=False)
            if self.details:
                yield Static(printable(self.details, keep_newlines=True),
                             classes="dialog-help", markup=False)
            yield Static("y  yes    n  no", id="confirm-keys", markup=False)
        yield Footer(compact=True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
