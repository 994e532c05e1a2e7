"""Dashboard: every credential with its state, filtered as you type.

Reads ``vault.credentials()`` and the open checkouts, and keeps one row per
credential in a ``VirtualTable``; a vault change rebuilds rows only when the
credential list itself changed (``vault.table_version("credentials")``;
otherwise only the rows of credentials whose checkout changed are patched),
and filtering is one list comprehension. The alert count is the length of
the app's copy of ``vault.alerts()``. On a ROTATION-FAILED credential ``R``
retries the rotation (``vault.reconcile``); on an APPLY-PENDING one ``p``
opens the value to apply.
"""

from __future__ import annotations

from typing import ClassVar

from glasskey.core.api import Checkout, CheckoutState, Credential, GlasskeyError, RotationResult
from glasskey.tui.screens.base import GlasskeyScreen
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.states import credential_state, utc
from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
from glasskey.tui.widgets.vtable import Column, Row, VirtualTable
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Input, Static

S = CheckoutState

COLUMNS = [
    Column("Credential", None, min_width=14),
    Column("Kind", 11, hide_below=96),
    Column("State", 16),
    Column("Holder", 10),
    Column("Left", 8),
    Column("Last rotation", 16),
]


class DashboardScreen(GlasskeyScreen):
    """Credentials and their custody state; the start of every workflow."""

    AUTO_FOCUS = "#dash-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "request", "Request", id="dashboard.request",
                tooltip="Request a checkout of the highlighted credential"),
        Binding("slash", "filter", "Filter", key_display="/", id="dashboard.filter",
                tooltip="Type to filter by name, kind, state or holder"),
        Binding("a", "approvals", "Approvals", id="dashboard.approvals",
                tooltip="Requests waiting for an approver"),
        # Alerts and Reviews stay out of the footer (the summary line names '!'; help lists
        # both): with them, an 80-column footer was cut before "? Help".
        Binding("exclamation_mark", "alerts", "Alerts", key_display="!", show=False,
                id="dashboard.alerts", tooltip="Everything that needs someone now"),
        Binding("v", "reviews", "Reviews", id="dashboard.reviews", show=False,
                tooltip="The post-use review queue"),
        Binding("E,shift+e", "emergency", "Emergency", key_display="E",
                id="dashboard.emergency",
                tooltip="Open a credential with the emergency kit (no approver: loud)"),
        Binding("R,shift+r", "reconcile", "Retry", key_display="R",
                id="dashboard.reconcile",
                tooltip="ROTATION-FAILED: try the rotation again (reconcile)"),
        Binding("p", "apply", "Apply", id="dashboard.apply",
                tooltip="APPLY-PENDING: fetch the new value, set it by hand, confirm"),
        # Navigation only: in help and the palette, not in the footer (it is full).
        Binding("b", "onboarding", "Onboarding", id="dashboard.onboarding", show=False,
                tooltip="One-time secrets for new identities: issue, approve, reveal once"),
        Binding("l", "audit", "Audit", id="dashboard.audit", show=False,
                tooltip="The audit log and its chain status"),
        Binding("o", "operators", "Operators", id="dashboard.operators", show=False,
                tooltip="Operators, admin work and the emergency kit"),
        Binding("escape", "clear_filter", "Leave/clear filter", id="dashboard.clear_filter",
                tooltip="Leave the filter box; Esc again clears the filter"),
        Binding("down", "table_down", "Down", show=False),
        Binding("up", "table_up", "Up", show=False),
        Binding("pagedown", "table_page_down", "Page down", show=False),
        Binding("pageup", "table_page_up", "Page up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._creds: dict[str, Credential] = {}
        self._cred_sig: str | None = None
        self._open: dict[str, Checkout] = {}
        self._seen_seq = -1
        #: The credential whose rotation is being retried (one at a time).
        self._reconciling: str | None = None
        #: What the summary line shows (it is redrawn only when this changes).
        self._summary: list[str | tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield AlertBanner()
        yield Static("", id="dash-summary")
        yield Input(placeholder="/ to filter: name, kind, state or holder", id="dash-filter",
                    compact=True)
        yield VirtualTable(COLUMNS, id="dash-table",
                           empty_text="No credentials match the filter.")
        yield Footer(compact=True)

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#dash-table", VirtualTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#dash-filter", Input)

    def on_mount(self) -> None:
        self.ready = True
        self.refresh_view()

    # -- data -----------------------------------------------------------------------------
    def refresh_view(self) -> None:
        vault = self.gk.vault
        try:
            seq = vault.seq()
            if seq == self._seen_seq:
                return
            # Most changes are checkouts: re-read the credentials (100 ms at
            # 10,000) only when their table changed.
            sig = vault.table_version("credentials")
            creds = None
            if sig != self._cred_sig:
                creds = vault.credentials()
            open_checkouts = vault.checkouts(open_only=True)
        except GlasskeyError as exc:
            self.gk.notify(str(exc), title="Cannot read the vault", severity="error",
                           markup=False)
            return
        self._seen_seq = seq
        self._cred_sig = sig
        now = self.gk.now()
        new_open = {c.cred_id: c for c in open_checkouts}
        if creds is not None:
            self._creds = {c.id: c for c in creds}
            self._open = new_open
            self.table.set_rows(self._row(c, now) for c in creds)
        else:
            touched = {k for k in set(new_open) | set(self._open)
                       if new_open.get(k) != self._open.get(k)}
            self._open = new_open
            self.table.patch_rows(self._row(self._creds[k], now) for k in touched
                                  if k in self._creds)
        self._summarise(now)

    def _row(self, cred: Credential, now: float) -> Row:
        st = credential_state(cred, self._open.get(cred.id), now)
        return Row(cred.id, (cred.name, cred.kind, st.label, st.holder, st.left,
                             utc(cred.rotated_at)), st.style,
                   f"{cred.name} {cred.kind} {st.label} {st.holder}".lower())

    def tick(self) -> None:
        """Countdowns: only credentials with an open checkout change with time."""
        if not self._open:
            return
        now = self.gk.now()
        self.table.patch_rows(self._row(self._creds[k], now) for k in self._open
                              if k in self._creds)
        self._summarise(now)

    def _summarise(self, now: float) -> None:
        session = self.gk.session
        me = session.name if session else ""
        pending = [c for c in self._open.values() if c.state == S.REQUESTED]
        for_me = [c for c in pending if c.requester != me]
        alerts = len(self.gk.alerts)
        shown, total = self.table.row_count, self.table.total_count
        parts: list[str | tuple[str, str]] = [(f"{total} credentials", "bold")]
        if shown != total:
            parts.append(f" ({shown} shown)")
        parts.append("  ·  ")
        parts.append((f"{len(pending)} awaiting approval", "$warning bold" if pending else ""))
        if session is not None and session.has("approver") and for_me:
            parts.append((f" ({len(for_me)} for you)", "bold"))
        parts.append("  ·  ")
        parts.append((f"{alerts} alert{'s' if alerts != 1 else ''}",
                      "$error bold" if alerts else ""))
        if alerts:
            parts.append(" (!)")
        mine = [c for c in self._open.values() if c.requester == me
                and c.state in (S.APPROVED, S.CHECKED_OUT)]
        if mine:
            parts.append("  ·  ")
            parts.append((f"{len(mine)} yours to use", "$success bold"))
        if parts != self._summary:
            self._summary = parts
            # One line high (glasskey.tcss): a new text needs no layout of the screen.
            self.query_one("#dash-summary", Static).update(Content.assemble(*parts),
                                                           layout=False)
        self.recheck_keys()

    @on(VirtualTable.Highlighted, "#dash-table")
    def _moved(self, event: VirtualTable.Highlighted) -> None:
        self.recheck_keys()

    def alerts_changed(self) -> None:
        self._summarise(self.gk.now())

    # -- filtering ------------------------------------------------------------------------
    @on(Input.Changed, "#dash-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)
        self._summarise(self.gk.now())

    @on(Input.Submitted, "#dash-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.screen.set_focus(self.table)
        self.action_open()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        try:
            box = self.filter_input
        except NoMatches:
            return True
        if action in ("reconcile", "apply"):
            current = self._current() if not box.has_focus else None
            if current is None:
                return False
            status = "rotation-failed" if action == "reconcile" else "apply-pending"
            return current[0].status == status
        if action in ("request", "approvals", "audit", "operators", "filter", "reviews",
                      "onboarding", "alerts", "emergency"):
            return not box.has_focus
        if action == "clear_filter":
            return box.has_focus or bool(box.value)
        return True

    def action_filter(self) -> None:
        self.screen.set_focus(self.filter_input)

    def action_clear_filter(self) -> None:
        if self.filter_input.has_focus:
            self.screen.set_focus(self.table)
        elif self.filter_input.value:
            self.filter_input.value = ""

    def action_table_down(self) -> None:
        self.table.action_cursor_down()

    def action_table_up(self) -> None:
        self.table.action_cursor_up()

    def action_table_page_down(self) -> None:
        self.table.action_page_down()

    def action_table_page_up(self) -> None:
        self.table.action_page_up()

    # -- actions --------------------------------------------------------------------------
    def _current(self) -> tuple[Credential, Checkout | None] | None:
        try:
            key = self.table.cursor_key
        except NoMatches:  # composing, or torn down (bindings are checked then too)
            return None
        if key is None or key not in self._creds:
            return None
        return self._creds[key], self._open.get(key)

    @on(VirtualTable.Selected, "#dash-table")
    def _selected(self, event: VirtualTable.Selected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        """Enter: a sealed credential -> request it; an open one -> its checkout."""
        current = self._current()
        if current is None:
            return
        cred, checkout = current
        if checkout is not None:
            self.gk.open_checkout(checkout.id)
        else:
            self.gk.open_request(cred.name)

    def action_request(self) -> None:
        current = self._current()
        if current is None:
            return
        cred, checkout = current
        if checkout is not None:
            self.gk.notify(
                f"{cred.name} already has an open checkout ({checkout.state}, "
                f"{checkout.requester}); one holder at a time.", severity="warning",
                markup=False)
            self.gk.open_checkout(checkout.id)
            return
        self.gk.open_request(cred.name)

    def action_approvals(self) -> None:
        self.gk.show_approvals()

    def action_audit(self) -> None:
        self.gk.show_audit()

    def action_operators(self) -> None:
        self.gk.show_operators()

    def action_reviews(self) -> None:
        self.gk.show_reviews()

    def action_onboarding(self) -> None:
        self.gk.show_onboarding()

    def action_alerts(self) -> None:
        self.gk.show_alerts()

    def action_emergency(self) -> None:
        current = self._current()
        self.gk.show_emergency(current[0].name if current else "")

    def action_apply(self) -> None:
        current = self._current()
        if current is not None:
            self.gk.open_apply(current[0].name)

    def action_reconcile(self) -> None:
        session = self.gk.session
        current = self._current()
        if session is None or current is None or self._reconciling is not None:
            return
        name = current[0].name
        self._reconciling = name
        self.gk.notify(f"{name}: trying the rotation again…", markup=False)
        vault = self.gk.vault
        run_vault_call(self, "reconcile", lambda: vault.reconcile(session, name))

    @on(Done)
    def _reconciled(self, event: Done[RotationResult]) -> None:
        self._reconciling = None
        result = event.result
        self.notify_rotation(result, failed=": rotation FAILED again", title="Reconciled",
                             done=f": rotation {result.outcome} (version {result.version}).")
        self.gk.poll_vault()

    @on(Failed)
    def _not_reconciled(self, event: Failed) -> None:
        name, self._reconciling = self._reconciling, None
        self.gk.notify(f"{name}: {event.sentence}", title="Not reconciled", severity="error",
                       markup=False)
        self.gk.poll_vault()
