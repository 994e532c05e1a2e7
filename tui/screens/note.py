"""One line of text and one core call: a review's note, a suspension's reason.

The modal runs ``action(text)`` in the operator's own session when submitted
and dismisses with its result; a refusal from the core stays in the modal as
the one sentence the core gave (the modal stays open: ``esc`` leaves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from glasskey.core.errors import GlasskeyError
from glasskey.core.text import printable
from glasskey.tui.screens.base import GlasskeyModal
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Label, Static


class NoteModal(GlasskeyModal):
    """Ask for a note (required or optional), run ``action(note)``, dismiss with the result."""

    AUTO_FOCUS = "#note-text"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Submit", id="note.submit",
                tooltip="Submit (Enter in the field does the same)"),
        Binding("escape", "cancel", "Cancel", id="note.cancel"),
    ]

    def __init__(self, title: str, details: str, action: Callable[[str], Any], *,
                 label: str = "Note", placeholder: str = "", required: str = "",
                 tone: str = "") -> None:
        """``required``: the sentence shown when the note is empty ('' = optional).

        ``tone``: ``warn`` or ``error`` for a louder frame.
        """
        super().__init__()
        self.title_text = title
        self.details = details
        self.action = action
        self.label = label
        self.placeholder = placeholder
        self.required = required
        self.tone = tone

    def compose(self) -> ComposeResult:
        with Vertical(id="note-box", classes=f"dialog {'-' + self.tone if self.tone else ''}"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(printable(self.details, keep_newlines=True), id="note-details",
                         markup=False)
            with Horizontal(classes="form-row"):
                yield Label(self.label, classes="form-label")
                yield Input(id="note-text", compact=True, placeholder=self.placeholder)
            yield Static("", id="note-error", classes="form-error", markup=False)
        yield Footer(compact=True)

    @on(Input.Submitted, "#note-text")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def _error(self, message: str) -> None:
        self.query_one("#note-error", Static).update(message)

    def action_submit(self) -> None:
        if self.gk.session is None:
            self._error("The vault is locked.")
            return
        text = self.query_one("#note-text", Input).value.strip()
        if self.required and not text:
            self._error(self.required)
            return
        try:
            result = self.action(text)
        except GlasskeyError as exc:
            self._error(str(exc))
            return
        self.dismiss(result if result is not None else True)

    def action_cancel(self) -> None:
        self.dismiss(None)
