"""The command palette's own provider and the help modal's key list.

Both describe the app's keys from the bindings themselves, so that the
palette, the footer and the help can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from glasskey.tui.screens.alerts import AlertsScreen
from glasskey.tui.screens.apply import ApplyScreen
from glasskey.tui.screens.approvals import ApprovalsScreen
from glasskey.tui.screens.audit import AuditScreen
from glasskey.tui.screens.countersign import CountersignModal
from glasskey.tui.screens.dashboard import DashboardScreen
from glasskey.tui.screens.deny import DenyModal
from glasskey.tui.screens.emergency import EmergencyScreen, KitIssuedScreen
from glasskey.tui.screens.help import bindings_of
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
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


class ScreenActions(Provider):
    """The command palette lists what the footer offers on the current screen, and more."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app = self.app
        navigation: Callable[[], list[tuple[str, str, Callable[[], Any]]]] = getattr(
            app, "navigation_commands", list)
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
        for title, help_text, callback in navigation():
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


def help_sections(app_type: type[App[None]]) -> list[tuple[str, list[Binding]]]:
    """Every key of every screen, by screen: what the help modal (? or F1) lists."""
    enter_open = Binding("enter", "", "Open",
                         tooltip="Request a sealed credential or open its checkout")
    return [
        ("Everywhere", [*bindings_of(app_type),
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
