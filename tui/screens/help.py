"""Help: every key of every screen, generated from the bindings themselves."""

from __future__ import annotations

from typing import ClassVar

from glasskey.tui.screens.base import GlasskeyModal
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static


def key_label(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    names = {"slash": "/", "question_mark": "?", "escape": "esc", "enter": "enter"}
    keys = [names.get(k, k) for k in binding.key.split(",")]
    return ", ".join(k.replace("ctrl+", "^") for k in keys)


def bindings_of(cls: type) -> list[Binding]:
    out = []
    for b in getattr(cls, "BINDINGS", []):
        # Keys kept out of a full footer still have a tooltip: list them too.
        if isinstance(b, Binding) and b.description and (b.show or b.tooltip):
            out.append(b)
    return out


class HelpModal(GlasskeyModal):
    """All screens' keys; ``sections`` is (title, bindings) in reading order."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "Close", key_display="esc",
                id="help.close"),
        Binding("down", "scroll_down", "Scroll", key_display="↓"),
        Binding("up", "scroll_up", "Scroll", key_display="↑", show=False),
    ]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        # A table per section: the key and its name never run into the explanation, and a
        # long explanation wraps under itself (not under the key) at 80 columns.
        parts: list[RenderableType] = []
        for n, (title, bindings) in enumerate(self.sections):
            parts.append(Text(("\n" if n else "") + title, "bold underline"))
            table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
            table.add_column(no_wrap=True, style="bold")
            table.add_column(no_wrap=True)
            table.add_column(style="dim", ratio=1, overflow="fold")
            for b in bindings:
                table.add_row(f" {key_label(b)}", b.description, b.tooltip or "")
            parts.append(table)
        with VerticalScroll(id="help-box", classes="dialog") as box:
            box.border_title = "glasskey keys"
            yield Static(Group(*parts), id="help-text")
        yield Footer(compact=True)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll_down(self) -> None:
        self.query_one("#help-box", VerticalScroll).scroll_down()

    def action_scroll_up(self) -> None:
        self.query_one("#help-box", VerticalScroll).scroll_up()
