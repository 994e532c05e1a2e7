"""A dialog of one-line fields whose submit makes one core call in the operator's session.

Deny, step-up, request, note, issue-onboarding and enrol all work alike: a
framed box (title, what is asked, fields, an error line), ``ctrl+s`` submits,
``esc`` dismisses with ``None``. ``FormModal.submit`` checks the fields and
calls the core; it raises ``Invalid`` for a field to fix, and a refusal from
the core stays on the dialog as the core's one sentence (the dialog stays
open: ``esc`` leaves). A locked vault is said before anything is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, ClassVar

from glasskey.core.api import GlasskeyError, Session
from glasskey.tui.screens.base import GlasskeyModal, ResultT
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Footer, Input, Label, Static


class Enter(StrEnum):
    """What Enter in a field of a form does."""

    #: Submit the form.
    SUBMIT = "submit"
    #: Move to the next field; Enter in the last one submits.
    NEXT = "next"
    #: Move to the next empty field (or the first empty one); a complete form submits.
    NEXT_EMPTY = "next-empty"


class Invalid(Exception):
    """A field to fix before anything is sent: the sentence, and the field to focus."""

    def __init__(self, sentence: str, field: str = "") -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.field = field


def next_empty_field(fields: Sequence[str], current: str,
                     value_of: Callable[[str], str]) -> str | None:
    """The field Enter in ``current`` moves to: the next empty one, else the first empty
    one; ``None`` when every field is filled in (or ``current`` is not one of them)."""
    empty = [f for f in fields if not value_of(f)]
    if current not in fields or not empty:
        return None
    after = [f for f in fields[fields.index(current) + 1:] if f in empty]
    return (after or empty)[0]


def form_row(label: str, field: Widget, *after: Widget) -> Horizontal:
    """A labelled row: ``label``, the field, then anything shown after it (a maximum)."""
    return Horizontal(Label(label, classes="form-label"), field, *after, classes="form-row")


class FormModal(GlasskeyModal[ResultT]):
    """The frame, the keys and the submit loop of a form; subclasses say what is asked."""

    #: The prefix of the dialog's ids: ``{FORM}-box`` and ``{FORM}-error``.
    FORM: ClassVar[str] = "form"
    #: The input ids in reading order.
    FIELDS: ClassVar[tuple[str, ...]] = ()
    ENTER: ClassVar[Enter] = Enter.SUBMIT
    #: What the dialog says when the vault was locked meanwhile.
    LOCKED: ClassVar[str] = "The vault is locked."
    #: Whether ``value`` strips the text (not for a passphrase).
    STRIP: ClassVar[bool] = True
    #: The footer's submit key (``ctrl+s``): its label and its tooltip.
    SUBMIT: ClassVar[tuple[str, str]] = ("Submit", "")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every form's keys: ``ctrl+s`` submits, ``esc`` cancels (ids ``{FORM}.submit``,
        ``{FORM}.cancel``); the first field has the focus. Set before Textual's own
        ``__init_subclass__`` merges the bindings."""
        label, tooltip = cls.SUBMIT
        cls.BINDINGS = [
            Binding("ctrl+s", "submit", label, id=f"{cls.FORM}.submit", tooltip=tooltip),
            Binding("escape", "cancel", "Cancel", id=f"{cls.FORM}.cancel"),
        ]
        if cls.FIELDS:
            cls.AUTO_FOCUS = f"#{cls.FIELDS[0]}"
        super().__init_subclass__(**kwargs)

    def __init__(self, *, tone: str = "") -> None:
        """``tone``: ``warn`` or ``error`` for a louder frame."""
        super().__init__()
        self.tone = tone
        #: Set while a submit runs and kept once it succeeded: nothing is sent twice.
        self._submitting = False

    # -- what a form says and asks ----------------------------------------------------------
    def compose_form(self) -> ComposeResult:
        """The title, the explanation and the fields."""
        yield from ()

    def compose_after(self) -> ComposeResult:
        """Anything below the error line (a demo panel)."""
        yield from ()

    def submit(self, session: Session) -> ResultT:
        """Check the fields (raise ``Invalid``) and make the core call; its result
        dismisses the dialog. A ``GlasskeyError`` is shown and the dialog stays."""
        raise NotImplementedError

    def refused(self) -> None:
        """The core refused (its sentence is shown): clear what must be typed again."""

    # -- the frame ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        classes = "dialog" + (f" -{self.tone}" if self.tone else "")
        with Vertical(id=f"{self.FORM}-box", classes=classes):
            yield from self.compose_form()
            yield Static("", id=f"{self.FORM}-error", classes="form-error", markup=False)
            yield from self.compose_after()
        yield Footer(compact=True)

    def field(self, wid: str) -> Input:
        return self.query_one(f"#{wid}", Input)

    def value(self, wid: str) -> str:
        text = self.field(wid).value
        return text.strip() if self.STRIP else text

    def show_error(self, message: str) -> None:
        self.query_one(f"#{self.FORM}-error", Static).update(message)

    def focus_field(self, wid: str) -> None:
        self.screen.set_focus(self.query_one(f"#{wid}"))

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self.entered(event)

    def entered(self, event: Input.Submitted) -> None:
        """Enter in a field: move on or submit, as ``ENTER`` says."""
        wid = event.input.id or ""
        if self.ENTER == Enter.NEXT and wid in self.FIELDS[:-1]:
            # Enter in the ticket field must not submit with a prefilled duration nobody
            # looked at: only Enter in the last field submits.
            self.focus_field(self.FIELDS[self.FIELDS.index(wid) + 1])
            return
        if self.ENTER == Enter.NEXT_EMPTY:
            target = next_empty_field(self.FIELDS, wid, self.value)
            if target is not None:
                self.focus_field(target)
                return
        self.action_submit()

    def action_submit(self) -> None:
        if self._submitting:
            return
        session = self.gk.session
        if session is None:
            self.show_error(self.LOCKED)
            return
        self._submitting = True
        try:
            result = self.submit(session)
        except Invalid as bad:
            self._submitting = False
            self.show_error(bad.sentence)
            if bad.field:
                self.focus_field(bad.field)
            return
        except GlasskeyError as exc:
            self._submitting = False
            self.show_error(str(exc))
            self.refused()
            return
        self.dismiss(result)  # stays submitting: nothing more is sent from this dialog

    def action_cancel(self) -> None:
        self.dismiss(None)
