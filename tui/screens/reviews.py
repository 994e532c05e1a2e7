"""The post-use review queue: every used exception waits for someone else to look at it.

Rows come from ``vault.review_queue()``: finished checkouts, failed rotations,
onboarding secrets and emergency-kit uses (two reviewers). An approver
records ``ok`` or ``concern`` (a concern needs a note). The holder's own items
are listed too; the core refuses their review and the modal shows its
sentence. Items older than the policy age are flagged OVERDUE.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from glasskey.core.api import ReviewItem, format_duration, printable
from glasskey.tui.screens.listing import ListScreen
from glasskey.tui.screens.note import NoteModal
from glasskey.tui.widgets.vtable import Column, Row
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import Static


def reviews_text(item: ReviewItem) -> str:
    return ", ".join(f"{r.get('by', '?')} {r.get('outcome', '?')}" for r in item.reviews)


class ReviewsScreen(ListScreen[ReviewItem]):
    """The review queue; ``o`` ok, ``c`` concern (with a note)."""

    LIST = "reviews"
    COLUMNS = (
        Column("Item", 14),
        Column("Kind", 10),
        Column("Holder", 10),
        Column("Reviews", 7),
        Column("Waiting", 9),
        Column("Summary", None, min_width=16),
    )
    EMPTY = "Nothing waits for review."

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "review('ok')", "OK", id="reviews.ok",
                tooltip="Record that the highlighted use was fine (a note is optional)"),
        Binding("c", "review('concern')", "Concern", id="reviews.concern",
                tooltip="Record a concern about the highlighted use (a note is required)"),
    ]

    def compose_below(self) -> ComposeResult:
        yield Static("", id="reviews-detail", markup=False)

    def load(self) -> dict[str, ReviewItem]:
        return {i.id: i for i in self.gk.vault.review_queue()}

    def rows(self) -> Iterator[Row]:
        me, now = self.me, self.gk.now()
        for item in self.items.values():
            overdue = item.overdue(now)
            waiting = "OVERDUE" if overdue else format_duration(now - item.since)
            style = ("alert" if item.kind == "emergency" or overdue
                     else "dim" if item.holder == me else "info")
            yield Row(item.id, (item.id, item.kind, item.holder,
                                f"{len(item.reviews)}/{item.required}", waiting,
                                item.summary), style)

    def summary(self) -> Content:
        session = self.gk.session
        me, now = self.me, self.gk.now()
        mine = sum(1 for i in self.items.values() if i.holder == me)
        late = sum(1 for i in self.items.values() if i.overdue(now))
        parts: list[str | tuple[str, str]] = [
            (f"{len(self.items)} waiting for review", "bold")]
        if late:
            parts += ["  ·  ", (f"{late} OVERDUE", "$error bold")]
        if mine:
            parts.append(f"  ·  {mine} yours (dimmed): another approver reviews them")
        if session is not None and not session.has("approver"):
            parts.append("  ·  read-only: you do not hold the approver role")
        return Content.assemble(*parts)

    def highlighted(self) -> None:
        item = self.current()
        text = ""
        if item is not None:
            done = reviews_text(item) or "none yet"
            text = (f"{item.id}: {item.summary}\n"
                    f"Reviews {len(item.reviews)} of {item.required}: {done}")
        self.query_one("#reviews-detail", Static).update(printable(text, keep_newlines=True))
        super().highlighted()

    def tick(self) -> None:
        # "Waiting" grows; repaint every so often (cheap: the queue is small).
        if self.items and int(self.gk.now()) % 10 == 0:
            self.paint()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "review":
            # Shown dimmed without an item or the role; the holder's own item is
            # offered too: the core refuses and says why.
            return self.approver_and_current() is not None or None
        return True

    def open(self, key: str) -> None:
        item = self.items.get(key)
        if item is not None and item.kind in ("checkout", "emergency", "onboarding"):
            self.gk.open_checkout(item.id)

    def action_review(self, outcome: str) -> None:
        session = self.gk.session
        item = self.current()
        if session is None or item is None:
            return
        vault = self.gk.vault
        details = (f"{item.kind} {item.id}, held by {item.holder or 'nobody'}\n"
                   f"{item.summary}\n"
                   f"Reviews so far: {reviews_text(item) or 'none'} "
                   f"({item.required} needed)")
        concern = outcome == "concern"
        self.gk.push_screen(NoteModal(
            f"Review {item.id}: {'CONCERN' if concern else 'ok'}", details,
            lambda note: vault.review(session, item.id, outcome, note),
            placeholder=("what is wrong: the reviewers and the report read this" if concern
                         else "optional: what you checked (ticket, timing)"),
            required="A concern needs a note saying what is wrong." if concern else "",
            tone="error" if concern else ""), self._reviewed)

    def _reviewed(self, result: ReviewItem | None) -> None:
        if result is not None:
            left = result.required - len(result.reviews)
            self.gk.notify(f"{result.id} reviewed" + (
                f"; it needs {left} more reviewer(s)" if left > 0 else "; done"),
                title="Review recorded", markup=False)
        self.gk.poll_vault()
        self.refresh_view()
