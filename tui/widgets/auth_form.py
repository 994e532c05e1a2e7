"""Operator + passphrase + TOTP, with the Argon2id work in a thread and a spinner.

Used by the unlock screen and by the "countersign here" / step-up modals. The
form runs a caller-supplied ``action(name, passphrase, code)`` (an unlock, or
an unlock followed by an approval) in a thread worker so the derivation never
freezes the screen, and shows a failure as the one sentence the core gave
(which never says which factor was wrong).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, LoadingIndicator, OptionList, Static
from textual.widgets.option_list import Option

#: action(operator name, passphrase, TOTP code) -> result, run in a thread.
AuthAction = Callable[[str, str, str], Any]


class AuthForm(Vertical):
    """Pick an operator, type the passphrase and the TOTP code; Enter submits."""

    class Succeeded(Message):
        """The action returned; ``result`` is what it returned."""

        def __init__(self, form: AuthForm, name: str, result: Any) -> None:
            super().__init__()
            self.form = form
            self.name = name
            self.result = result

        @property
        def control(self) -> AuthForm:
            return self.form

    def __init__(self, operators: Sequence[tuple[str, str, bool]], action: AuthAction, *,
                 busy_text: str = "Deriving the key (Argon2id)…",
                 id: str | None = None, classes: str | None = None) -> None:
        """``operators``: (name, description, enabled) in display order."""
        super().__init__(id=id, classes=classes)
        self._operators = list(operators)
        self._action = action
        self._busy_text = busy_text
        self._busy = False

    def compose(self) -> ComposeResult:
        options = [
            Option(Text.assemble((f"{name:<12}", "bold"), f" {desc}"), id=name,
                   disabled=not enabled)
            for name, desc, enabled in self._operators
        ]
        with Horizontal(classes="auth-row"):
            yield Label("Operator", classes="auth-label")
            yield OptionList(*options, id="auth-operator", compact=True)
        with Horizontal(classes="auth-row"):
            yield Label("Passphrase", classes="auth-label")
            yield Input(password=True, id="auth-passphrase", compact=True,
                        placeholder="passphrase")
        with Horizontal(classes="auth-row"):
            yield Label("TOTP code", classes="auth-label")
            yield Input(id="auth-totp", compact=True, restrict=r"[0-9 ]*", max_length=7,
                        placeholder="6 digits")
        with Horizontal(id="auth-busy"):
            yield LoadingIndicator()
            yield Label(self._busy_text)
        yield Static("", id="auth-error", markup=False)

    def on_mount(self) -> None:
        ol = self.query_one("#auth-operator", OptionList)
        ol.styles.height = max(1, min(6, len(self._operators)))
        ol.set_class(len(self._operators) <= 6, "-fits")
        first = next((i for i, (_n, _d, ok) in enumerate(self._operators) if ok), None)
        if first is not None:
            ol.highlighted = first
        self.query_one("#auth-busy").display = False
        if len(self._operators) == 1:
            ol.disabled = True
            ol.can_focus = False

    def focus_first(self) -> None:
        """Focus the operator list, or the passphrase when there is one choice."""
        ol = self.query_one("#auth-operator", OptionList)
        if len(self._operators) == 1:
            self.screen.set_focus(self.query_one("#auth-passphrase", Input))
        else:
            self.screen.set_focus(ol)

    @property
    def operator(self) -> str | None:
        ol = self.query_one("#auth-operator", OptionList)
        if ol.highlighted is None:
            return None
        option = ol.get_option_at_index(ol.highlighted)
        return None if option.disabled else option.id

    def select_operator(self, name: str) -> None:
        ol = self.query_one("#auth-operator", OptionList)
        ol.highlighted = ol.get_option_index(name)

    # -- keyboard flow ----------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#auth-operator")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.screen.set_focus(self.query_one("#auth-passphrase", Input))

    @on(Input.Submitted, "#auth-passphrase")
    def _passphrase_done(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value:
            # The unlock habit is "Enter (choose yourself), passphrase, Enter, code". With
            # one operator to choose the form starts in the passphrase; that first Enter
            # must not carry the passphrase's keys on into the code field.
            return
        if self._code() and len(self._code()) == 6:
            self.submit()
        else:
            self.screen.set_focus(self.query_one("#auth-totp", Input))

    @on(Input.Submitted, "#auth-totp")
    def _code_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    @on(Input.Changed, "#auth-totp")
    def _code_typed(self, event: Input.Changed) -> None:
        event.stop()
        # Six digits and everything else filled in: go, no extra Enter needed.
        if len(self._code()) == 6 and self._passphrase() and self.operator:
            self.submit()

    @on(Input.Changed, "#auth-passphrase")
    def _passphrase_typed(self, event: Input.Changed) -> None:
        event.stop()

    def _code(self) -> str:
        return self.query_one("#auth-totp", Input).value.replace(" ", "")

    def _passphrase(self) -> str:
        return self.query_one("#auth-passphrase", Input).value

    # -- submitting -----------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        error = self.query_one("#auth-error", Static)
        error.update(message)
        error.set_class(bool(message), "-shown")

    def submit(self) -> None:
        if self._busy:
            return
        name = self.operator
        if name is None:
            self.show_error("Choose an operator first.")
            self.screen.set_focus(self.query_one("#auth-operator"))
            return
        passphrase = self._passphrase()
        if not passphrase:
            self.show_error("Type the passphrase.")
            self.screen.set_focus(self.query_one("#auth-passphrase"))
            return
        code = self._code()
        if len(code) != 6:
            self.show_error("Type the 6-digit TOTP code from the authenticator.")
            self.screen.set_focus(self.query_one("#auth-totp"))
            return
        self.show_error("")
        self._set_busy(True)
        action = self._action
        run_vault_call(self, "auth", lambda: (name, action(name, passphrase, code)))

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.query_one("#auth-busy").display = busy
        for widget in self.query(Input):
            widget.disabled = busy
        if len(self._operators) > 1:
            self.query_one("#auth-operator").disabled = busy

    @on(Failed)
    def _failed(self, event: Failed) -> None:
        event.stop()
        self._set_busy(False)
        self.show_error(event.sentence)
        self.query_one("#auth-passphrase", Input).value = ""
        self.query_one("#auth-totp", Input).value = ""
        self.screen.set_focus(self.query_one("#auth-passphrase", Input))

    @on(Done)
    def _succeeded(self, event: Done[tuple[str, Any]]) -> None:
        event.stop()
        name, result = event.result
        self._set_busy(False)
        self.query_one("#auth-passphrase", Input).value = ""
        self.query_one("#auth-totp", Input).value = ""
        self.post_message(self.Succeeded(self, name, result))
