"""The audit viewer: the latest entries, a filter, follow mode and the chain status.

Reads the tail of the log with ``vault.audit_tail()`` (a million entries must
not be parsed to show the last screenful) and, in follow mode, only the entries
appended since, with ``vault.audit_since(cursor)``. The chain is verified
with ``vault.verify_audit()`` in a thread worker; a broken chain names its
first bad entry.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from glasskey.core.api import AuditCursor, GlasskeyError, IntegrityError, VerifyResult, printable
from glasskey.tui.screens.base import GlasskeyModal, GlasskeyScreen
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.vtable import Column, Row, VirtualTable
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Input, Static

TAIL_ENTRIES = 5000

COLUMNS = [
    Column("Seq", 6),
    # Below 90 columns the time gives way (Enter shows it): who an entry is about stays.
    Column("Time (UTC)", 19, hide_below=90),
    Column("Actor", 10),
    Column("Event", 19),
    Column("Subject", 14),
    Column("Details", None, min_width=12),
]


def details_text(details: Any) -> str:
    if not isinstance(details, dict):
        return str(details)
    parts = []
    for key, value in details.items():
        if not isinstance(value, str):
            value = json.dumps(value, separators=(",", ":"), sort_keys=True)
        parts.append(f"{key}={value}")
    return " ".join(parts)


class AuditScreen(GlasskeyScreen):
    """The audit log, newest at the bottom, with the hash chain's verdict."""

    AUTO_FOCUS = "#audit-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", id="audit.filter",
                tooltip="Filter entries by any text"),
        Binding("f", "follow", "Follow", id="audit.follow",
                tooltip="Keep the newest entry in view as entries arrive"),
        Binding("v", "verify", "Verify chain", id="audit.verify",
                tooltip="Verify the whole hash chain and signatures again"),
        Binding("enter", "open_entry", "Open", id="audit.open", show=False,
                tooltip="The highlighted entry in full, details wrapped"),
        Binding("escape", "back", "Back", id="audit.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.follow = True
        self._entries: list[dict[str, Any]] = []
        self._cursor = AuditCursor()
        self._loaded = False
        self._verdict: VerifyResult | None = None
        self._verifying = False
        self._verify_error = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        yield Static("", id="audit-chain")
        yield Input(placeholder="/ to filter: actor, event, subject, details", id="audit-filter",
                    compact=True)
        yield VirtualTable(COLUMNS, id="audit-table", empty_text="No entries match.")
        yield Static("", id="audit-status", markup=False)
        yield Footer(compact=True)

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#audit-table", VirtualTable)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()
        self.action_verify()

    def _row(self, e: dict[str, Any]) -> Row:
        event = str(e.get("event", ""))
        style = "alert" if event in ("rotate.failed", "checkout.refused", "auth.locked") \
            else "warn" if event in ("auth.failed", "lease.expired") else ""
        bad = self._verdict is not None and not self._verdict.ok \
            and e.get("seq") == self._verdict.first_bad
        return Row(str(e.get("seq", "?")),
                   (str(e.get("seq", "?")), str(e.get("time", "")).replace("T", " ")
                    .rstrip("Z"), str(e.get("actor", "")), event, str(e.get("subject", "")),
                    details_text(e.get("details", {}))), "alert" if bad else style)

    def refresh_view(self) -> None:
        vault = self.gk.vault
        more: list[dict[str, Any]] = []
        if self._loaded:
            try:
                page = vault.audit_since(self._cursor)
                more, self._cursor = page.entries, page.cursor
            except IntegrityError:
                self._loaded = False  # the log changed under us: show its tail afresh
        if not self._loaded:
            page = vault.audit_tail(TAIL_ENTRIES)
            self._entries, self._cursor = page.entries, page.cursor
            self._loaded = True
            new = bool(self._entries)
        else:
            self._entries.extend(more)
            if len(self._entries) > TAIL_ENTRIES:
                del self._entries[: len(self._entries) - TAIL_ENTRIES]
            new = bool(more)
        if new:
            self.table.set_rows(self._row(e) for e in self._entries)
            if self.follow:
                self.table.action_last()
        self._paint_status()

    def _paint_status(self) -> None:
        v = self._verdict
        last_seq = self._entries[-1].get("seq") if self._entries else 0
        if self._verifying:
            chain = Content.from_markup("Chain: [b]verifying…[/b]")
        elif self._verify_error:
            chain = Content.assemble(("Chain: cannot verify: ", "$error bold"),
                                     self._verify_error)
        elif v is None:
            chain = Content("Chain: not verified yet (v verifies)")
        elif v.ok:
            newer = (last_seq - v.entries) if isinstance(last_seq, int) else 0
            chain = Content.assemble(
                ("Chain intact", "$success bold"),
                f"  ·  {v.entries} entries verified  ·  head {v.head.hash[:12]}",
                f"  ·  {newer} newer (v)" if newer > 0 else "")
        else:
            reason = v.reason if v.reason.startswith("entry ") else (
                f"first bad entry {v.first_bad}: {v.reason}")
            chain = Content.assemble(("CHAIN BROKEN", "$error bold reverse"), f"  {reason}")
        self.query_one("#audit-chain", Static).update(chain)
        shown = self.table.row_count
        status = (f"{shown} of the last {len(self._entries)} entries shown"
                  f"  ·  follow {'on' if self.follow else 'off'}  ·  enter opens an entry")
        self.query_one("#audit-status", Static).update(status)

    @work(thread=True, exclusive=True, group="verify")
    def _verify(self) -> None:
        try:
            result: VerifyResult | str = self.gk.vault.verify_audit()
        except GlasskeyError as exc:
            result = str(exc)
        self.app.call_from_thread(self._verified, result)

    def _verified(self, result: VerifyResult | str) -> None:
        self._verifying = False
        if isinstance(result, str):
            self._verify_error = result
        else:
            self._verify_error = ""
            self._verdict = result
            if not result.ok:
                self.table.set_rows(self._row(e) for e in self._entries)
                if result.first_bad is not None:
                    self.follow = False
                    self.table.move_to(str(result.first_bad))
        self._paint_status()

    # -- actions --------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("follow", "verify", "filter"):
            try:
                return not self.query_one("#audit-filter", Input).has_focus
            except NoMatches:
                return True
        return True

    def action_verify(self) -> None:
        if self._verifying:
            return
        self._verifying = True
        self._paint_status()
        self._verify()

    def action_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self.table.action_last()
        self._paint_status()

    def action_filter(self) -> None:
        self.screen.set_focus(self.query_one("#audit-filter", Input))

    @on(Input.Changed, "#audit-filter")
    def _filter(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)
        self._paint_status()

    @on(Input.Submitted, "#audit-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.screen.set_focus(self.table)

    @on(VirtualTable.Selected, "#audit-table")
    def _selected(self, event: VirtualTable.Selected) -> None:
        event.stop()
        self.action_open_entry()

    def action_open_entry(self) -> None:
        key = self.table.cursor_key
        entry = next((e for e in self._entries if str(e.get("seq", "?")) == key), None)
        if entry is not None:
            self.app.push_screen(AuditEntryModal(entry))

    def action_back(self) -> None:
        if self.query_one("#audit-filter", Input).has_focus:
            self.screen.set_focus(self.table)
            return
        self.gk.pop_screen()


def entry_text(entry: dict[str, Any]) -> str:
    """One audit entry in full, one field per line, every value escaped for the terminal."""
    lines = [f"{key:9} {printable(entry.get(key, ''))}"
             for key in ("seq", "time", "actor", "event", "subject")]
    details = entry.get("details", {})
    lines.append("details")
    if isinstance(details, dict):
        for key, value in details.items():
            if not isinstance(value, str):
                value = json.dumps(value, separators=(",", ":"), sort_keys=True)
            lines.append(f"  {printable(key)} = {printable(value, keep_newlines=True)}")
    else:
        lines.append(f"  {printable(details)}")
    for key in sorted(set(entry) - {"seq", "time", "actor", "event", "subject", "details"}):
        value = entry[key]
        lines.append(f"{key:9} {printable(value if isinstance(value, str) else json.dumps(value))}")
    return "\n".join(lines)


class AuditEntryModal(GlasskeyModal):
    """One audit entry in full: long reasons and hashes wrap instead of being cut."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "Close", key_display="esc", id="audit-entry.close"),
    ]

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="audit-entry-box", classes="dialog"):
            yield Static(f"Audit entry {printable(self.entry.get('seq', '?'))}",
                         classes="dialog-title", markup=False)
            yield Static(entry_text(self.entry), id="audit-entry-text", markup=False)
        yield Footer(compact=True)

    def action_close(self) -> None:
        self.dismiss(None)
