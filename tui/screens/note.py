"""One line of text and one core call: a review's note, a lease extension.

The modal runs ``action(text)`` in the operator's own session when submitted
and dismisses with its result; a refusal from the core stays in the modal as
the one sentence the core gave (the modal stays open: ``esc`` leaves).
"""

from __future__ import annotations

from collections.abc import Callable

from glasskey.core.api import Session, printable
from glasskey.tui.screens.base import ResultT
from glasskey.tui.screens.form import FormModal, Invalid, form_row
from textual.app import ComposeResult
from textual.widgets import Input, Static


class NoteModal(FormModal[ResultT]):
    """Ask for a note (required or optional), run ``action(note)``, dismiss with the result."""

    FORM = "note"
    FIELDS = ("note-text",)
    SUBMIT = ("Submit", "Submit (Enter in the field does the same)")

    def __init__(self, title: str, details: str, action: Callable[[str], ResultT], *,
                 label: str = "Note", placeholder: str = "", required: str = "",
                 tone: str = "") -> None:
        """``required``: the sentence shown when the note is empty ('' = optional).

        ``tone``: ``warn`` or ``error`` for a louder frame.
        """
        super().__init__(tone=tone)
        self.title_text = title
        self.details = details
        self.action = action
        self.label = label
        self.placeholder = placeholder
        self.required = required

    def compose_form(self) -> ComposeResult:
        yield Static(self.title_text, classes="dialog-title", markup=False)
        yield Static(printable(self.details, keep_newlines=True), id="note-details",
                     markup=False)
        yield form_row(self.label, Input(id="note-text", compact=True,
                                         placeholder=self.placeholder))

    def submit(self, session: Session) -> ResultT:
        text = self.value("note-text")
        if self.required and not text:
            raise Invalid(self.required)
        return self.action(text)
