"""A virtual table: tens of thousands of rows, only the visible ones rendered.

Textual's ``DataTable`` builds a row object per row and measures every cell,
which takes about a second at 10,000 rows. This Line-API table keeps plain
tuples, filters with one list comprehension over lower-case search keys made
once per row, and renders only the lines on the screen, each row's text laid
out once per column layout. A filter that leaves the scrollbar as it was
repaints the table alone, without a layout of the screen. So filtering
10,000 credentials and repainting costs a few milliseconds. Cells are drawn as
plain text (never parsed as markup): names, reasons and tickets typed by
people cannot restyle the screen.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from glasskey.core.api import printable
from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Column:
    """A column: fixed ``width`` cells, or the flexible one (``width=None``)."""

    label: str
    width: int | None = None
    #: The column is hidden when the table is narrower than this.
    hide_below: int = 0
    min_width: int = 8


@dataclass(frozen=True)
class Row:
    """One row: a key, its cells (plain text) and a style class for the whole row."""

    key: str
    cells: tuple[str, ...]
    style: str = ""
    #: Lower-case text the filter matches against (defaults to the cells).
    haystack: str = ""

    def search_text(self) -> str:
        return self.haystack or " ".join(self.cells).lower()


class VirtualTable(ScrollView, can_focus=True):
    """A keyboard-driven table whose rows are filtered and rendered lazily."""

    ALLOW_SELECT = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "vtable--header",
        "vtable--cursor",
        "vtable--empty",
        "vtable--ok",
        "vtable--dim",
        "vtable--info",
        "vtable--warn",
        "vtable--alert",
    }

    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        overflow-y: auto;
        overflow-x: hidden;
    }
    VirtualTable > .vtable--header { text-style: bold; background: $panel; }
    VirtualTable > .vtable--cursor { background: $block-cursor-blurred-background; }
    VirtualTable:focus > .vtable--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    VirtualTable > .vtable--empty { color: $text-muted; text-style: italic; }
    VirtualTable > .vtable--ok { color: $success; }
    VirtualTable > .vtable--dim { color: $text-muted; }
    VirtualTable > .vtable--info { color: $accent; }
    VirtualTable > .vtable--warn { color: $warning; }
    VirtualTable > .vtable--alert { color: $error; text-style: bold; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)
    """Index of the highlighted row among the visible (filtered) rows."""

    class RowMessage(Message):
        """What happened to which row of which table (``@on`` selectors match the table)."""

        def __init__(self, table: VirtualTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable:
            return self.table

    class Highlighted(RowMessage):
        """The cursor moved to another row (``key`` None: no row is left)."""

    class Selected(RowMessage):
        """Enter (or a click on the highlighted row) chose a row."""

        key: str

        def __init__(self, table: VirtualTable, key: str) -> None:
            super().__init__(table, key)

    def __init__(self, columns: Sequence[Column], *, empty_text: str = "Nothing to show.",
                 name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns: list[Column] = list(columns)
        self.empty_text = empty_text
        self._rows: list[Row] = []
        self._index: dict[str, int] = {}
        self._haystacks: list[str] = []
        self._visible: list[int] = []
        self._needle = ""
        self._last_key: str | None = None
        self._paint_base: Style | None = None
        self._paint_layout: list[tuple[int, int]] | None = None
        #: Each row's text as laid out (by row index), for ``_texts_for``.
        self._texts: dict[int, str] = {}
        self._texts_for: tuple[tuple[tuple[int, int], ...], int] = ((), 0)

    # -- data -----------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        """Rows after filtering."""
        return len(self._visible)

    @property
    def total_count(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[Row]:
        return list(self._rows)

    @property
    def cursor_key(self) -> str | None:
        if 0 <= self.cursor < len(self._visible):
            return self._rows[self._visible[self.cursor]].key
        return None

    def set_rows(self, rows: Iterable[Row]) -> None:
        """Replace every row, keeping the cursor on the same key where possible."""
        keep = self.cursor_key
        self._rows = list(rows)
        self._index = {row.key: i for i, row in enumerate(self._rows)}
        self._haystacks = [row.search_text() for row in self._rows]
        self._texts.clear()
        self._apply_filter(keep)

    def patch_rows(self, rows: Iterable[Row]) -> bool:
        """Replace rows by key (no re-filtering unless a row's text changed)."""
        changed = False
        refilter = False
        for row in rows:
            i = self._index.get(row.key)
            if i is None or self._rows[i] == row:
                continue
            self._rows[i] = row
            self._texts.pop(i, None)
            text = row.search_text()
            if text != self._haystacks[i]:
                self._haystacks[i] = text
                refilter = True
            changed = True
        if refilter and self._needle:
            self._apply_filter(self.cursor_key)
        elif changed:
            self.refresh()
        return changed

    def set_filter(self, text: str) -> None:
        """Show only rows whose text contains every word of ``text`` (case-insensitive)."""
        needle = " ".join(text.lower().split())
        if needle == self._needle:
            return
        self._needle = needle
        visible = self._matches()
        if visible == self._visible:
            return  # another letter, the same rows: nothing to repaint
        self._show(visible, self.cursor_key)

    def _matches(self) -> list[int]:
        """The indices of the rows that match the filter, in order."""
        words = self._needle.split()
        if not words:
            return list(range(len(self._rows)))
        if len(words) == 1:
            w = words[0]
            return [i for i, h in enumerate(self._haystacks) if w in h]
        return [i for i, h in enumerate(self._haystacks) if all(w in h for w in words)]

    def _apply_filter(self, keep: str | None) -> None:
        self._show(self._matches(), keep)

    def _show(self, visible: list[int], keep: str | None) -> None:
        """Show the rows ``visible``, the cursor on ``keep`` if it is among them."""
        self._visible = visible
        self._set_height(len(visible) + 1)
        pos = self._position(keep) if keep is not None else None
        self._set_cursor(pos or 0)
        self.refresh()

    def _position(self, key: str) -> int | None:
        """Where the row ``key`` is among the visible rows (``None``: filtered out)."""
        idx = self._index.get(key)
        if idx is None:
            return None
        pos = bisect_left(self._visible, idx)  # _visible is sorted
        return pos if pos < len(self._visible) and self._visible[pos] == idx else None

    def _set_height(self, lines: int) -> None:
        """The scrollable height (header + visible rows). The screen is laid out again
        only when the scrollbar appears or goes; otherwise the table just repaints."""
        size = Size(self.virtual_size.width, lines)
        if size == self.virtual_size:
            return
        container = self.container_size
        show = lines > container.height  # overflow-y: auto
        if not container or show != self.show_vertical_scrollbar:
            self.virtual_size = size  # a layout: the content region changes width
            if container:
                # Decided now, not in the layout (which would find the scrollbar changed
                # and lay the screen out a second time, a frame later).
                self.show_vertical_scrollbar = show
                self.vertical_scrollbar.display = show
            return
        self.set_reactive(VirtualTable.virtual_size, size)
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.window_virtual_size = lines
        self.scroll_y = self.validate_scroll_y(self.scroll_y)

    def move_to(self, key: str) -> bool:
        """Put the cursor on ``key`` if it is visible."""
        pos = self._position(key)
        if pos is None:
            return False
        self._set_cursor(pos)
        return True

    # -- cursor ---------------------------------------------------------------------------
    def _set_cursor(self, value: int) -> None:
        value = max(0, min(value, len(self._visible) - 1)) if self._visible else 0
        self.cursor = value

    def watch_cursor(self, value: int) -> None:
        self._scroll_to_cursor()
        self.refresh()
        key = self.cursor_key
        if key != self._last_key:
            self._last_key = key
            self.post_message(self.Highlighted(self, key))

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        page = self._page()
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + page:
            self.scroll_to(y=self.cursor - page + 1, animate=False, immediate=True)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(self.virtual_size.width, len(self._visible) + 1)
        self._scroll_to_cursor()

    def action_cursor_up(self) -> None:
        self._set_cursor(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._set_cursor(self.cursor + 1)

    def action_page_up(self) -> None:
        self._set_cursor(self.cursor - self._page())

    def action_page_down(self) -> None:
        self._set_cursor(self.cursor + self._page())

    def action_first(self) -> None:
        self._set_cursor(0)

    def action_last(self) -> None:
        self._set_cursor(len(self._visible) - 1)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = int(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self._visible):
            if row == self.cursor and event.chain >= 2:
                self.action_select()
            self._set_cursor(row)

    # -- rendering ------------------------------------------------------------------------
    def _layout(self, width: int) -> list[tuple[int, int]]:
        """(column index, width) of every shown column at this table width."""
        shown = [i for i, c in enumerate(self.columns) if width >= c.hide_below]
        fixed = sum(self.columns[i].width or 0 for i in shown)
        gaps = max(0, len(shown) - 1)
        flex = [i for i in shown if self.columns[i].width is None]
        spare = max(0, width - fixed - gaps - 1)
        out = []
        for i in shown:
            col = self.columns[i]
            w = col.width if col.width is not None else max(
                col.min_width, spare // max(1, len(flex)))
            out.append((i, w))
        return out

    def _text(self, cells: Sequence[str], layout: list[tuple[int, int]], width: int) -> str:
        """One line of cells, each cut or padded to its column, the line to ``width``."""
        parts: list[str] = [" "]
        for n, (i, w) in enumerate(layout):
            text = cells[i] if i < len(cells) else ""
            # Cells hold text others typed: controls are shown escaped, never sent raw.
            text = printable(text)
            if cell_len(text) > w:
                text = set_cell_size(text, max(0, w - 1)) + "…"
            parts.append(set_cell_size(text, w))
            if n < len(layout) - 1:
                parts.append(" ")
        return set_cell_size("".join(parts), width)

    def _row_text(self, index: int, layout: list[tuple[int, int]], width: int) -> str:
        """The text of row ``index``, laid out once per layout (rows are immutable)."""
        key = (tuple(layout), width)
        if key != self._texts_for:
            self._texts.clear()
            self._texts_for = key
        text = self._texts.get(index)
        if text is None:
            text = self._texts[index] = self._text(self._rows[index].cells, layout, width)
        return text

    def render_lines(self, crop: Region) -> list[Strip]:
        # Resolved once per repaint, not once per line (rich_style walks the DOM).
        self._paint_base = self.rich_style
        self._paint_layout = self._layout(self.scrollable_content_region.width)
        try:
            return super().render_lines(crop)
        finally:
            self._paint_base = None
            self._paint_layout = None

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._paint_base or self.rich_style
        layout = self._paint_layout or self._layout(width)
        if y == 0:
            style = base + self.get_component_rich_style("vtable--header")
            return Strip([Segment(self._text([c.label for c in self.columns], layout, width),
                                  style)], width)
        pos = int(self.scroll_y) + y - 1
        if pos >= len(self._visible):
            if pos == 0:
                style = base + self.get_component_rich_style("vtable--empty")
                return Strip([Segment(set_cell_size(" " + self.empty_text, width), style)],
                             width)
            return Strip.blank(width, base)
        index = self._visible[pos]
        row = self._rows[index]
        style = base
        if row.style:
            style = style + self.get_component_rich_style(f"vtable--{row.style}")
        if pos == self.cursor:
            style = style + self.get_component_rich_style("vtable--cursor")
        return Strip([Segment(self._row_text(index, layout, width), style)], width)
