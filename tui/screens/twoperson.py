"""Two people, one keyboard, one long job: a second operator authenticates, then it runs.

The pattern of "countersign here" for the admin work that re-seals every data
key (issuing the emergency kit, removing or enrolling an operator): the
second operator types their passphrase and TOTP code in this modal (Argon2id
in the form's worker), the job then runs in a thread worker with a progress
bar fed through ``call_from_thread``, and the modal dismisses with the job's
result. The second operator's session lives only inside the job and is
forgotten when the modal closes. A failure stays on the modal as the core's
one sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from glasskey.core.api import Session
from glasskey.tui.screens.base import GlasskeyModal
from glasskey.tui.widgets.auth_form import AuthForm
from glasskey.tui.widgets.demo_panel import DemoPanel
from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Footer, ProgressBar, Static

#: progress(done, total), called from the job's thread.
Progress = Callable[[int, int], None]
#: job(second operator's session, progress) -> result, run in a thread.
Job = Callable[[Session, Progress], Any]


class Progressing(Vertical):
    """A labelled progress bar; ``advance`` is safe to call from a worker thread."""

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="progressing")
        self._label = label

    def compose(self) -> ComposeResult:
        yield Static(self._label, classes="progress-label", markup=False)
        yield ProgressBar(total=None, show_eta=False, classes="progress-bar")

    def set_progress(self, done: int, total: int) -> None:
        self.query_one(ProgressBar).update(total=max(total, 1), progress=done)

    def thread_progress(self, done: int, total: int) -> None:
        """The ``progress`` callback for the core, from a worker thread."""
        self.app.call_from_thread(self.set_progress, done, total)


class TwoPersonModal(GlasskeyModal[Any]):
    """A second operator authenticates; ``job`` runs with a progress bar; dismisses with it."""

    AUTO_FOCUS = ""

    running: reactive[bool] = reactive(False, repaint=False, init=False, bindings=True)
    """The job runs: it cannot be stopped half-way (it runs in one transaction)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Authenticate", id="twoperson.submit",
                tooltip="The second operator authenticates (six digits do the same)"),
        Binding("escape", "cancel", "Cancel", id="twoperson.cancel"),
    ]

    def __init__(self, title: str, explanation: str, job: Job, *, working: str,
                 exclude: tuple[str, ...] = (), admins_only: bool = False,
                 tone: str = "warn") -> None:
        super().__init__()
        self.title_text = title
        self.explanation = explanation
        self.job = job
        self.working = working
        self.exclude = exclude
        self.admins_only = admins_only
        self.tone = tone

    def _eligible(self) -> list[tuple[str, str, bool]]:
        me = self.gk.session.name if self.gk.session else ""
        out = []
        for op in self.gk.vault.operators():
            if op.name == me or op.name in self.exclude or op.status == "removed":
                continue
            if self.admins_only and not op.has("admin"):
                continue
            out.append((op.name, ", ".join(op.roles) + ("" if op.active else f" ({op.status})"),
                        op.active))
        return out

    def compose(self) -> ComposeResult:
        eligible = self._eligible()
        with Vertical(id="twoperson-box", classes=f"dialog -{self.tone}"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.explanation, id="twoperson-explanation", markup=False)
            yield Static("A second operator authenticates here (operator, passphrase, TOTP); "
                         "their keys are used for this job only and forgotten at once.",
                         classes="dialog-help", markup=False)
            if eligible:
                yield AuthForm(eligible, self._authenticate,
                               busy_text="Authenticating (Argon2id)…", id="twoperson-form")
            else:
                yield Static("No other active operator can take part.", classes="form-error",
                             markup=False)
            yield Progressing(self.working, id="twoperson-progress")
            yield Static("", id="twoperson-error", classes="form-error", markup=False)
            if self.gk.demo is not None:
                names = {e[0] for e in eligible}
                ops = [o for o in self.gk.demo.operators if o[0] in names]
                if ops:
                    yield DemoPanel(ops, self.gk.now, compact=True, id="twoperson-demo")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#twoperson-progress").display = False
        forms = self.query(AuthForm)
        if forms:
            forms.first().focus_first()

    def _authenticate(self, name: str, passphrase: str, code: str) -> Session:
        # The form's thread worker: Argon2id.
        return self.gk.vault.unlock(name, passphrase, code)

    @on(AuthForm.Succeeded, "#twoperson-form")
    def _second_is_here(self, event: AuthForm.Succeeded) -> None:
        event.stop()
        self.running = True
        self.query_one(AuthForm).display = False
        self.query_one("#twoperson-progress").display = True
        second: Session = event.result
        progress = self.query_one("#twoperson-progress", Progressing).thread_progress
        job = self.job
        run_vault_call(self, "twoperson", lambda: job(second, progress))

    @on(Failed)
    def _failed(self, event: Failed) -> None:
        self.running = False
        self.query_one("#twoperson-progress").display = False
        self.query_one("#twoperson-error", Static).update(event.sentence + "  (esc closes)")

    @on(Done)
    def _finished(self, event: Done[Any]) -> None:
        self.running = False
        self.dismiss(event.result)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("submit", "cancel"):
            # The job cannot be stopped half-way (it runs in one transaction).
            return not self.running
        return True

    def action_submit(self) -> None:
        forms = self.query(AuthForm)
        if forms and forms.first().display:
            forms.first().submit()

    def action_cancel(self) -> None:
        self.dismiss(None)
