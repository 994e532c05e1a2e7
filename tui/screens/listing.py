"""A screen that lists things in a table: approvals, reviews, onboarding, operators, alerts.

Each reads its items from the vault (``load``), shows them as rows under a
one-line summary, redraws itself when the vault changes, offers keys for the
highlighted row and opens it on ``enter``; ``esc`` goes back. The subclasses
say only what differs: the columns, the rows, the summary and the actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from glasskey.core.api import GlasskeyError, Session
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.vtable import Column, Row, VirtualTable
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Static

ItemT = TypeVar("ItemT")


class ListScreen(GlasskeyScreen, Generic[ItemT]):
    """Items by row key in a ``VirtualTable``; ``current()`` is the highlighted one."""

    #: The prefix of the screen's ids: ``{LIST}-summary`` and ``{LIST}-table``.
    LIST: ClassVar[str] = "list"
    COLUMNS: ClassVar[Sequence[Column]] = ()
    #: What the table says when there is nothing to list.
    EMPTY: ClassVar[str] = "Nothing to show."

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """The table has the focus, and ``esc`` goes back (id ``{LIST}.back``, last in
        the footer): added before Textual's own ``__init_subclass__`` merges the bindings."""
        cls.BINDINGS = [*cls.__dict__.get("BINDINGS", ()),
                        Binding("escape", "back", "Back", id=f"{cls.LIST}.back")]
        super().__init_subclass__(**kwargs)
        cls.AUTO_FOCUS = f"#{cls.LIST}-table"

    def __init__(self) -> None:
        super().__init__()
        #: The items shown, by row key, in display order.
        self.items: dict[str, ItemT] = {}

    # -- what a list says -------------------------------------------------------------------
    def load(self) -> dict[str, ItemT]:
        """Read the items from the vault, by row key, in display order."""
        raise NotImplementedError

    def rows(self) -> Iterable[Row]:
        raise NotImplementedError

    def summary(self) -> str | Content:
        """The line above the table."""
        return ""

    def compose_below(self) -> ComposeResult:
        """Anything between the table and the footer (a detail line)."""
        yield from ()

    def open(self, key: str) -> None:
        """``enter`` on the row ``key``."""

    def highlighted(self) -> None:
        """The cursor moved, or the rows changed under it: the keys may have changed."""
        self.recheck_keys()

    # -- the frame ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        yield Static("", id=f"{self.LIST}-summary", markup=False)
        yield VirtualTable(self.COLUMNS, id=f"{self.LIST}-table", empty_text=self.EMPTY)
        yield from self.compose_below()
        yield Footer(compact=True)

    @property
    def table(self) -> VirtualTable:
        return self.query_one(f"#{self.LIST}-table", VirtualTable)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()

    def refresh_view(self) -> None:
        try:
            self.items = self.load()
        except GlasskeyError as exc:
            self.gk.notify(str(exc), severity="error", markup=False)
            return
        self.paint()

    def paint(self) -> None:
        self.table.set_rows(self.rows())
        self.query_one(f"#{self.LIST}-summary", Static).update(self.summary())
        self.highlighted()

    @property
    def me(self) -> str:
        """The signed-in operator's name ('' when locked): their own rows are dimmed."""
        session = self.gk.session
        return session.name if session else ""

    def approver_and_current(self) -> tuple[Session, ItemT] | None:
        """The session and the highlighted item when an approver could act on it; None
        (the key shown dimmed) when locked, without the role, or with nothing highlighted."""
        session = self.gk.session
        current = self.current() if self.is_mounted else None
        if session is None or not session.has("approver") or current is None:
            return None
        return session, current

    def current(self) -> ItemT | None:
        try:
            key = self.table.cursor_key
        except NoMatches:  # composing, or torn down (bindings are checked then too)
            return None
        return self.items.get(key) if key else None

    @on(VirtualTable.Highlighted)
    def _moved(self, event: VirtualTable.Highlighted) -> None:
        self.highlighted()

    @on(VirtualTable.Selected)
    def _selected(self, event: VirtualTable.Selected) -> None:
        event.stop()
        self.open(event.key)

    def action_back(self) -> None:
        self.gk.pop_screen()
