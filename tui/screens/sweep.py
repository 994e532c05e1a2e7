"""The leaver sweep: rotate every credential a removed operator could have reached.

Offered right after a removal: the re-split makes the leaver's old shares
useless for the *current* keys, but a value they could have decrypted before
stays valid until it is rotated. ``enter`` rotates them all
(``vault.rotate_many``, in a thread worker, with a progress bar) and shows a
summary; ``esc`` leaves it for later (``glasskey rotate``).
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import RotationResult
from glasskey.tui.screens.base import GlasskeyModal
from glasskey.tui.screens.twoperson import Progressing
from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Footer, Static


def sweep_summary(results: list[RotationResult]) -> str:
    done = sum(1 for r in results if r.outcome == "committed")
    lines = [f"{done} of {len(results)} rotated."]
    for r in results:
        if r.outcome != "committed":
            lines.append(f"  {r.credential}: {r.outcome}" + (f": {r.message}" if r.message
                                                              else ""))
    return "\n".join(lines)


class SweepModal(GlasskeyModal[list[RotationResult]]):
    """Offer, run and summarise the leaver sweep; dismisses with the results (or None)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,ctrl+s", "start", "Sweep now", key_display="enter", id="sweep.start",
                tooltip="Rotate every credential the leaver could reach"),
        Binding("escape", "close", "Later", id="sweep.close",
                tooltip="Close; rotate them later with 'glasskey rotate'"),
    ]

    running: reactive[bool] = reactive(False, repaint=False, init=False, bindings=True)
    """The sweep runs: it cannot be left half-way (start and close are off)."""

    def __init__(self, leaver: str, names: list[str]) -> None:
        super().__init__()
        self.leaver = leaver
        self.names = names
        self.results: list[RotationResult] | None = None

    def compose(self) -> ComposeResult:
        n = len(self.names)
        shown = ", ".join(self.names[:8]) + (f" and {n - 8} more" if n > 8 else "")
        with Vertical(id="sweep-box", classes="dialog -warn"):
            yield Static(f"{self.leaver} is removed: every data key was re-split without them",
                         classes="dialog-title", markup=False)
            if n:
                text = (f"{n} credential(s) they could reach: {shown}.\n"
                        "A value they saw before is still valid until it is rotated. "
                        "Enter rotates them all now (the leaver sweep); esc leaves it for "
                        "later.")
            else:
                text = "They could reach no credential: nothing needs rotating."
            yield Static(text, id="sweep-text", markup=False)
            yield Progressing("Rotating…", id="sweep-progress")
            yield Static("", id="sweep-summary", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#sweep-progress").display = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return bool(self.names) and not self.running and self.results is None
        if action == "close":
            return not self.running
        return True

    def action_start(self) -> None:
        session = self.gk.session
        if session is None or self.running or self.results is not None:
            return
        self.running = True
        self.query_one("#sweep-progress").display = True
        progress = self.query_one("#sweep-progress", Progressing).thread_progress
        vault, names = self.gk.vault, self.names
        run_vault_call(self, "leaver-sweep", lambda: vault.rotate_many(session, names, progress))

    @on(Done)
    def _swept(self, event: Done[list[RotationResult]]) -> None:
        self.results = event.result
        self.running = False
        self.query_one("#sweep-summary", Static).update(
            "Leaver sweep: " + sweep_summary(event.result) + "\n(esc closes)")
        self.gk.poll_vault()

    @on(Failed)
    def _stopped(self, event: Failed) -> None:
        self.running = False
        summary = self.query_one("#sweep-summary", Static)
        summary.update(f"The sweep stopped: {event.sentence}")
        summary.add_class("form-error")
        self.gk.poll_vault()

    def action_close(self) -> None:
        self.dismiss(self.results)
