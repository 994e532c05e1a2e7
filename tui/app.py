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

Beside it: ``tui/clipboard.py`` (the copy and its clear-after timer),
``tui/watcher.py`` (telling this operator what happened to requests) and
``tui/palette.py`` (the command palette's provider and the help's key list).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
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
    printable,
)
from glasskey.tui.clipboard import Clipboard
from glasskey.tui.demo import DemoInfo
from glasskey.tui.environment import ClientSettings
from glasskey.tui.palette import ScreenActions, help_sections
from glasskey.tui.safety import ControlEscapeFilter
from glasskey.tui.screens.alerts import AlertsScreen
from glasskey.tui.screens.apply import ApplyScreen
from glasskey.tui.screens.approvals import ApprovalsScreen
from glasskey.tui.screens.audit import AuditScreen
from glasskey.tui.screens.base import GlasskeyScreen, LiveView
from glasskey.tui.screens.confirm import ConfirmModal
from glasskey.tui.screens.dashboard import DashboardScreen
from glasskey.tui.screens.emergency import EmergencyScreen
from glasskey.tui.screens.help import HelpModal
from glasskey.tui.screens.onboarding import OnboardingScreen
from glasskey.tui.screens.operators import OperatorsScreen
from glasskey.tui.screens.request import RequestModal
from glasskey.tui.screens.reveal import RevealScreen
from glasskey.tui.screens.reviews import ReviewsScreen
from glasskey.tui.screens.unlock import UnlockScreen
from glasskey.tui.watcher import RequestWatcher
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

S = CheckoutState

#: System commands removed from the palette. Screenshot writes an SVG of the
#: screen to disk, revealed secrets included.
REMOVED_SYSTEM_COMMANDS = frozenset({"Screenshot"})

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
        self.clip = Clipboard(self, clipboard_clear_seconds, local=local_clipboard)
        self._seen_seq = -1
        self._sweeping = False
        self.unlocked_at = 0.0
        # Late-bound: a toast or bell goes through whatever the app's methods are then.
        self.watcher = RequestWatcher(vault, self.now, lambda *a, **k: self.notify(*a, **k),
                                      lambda: self.bell())
        #: A request to show once unlocked (``glasskey open REQ``).
        self.start_request: str | None = None
        if demo is not None:
            self.sub_title = "DEMO"
        # No control character from the vault's text reaches the terminal (issue 11).
        self._filters.append(ControlEscapeFilter())

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
        if self.vault.pushes_changes:
            self._listen_for_changes()  # a database vault can push: no wait for the poll

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
        self.watcher.forget()
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
        self.push_screen(HelpModal(help_sections(type(self))))

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

    @work(thread=True, group="listen", exclusive=True)
    def _listen_for_changes(self) -> None:
        """Wake the screens as soon as another machine commits (docs/team-mode.md).

        ``vault.wait_for_change`` (LISTEN/NOTIFY) returns the commit counter
        once it moves; the notification is only a wake-up, so ``poll_vault`` re-reads
        as it would on its timer, which stays as the fallback (a lost notification or
        a dropped connection costs at most one poll interval).
        """
        wait = self.vault.wait_for_change
        seen = self._seen_seq
        while self.is_running:
            try:
                current = int(wait(seen, 1.0))
            except GlasskeyError:
                time.sleep(1.0)
                continue
            if current != seen:
                seen = current
                try:
                    self.call_from_thread(self.poll_vault)
                except RuntimeError:
                    return  # the app stopped meanwhile

    # -- telling people what happened to requests (tui/watcher.py) ---------------------------
    def watch_requests(self) -> None:
        self.watcher.look(self.session)

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
        self.watcher.lease_warnings(self.session)
        for screen in reversed(self.screen_stack):
            if isinstance(screen, LiveView) and screen.ready:
                try:
                    screen.tick()
                except NoMatches:
                    pass  # the screen is being taken down
            if not screen.is_modal:
                break
        self.clip.tick()

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

    # -- secrets and the clipboard (tui/clipboard.py) -----------------------------------------
    def forget_secret(self, request_id: str) -> None:
        self.secrets.pop(request_id, None)
        if self.clip.owner == request_id:
            self.clear_clipboard()

    def copy_secret(self, request_id: str) -> None:
        secret = self.secrets.get(request_id)
        if secret is None:
            return
        self.clip.copy(request_id, secret.reveal())
        self.notify(f"Copied. The clipboard is cleared in {int(self.clipboard_clear_seconds)} s.",
                    title="Clipboard", markup=False)

    def clear_clipboard(self) -> None:
        self.clip.clear()

    def clipboard_status(self, request_id: str) -> str:
        return self.clip.status(request_id)


def run(vault_dir: Path | str | Store, demo: DemoInfo | None = None,
        open_request: str | None = None) -> None:
    """Open the TUI on the vault at ``vault_dir`` (a directory, a URL or a ``Store``)."""
    vault = ClientSettings.from_env().open_vault(vault_dir)
    app = GlasskeyApp(vault, demo, local_clipboard=True)
    app.start_request = open_request
    app.run()
