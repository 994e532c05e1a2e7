"""The glasskey custody workstation: a Textual app over the core services.

The app holds the unlocked ``Session``, the secrets revealed in this session
(so a second look never needs a second decrypt) and the clipboard's
clear-after timer. Screens are thin views that call the vault. Every half
second the app compares ``vault.seq()`` with the last value it saw and, when
another process (or this one) changed the vault, redraws the visible screen:
an approval given in a second terminal appears without a keypress. It then
re-reads ``vault.alerts()`` in a worker (it reads every credential) and
repaints the emergency banner of every screen. Every 30 seconds
``vault.sweep`` expires stale requests and checks in this operator's own
overdue leases.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from glasskey.core.api import (
    Alert,
    Checkout,
    CheckoutState,
    Clock,
    GlasskeyError,
    SecretValue,
    Session,
    Store,
    SweepReport,
    Vault,
    format_duration,
    printable,
)
from glasskey.tui.demo import DemoInfo
from glasskey.tui.environment import ClientSettings
from glasskey.tui.hardening import TmuxBuffers
from glasskey.tui.safety import ControlEscapeFilter
from glasskey.tui.screens.alerts import AlertsScreen
from glasskey.tui.screens.apply import ApplyScreen
from glasskey.tui.screens.approvals import ApprovalsScreen
from glasskey.tui.screens.audit import AuditScreen
from glasskey.tui.screens.base import GlasskeyScreen, LiveView
from glasskey.tui.screens.confirm import ConfirmModal
from glasskey.tui.screens.countersign import CountersignModal
from glasskey.tui.screens.dashboard import DashboardScreen
from glasskey.tui.screens.deny import DenyModal
from glasskey.tui.screens.emergency import EmergencyScreen, KitIssuedScreen
from glasskey.tui.screens.help import HelpModal, bindings_of
from glasskey.tui.screens.note import NoteModal
from glasskey.tui.screens.onboarding import IssueOnboardingModal, OnboardingScreen
from glasskey.tui.screens.operators import EnrolModal, OperatorsScreen
from glasskey.tui.screens.request import RequestModal
from glasskey.tui.screens.reveal import RevealScreen
from glasskey.tui.screens.reviews import ReviewsScreen
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.screens.sweep import SweepModal
from glasskey.tui.screens.twoperson import TwoPersonModal
from glasskey.tui.screens.unlock import UnlockScreen
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

S = CheckoutState

#: System commands removed from the palette. Screenshot writes an SVG of the
#: screen to disk, revealed secrets included.
REMOVED_SYSTEM_COMMANDS = frozenset({"Screenshot"})

#: Local clipboard tools tried after OSC 52, when a display is there to own them.
LOCAL_CLIPBOARDS: tuple[tuple[str, ...], ...] = (
    ("wl-copy",),
    ("xclip", "-selection", "clipboard"),
    ("xsel", "--clipboard", "--input"),
    ("pbcopy",),
)


#: Seconds before a lease ends when its holder is warned (toast and bell).
LEASE_WARNINGS = (60, 300)


class ScreenActions(Provider):
    """The command palette lists what the footer offers on the current screen, and more."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app = self.app
        assert isinstance(app, GlasskeyApp)
        screen = self.screen
        out: list[tuple[str, str, Callable[[], Any]]] = []
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if not b.description or not active.enabled or b.action == "command_palette":
                continue
            if b.description in seen or b.system:
                continue
            seen.add(b.description)
            display = b.key_display or app.get_key_display(b)
            help_text = f"{display}: {b.tooltip}" if b.tooltip else f"key {display}"
            out.append((b.description, help_text,
                        partial(app.call_later, app.run_action, b.action, active.node)))
            del key
        for title, help_text, callback in app.navigation_commands():
            if title not in seen:
                seen.add(title)
                out.append((title, help_text, callback))
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class GlasskeyApp(App[None]):
    """Break-glass custody at the keyboard."""

    CSS_PATH = "glasskey.tcss"
    TITLE = "glasskey"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {ScreenActions}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit",
                tooltip="Quit (the clipboard is cleared first)"),
        Binding("f1,question_mark", "help", "Help", key_display="?", id="app.help",
                tooltip="Every key of every screen"),
        Binding("ctrl+o", "lock", "Lock", key_display="^o", id="app.lock",
                tooltip="Forget the session and any revealed secret; back to unlock"),
        # ctrl+l is everyone's "clear screen": here it redraws, it never locks.
        Binding("ctrl+l", "redraw", "Redraw", show=False, id="app.redraw"),
    ]

    def __init__(self, vault: Vault, demo: DemoInfo | None = None, clock: Clock | None = None,
                 *, clipboard_clear_seconds: float = 30.0, poll_interval: float = 0.5,
                 sweep_interval: float = 30.0, alerts_interval: float = 10.0,
                 local_clipboard: bool = False) -> None:
        super().__init__()
        self.vault = vault
        self.demo = demo
        self.clock: Clock = clock or vault.clock
        self.session: Session | None = None
        #: Secrets revealed in this session, by request id (never decrypted twice).
        self.secrets: dict[str, SecretValue] = {}
        self.clipboard_clear_seconds = clipboard_clear_seconds
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.alerts_interval = alerts_interval
        #: The last ``vault.alerts()`` (read in a worker; the banner and the count).
        self.alerts: list[Alert] = []
        self._alerts_reading = False
        self._alerts_again = False
        self.local_clipboard = local_clipboard
        self._clip_owner: str | None = None
        self._clip_until = 0.0
        self._clip_timer: Timer | None = None
        self._seen_seq = -1
        self._sweeping = False
        self.unlocked_at = 0.0
        #: Open checkouts at the last look (None: not looked since the unlock).
        self._open: dict[str, Checkout] | None = None
        self._lease_warned: set[tuple[str, int]] = set()
        self._told_expired: set[str] = set()
        #: A request to show once unlocked (``glasskey open REQ``).
        self.start_request: str | None = None
        if demo is not None:
            self.sub_title = "DEMO"
        # No control character from the vault's text reaches the terminal (issue 11).
        self._filters.append(ControlEscapeFilter())
        self._tmux = TmuxBuffers()

    def notify(self, message: str, *, title: str = "", **kwargs: Any) -> None:  # type: ignore[override]
        """Every toast's text passes through printable(): names and reasons come from others."""
        super().notify(printable(message, keep_newlines=True), title=printable(title), **kwargs)

    # -- lifecycle ------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def on_mount(self) -> None:
        self.push_screen(UnlockScreen())
        try:
            self._seen_seq = self.vault.seq()
        except GlasskeyError:
            self._seen_seq = -1
        self.set_interval(self.poll_interval, self.poll_vault, name="poll-vault")
        self.set_interval(1.0, self._tick, name="tick")
        self.set_interval(self.sweep_interval, self.sweep, name="sweep")
        # Time alone makes some alerts (an overdue lease or review): re-read now and then.
        self.set_interval(self.alerts_interval, self.refresh_alerts, name="alerts")
        self.refresh_alerts()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title not in REMOVED_SYSTEM_COMMANDS:
                yield command

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        self.notify("Screenshots are disabled: they could capture a revealed secret.",
                    severity="warning", markup=False)

    def live_leases(self) -> list[Checkout]:
        """The checkouts this session's operator holds with a lease still running."""
        if self.session is None:
            return []
        try:
            items = self.vault.checkouts(open_only=True)
        except GlasskeyError:
            return []
        now = self.now()
        return [c for c in items if c.requester == self.session.name
                and c.state == CheckoutState.CHECKED_OUT
                and (c.lease_expires or 0) > now]

    def _ask_if_holding(self, verb: str, then: Callable[[], None]) -> None:
        """Run ``then`` at once, or after a y/n when a live lease would be left behind."""
        held = self.live_leases()
        if not held:
            then()
            return
        names = ", ".join(sorted({c.cred_name for c in held}))

        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.push_screen(ConfirmModal(
            f"{verb} while you hold {names}?",
            "Your lease keeps running and the secret leaves this screen; check in (i) "
            "when you are done so the credential is rotated."), answered)

    async def action_quit(self) -> None:
        if isinstance(self.screen, ConfirmModal):
            return
        self._ask_if_holding("Quit", self._quit_now)

    def _quit_now(self) -> None:
        self.clear_clipboard()
        self.secrets.clear()
        self.exit()

    def action_redraw(self) -> None:
        self.refresh(repaint=True, layout=True)
        self.screen.refresh(repaint=True, layout=True)

    # -- session ----------------------------------------------------------------------------
    def unlocked(self, session: Session) -> None:
        self.session = session
        #: When this session unlocked: that 30-second step's code is spent (step-up hint).
        self.unlocked_at = self.now()
        self._open = None
        self.watch_requests()  # remember what is open now; tell only what comes next
        self.sub_title = f"{session.name} ({', '.join(session.roles)})" + (
            "  ·  DEMO" if self.demo is not None else "")
        self.switch_screen(DashboardScreen())
        if self.start_request:  # glasskey open REQ / --open REQ (issue 14)
            self.open_checkout(self.start_request)
            self.start_request = None

    def action_lock(self) -> None:
        if self.session is None or isinstance(self.screen, ConfirmModal):
            return
        self._ask_if_holding("Lock", self._lock_now)

    def _lock_now(self) -> None:
        if self.session is None:
            return
        self.clear_clipboard()
        self.secrets.clear()
        self.session = None
        self.sub_title = "DEMO" if self.demo is not None else ""
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(UnlockScreen())
        self.notify("Locked: the session and every revealed value are forgotten.",
                    markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "lock":
            return self.session is not None
        return True

    # -- navigation -------------------------------------------------------------------------
    def open_request(self, cred_name: str) -> None:
        if self.session is None:
            return
        try:
            cred = self.vault.credential(cred_name)
        except GlasskeyError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if cred.kind == "onboarding":
            # A one-time onboarding secret is delivered, activated and revoked; it is never
            # something to check out (the form would only end in a refusal).
            self.notify(f"{cred.name} is a one-time onboarding secret: it cannot be "
                        "requested. The Onboarding screen (b) shows its state.",
                        severity="warning", markup=False)
            return

        def done(result: Any) -> None:
            if result is not None:
                self.notify(f"Request {result.id} for {result.cred_name} sent.",
                            title="Requested", markup=False)
                self.open_checkout(result.id)

        self.push_screen(RequestModal(cred), done)

    def open_checkout(self, request_id: str) -> None:
        if isinstance(self.screen, RevealScreen) and self.screen.request_id == request_id:
            return
        self.push_screen(RevealScreen(request_id))

    def _show(self, screen_type: type[GlasskeyScreen]) -> None:
        if self.session is None:
            # Locked: the audit log needs no authentication (a reader of the files
            # could verify it too); everything else waits for the unlock.
            if screen_type is AuditScreen and not isinstance(self.screen, AuditScreen):
                self.push_screen(AuditScreen())
            return
        if isinstance(self.screen, screen_type):
            return
        # One instance of each list screen: drop to the dashboard, then push.
        while len(self.screen_stack) > 2 and not isinstance(self.screen, DashboardScreen):
            self.pop_screen()
        if not isinstance(self.screen, DashboardScreen):
            return
        self.push_screen(screen_type())

    def show_dashboard(self) -> None:
        while len(self.screen_stack) > 2 and not isinstance(self.screen, DashboardScreen):
            self.pop_screen()

    def show_approvals(self) -> None:
        self._show(ApprovalsScreen)

    def show_audit(self) -> None:
        self._show(AuditScreen)

    def show_operators(self) -> None:
        self._show(OperatorsScreen)

    def show_reviews(self) -> None:
        self._show(ReviewsScreen)

    def show_onboarding(self) -> None:
        self._show(OnboardingScreen)

    def show_alerts(self) -> None:
        self._show(AlertsScreen)

    def show_emergency(self, credential: str = "") -> None:
        if self.session is None or isinstance(self.screen, EmergencyScreen):
            return
        self.show_dashboard()
        if isinstance(self.screen, DashboardScreen):
            self.push_screen(EmergencyScreen(credential))

    def issue_kit(self) -> None:
        """The kit issue (two-person modal) from anywhere: via the Operators screen."""
        self.show_operators()
        screen = self.screen
        if isinstance(screen, OperatorsScreen):
            self.call_after_refresh(screen.action_issue_kit)

    def open_apply(self, cred_name: str) -> None:
        if self.session is not None:
            self.push_screen(ApplyScreen(cred_name))

    def emergency_opened(self, checkout: Checkout, secret: SecretValue) -> None:
        """The kit opened a credential: hold the value, show the (masked) reveal screen."""
        self.secrets[checkout.id] = secret
        self.notify(f"EMERGENCY USE {checkout.id} of {checkout.cred_name} recorded; the kit is "
                    "burned; two approvers must review it. Check in when done.",
                    title="Emergency", severity="warning", markup=False)
        if isinstance(self.screen, EmergencyScreen):
            self.switch_screen(RevealScreen(checkout.id))
        else:
            self.push_screen(RevealScreen(checkout.id))
        self.poll_vault()

    def go_to(self, where: str, arg: str = "") -> None:
        """Where an alert is dealt with (the Alerts screen's enter)."""
        if where == "reviews":
            self.show_reviews()
        elif where == "operators":
            self.show_operators()
        elif where == "checkout" and arg:
            self.show_dashboard()
            self.open_checkout(arg)
        else:
            self.show_dashboard()
            screen = self.screen
            if isinstance(screen, DashboardScreen) and arg:
                screen.filter_input.value = arg

    def navigation_commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        """Palette entries that work from any screen once unlocked."""
        if self.session is None:
            return [("Audit log", "entries and chain status (no unlock needed)",
                     self.show_audit),
                    ("Help", "every key of every screen", self.action_help)]
        return [
            ("Dashboard", "credentials and their state", self.show_dashboard),
            ("Approvals", "requests waiting for an approver", self.show_approvals),
            ("Audit log", "entries, filter, follow and chain status", self.show_audit),
            ("Operators", "operators and their status", self.show_operators),
            ("Reviews", "the post-use review queue", self.show_reviews),
            ("Onboarding secrets", "one-time secrets for new identities", self.show_onboarding),
            ("Alerts", "everything that needs someone now", self.show_alerts),
            ("Emergency access", "open a credential with the emergency kit (loud)",
             self.show_emergency),
            ("Issue emergency kit", "two operators; the recovery code is shown once",
             self.issue_kit),
            ("Help", "every key of every screen", self.action_help),
            ("Lock", "forget the session and any revealed secret", self.action_lock),
        ]

    def action_help(self) -> None:
        if isinstance(self.screen, HelpModal):
            return
        self.push_screen(HelpModal(help_sections()))

    # -- live updates -----------------------------------------------------------------------
    def poll_vault(self) -> None:
        """Redraw the visible screens when the vault's change counter moved."""
        try:
            seq = self.vault.seq()
        except GlasskeyError:
            return
        if seq == self._seen_seq:
            return
        self._seen_seq = seq
        self._drop_stale_secrets()
        self.refresh_views()
        self.refresh_alerts()
        self.watch_requests()

    # -- telling people what happened to requests (issue 11) -----------------------------------
    def watch_requests(self) -> None:
        """Compare the open checkouts with the last look and tell this operator what changed.

        Approvers hear (toast + bell) when someone else asks; a requester hears when
        their request is denied (with the reason) or expires. The first look after an
        unlock only remembers: nobody is told about what was already there.
        """
        session = self.session
        if session is None:
            self._open = None
            return
        try:
            now_open = {c.id: c for c in self.vault.checkouts(open_only=True)}
        except GlasskeyError:
            return
        before, self._open = self._open, now_open
        if before is None:
            return
        me = session.name
        for rid, c in now_open.items():
            if rid not in before and c.state == S.REQUESTED and c.requester != me \
                    and session.has("approver") and c.kind != "emergency":
                self.bell()
                self.notify(f"{c.requester} asks for {c.cred_name}: {c.reason} "
                            f"({c.ticket}). Press a for the approvals queue.",
                            title="New request", severity="warning", timeout=10)
        for rid, old in before.items():
            if rid in now_open or old.requester != me:
                continue
            try:
                c = self.vault.checkout(rid)
            except GlasskeyError:
                continue
            if c.closed_reason == "denied":
                self.bell()
                self.notify(f"Your request for {c.cred_name} was denied by {c.denied_by}: "
                            f"{c.deny_reason}", title="Request denied", severity="error",
                            timeout=15)
            elif c.closed_reason in ("expired", "request-expired", "approval-expired"):
                self._tell_expired(c)

    def _tell_expired(self, c: Checkout) -> None:
        if c.id in self._told_expired:
            return
        self._told_expired.add(c.id)
        self.bell()
        self.notify(f"Your request for {c.cred_name} expired before it was used; ask again "
                    "if you still need it.", title="Request expired", severity="warning",
                    timeout=15)

    def _lease_warnings(self) -> None:
        """Toast and bell 5 minutes and 1 minute before a lease this operator holds ends;
        say so when a request of theirs expired without any write to the vault."""
        session = self.session
        if session is None or not self._open:
            return
        now = self.now()
        for c in self._open.values():
            if c.requester != session.name:
                continue
            shown = c.display_state(now)
            if shown in ("expired", "approval-expired"):
                self._tell_expired(c)
                continue
            if c.state != S.CHECKED_OUT or not c.lease_expires:
                continue
            left = c.lease_expires - now
            mark = next((m for m in LEASE_WARNINGS if 0 < left <= m), None)  # the closest
            if mark is not None and (c.id, mark) not in self._lease_warned:
                # a larger mark passed unnoticed (app started late) is not announced later
                self._lease_warned.update((c.id, m) for m in LEASE_WARNINGS if m >= mark)
                self.bell()
                self.notify(f"Your lease on {c.cred_name} ends in "
                            f"{format_duration(left)}; check in (i) when done.",
                            title="Lease ending", severity="warning", timeout=10)

    def refresh_alerts(self) -> None:
        """Re-read ``vault.alerts()`` in a worker (it reads every credential)."""
        if self._alerts_reading:
            self._alerts_again = True
            return
        self._alerts_reading = True
        self._read_alerts()

    @work(thread=True, group="alerts")
    def _read_alerts(self) -> None:
        try:
            alerts: list[Alert] | None = self.vault.alerts()
        except GlasskeyError:
            alerts = None
        if not self.is_running:
            return  # the app is closing: nobody to tell
        try:
            self.call_from_thread(self._got_alerts, alerts)
        except RuntimeError:
            pass  # the app stopped meanwhile

    def _got_alerts(self, alerts: list[Alert] | None) -> None:
        self._alerts_reading = False
        if alerts is not None and alerts != self.alerts:
            self.alerts = alerts
            for screen in self.screen_stack:
                for banner in screen.query(AlertBanner):
                    banner.show_alerts(alerts)
                if isinstance(screen, LiveView) and screen.ready:
                    screen.alerts_changed()
        if self._alerts_again:
            self._alerts_again = False
            self.refresh_alerts()

    def refresh_views(self) -> None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, LiveView) and screen.ready:
                try:
                    screen.refresh_view()
                except NoMatches:
                    pass  # the screen is being taken down (a lock from a y/n answer)
            if not screen.is_modal:
                break

    def on_resize(self, event: events.Resize) -> None:
        self._fit_footers()

    def _fit_footers(self) -> None:
        """Below 100 columns the footer drops its '^p palette' hint (help lists ^p), so
        that the keys of the screen and '? Help' are never cut off."""
        wide = self.size.width >= 100
        for footer in self.screen.query(Footer):
            if footer.show_command_palette != wide:
                footer.show_command_palette = wide

    def _tick(self) -> None:
        self._fit_footers()
        self._lease_warnings()
        for screen in reversed(self.screen_stack):
            if isinstance(screen, LiveView) and screen.ready:
                try:
                    screen.tick()
                except NoMatches:
                    pass  # the screen is being taken down
            if not screen.is_modal:
                break
        if self._clip_owner is not None and time.monotonic() >= self._clip_until:
            self.clear_clipboard()

    def _drop_stale_secrets(self) -> None:
        for key in list(self.secrets):
            try:
                if key.startswith("apply:"):
                    name = key.removeprefix("apply:")
                    alive = self.vault.credential(name).status == "apply-pending"
                else:
                    alive = self.vault.checkout(key).state == S.CHECKED_OUT
            except GlasskeyError:
                alive = False
            if not alive:
                self.forget_secret(key)

    def sweep(self) -> None:
        session = self.session
        if session is None or self._sweeping:
            return
        self._sweeping = True
        vault = self.vault
        run_vault_call(self, "sweep", lambda: vault.sweep(session))

    @on(Done)
    def _swept(self, event: Done[SweepReport]) -> None:
        self._sweeping = False
        report = event.result
        for result in report.rotated:
            self.notify(f"{result.credential}: lease over, rotation {result.outcome}"
                        + (f": {result.message}" if result.message else ""),
                        severity="error" if result.outcome == "failed" else "information",
                        markup=False)
        for line in report.errors:
            self.notify(line, severity="error", markup=False)
        self.poll_vault()

    @on(Failed)
    def _sweep_failed(self, event: Failed) -> None:
        self._sweeping = False
        self.notify(event.sentence, title="Sweep failed", severity="error", markup=False)

    # -- secrets and the clipboard ------------------------------------------------------------
    def forget_secret(self, request_id: str) -> None:
        self.secrets.pop(request_id, None)
        if self._clip_owner == request_id:
            self.clear_clipboard()

    def copy_secret(self, request_id: str) -> None:
        secret = self.secrets.get(request_id)
        if secret is None:
            return
        self.copy_to_clipboard(secret.reveal())
        self._local_copy(secret.reveal())
        self._tmux.copied(secret.reveal())
        self._clip_owner = request_id
        self._clip_until = time.monotonic() + self.clipboard_clear_seconds
        if self._clip_timer is not None:
            self._clip_timer.stop()
        self._clip_timer = self.set_timer(self.clipboard_clear_seconds, self.clear_clipboard)
        self.notify(f"Copied. The clipboard is cleared in {int(self.clipboard_clear_seconds)} s.",
                    title="Clipboard", markup=False)

    def clear_clipboard(self) -> None:
        """Overwrite the clipboard if it still holds a value this app put there."""
        if self._clip_owner is None:
            return
        self._clip_owner = None
        if self._clip_timer is not None:
            self._clip_timer.stop()
            self._clip_timer = None
        self.copy_to_clipboard("")
        self._local_copy("")
        # tmux keeps an OSC 52 copy in a paste buffer and ignores the empty OSC 52: delete it.
        self._tmux.clear()

    def clipboard_status(self, request_id: str) -> str:
        if self._clip_owner != request_id:
            return ""
        left = max(0, int(self._clip_until - time.monotonic() + 0.999))
        return f"Clipboard: holds this secret; cleared in {left} s"

    def _local_copy(self, text: str) -> None:
        if not self.local_clipboard:
            return
        has_display = bool(os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY")) \
            or sys.platform == "darwin"
        if not has_display:
            return
        for command in LOCAL_CLIPBOARDS:
            if shutil.which(command[0]) is None:
                continue
            try:
                subprocess.run(command, input=text.encode("utf-8"), timeout=2,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
            except (OSError, subprocess.SubprocessError):
                continue
            return


def help_sections() -> list[tuple[str, list[Binding]]]:
    enter_open = Binding("enter", "", "Open",
                         tooltip="Request a sealed credential or open its checkout")
    return [
        ("Everywhere", [*bindings_of(GlasskeyApp),
                        Binding("ctrl+p", "command_palette", "Command palette",
                                tooltip="Every action of the current screen, by name")]),
        ("Unlock", [*bindings_of(UnlockScreen),
                    Binding("enter", "", "Next field",
                            tooltip="Operator, then passphrase, then code: six digits unlock")]),
        ("Dashboard", [enter_open, *bindings_of(DashboardScreen),
                       Binding("up,down,pageup,pagedown,home,end", "", "Move",
                               key_display="arrows/pg", tooltip="Move through the list")]),
        ("Request form", bindings_of(RequestModal)),
        ("Checkout (reveal)", bindings_of(RevealScreen)),
        ("Countersign / approve", bindings_of(CountersignModal)),
        ("Deny", bindings_of(DenyModal)),
        ("Approvals queue", [Binding("enter", "", "Open", tooltip="The request's checkout"),
                             *bindings_of(ApprovalsScreen)]),
        ("Approve (step-up)", bindings_of(StepUpModal)),
        ("Reviews", [Binding("enter", "", "Open", tooltip="The checkout under review"),
                     *bindings_of(ReviewsScreen)]),
        ("Review note / suspension reason", bindings_of(NoteModal)),
        ("Onboarding secrets", [Binding("enter", "", "Open",
                                        tooltip="The secret: approve, reveal once, activate"),
                                *bindings_of(OnboardingScreen)]),
        ("Issue an onboarding secret", bindings_of(IssueOnboardingModal)),
        ("Emergency access", bindings_of(EmergencyScreen)),
        ("Emergency kit issued", bindings_of(KitIssuedScreen)),
        ("Alerts", [Binding("enter", "", "Go", tooltip="Where the alert is dealt with"),
                    *bindings_of(AlertsScreen)]),
        ("Apply a value by hand", bindings_of(ApplyScreen)),
        ("Audit log", bindings_of(AuditScreen)),
        ("Operators", bindings_of(OperatorsScreen)),
        ("Enrol an operator", bindings_of(EnrolModal)),
        ("Second operator (remove, enrol, kit)", bindings_of(TwoPersonModal)),
        ("Leaver sweep", bindings_of(SweepModal)),
    ]


def run(vault_dir: Path | str | Store, demo: DemoInfo | None = None,
        open_request: str | None = None) -> None:
    """Open the TUI on the vault at ``vault_dir`` (a directory, a URL or a ``Store``)."""
    vault = ClientSettings.from_env().open_vault(vault_dir)
    app = GlasskeyApp(vault, demo, local_clipboard=True)
    app.start_request = open_request
    app.run()
