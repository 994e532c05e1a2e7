"""Pilot tests: every workflow of the TUI driven by keys, end to end, on a real vault."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from glasskey.core.models import CheckoutState
from glasskey.tui.app import GlasskeyApp
from glasskey.tui.screens.approvals import ApprovalsScreen
from glasskey.tui.screens.audit import AuditScreen
from glasskey.tui.screens.countersign import CountersignModal
from glasskey.tui.screens.dashboard import DashboardScreen
from glasskey.tui.screens.deny import DenyModal
from glasskey.tui.screens.help import HelpModal
from glasskey.tui.screens.operators import OperatorsScreen
from glasskey.tui.screens.request import RequestModal
from glasskey.tui.screens.reveal import RevealScreen
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.screens.unlock import UnlockScreen
from glasskey.tui.widgets.auth_form import AuthForm
from glasskey.tui.widgets.secret import MASK, SecretView
from glasskey.tui.widgets.vtable import VirtualTable
from helpers import file_store
from textual.pilot import Pilot
from tui_helpers import (
    SHOWN_VALUE,
    World,
    make_world,
    run_async,
    screen_text,
    settle,
    step_up,
    tui_env_fixture,  # noqa: F401  (autouse: witness checkpoints in a temp dir)
    type_text,
    unlock,
    until,
    world_fixture,  # noqa: F401
)

S = CheckoutState
SIZE = (100, 32)


def top(app: GlasskeyApp) -> object:
    """The top screen, without the type narrowing of an earlier ``isinstance``."""
    return app.screen


def audit_events(world: World) -> list[str]:
    return [e["event"] for e in file_store(world.vault).audit.entries()]


async def open_request_form(pilot: Pilot[None], app: GlasskeyApp, cred: str) -> None:
    dash = app.screen
    assert isinstance(dash, DashboardScreen)
    await pilot.press("slash")
    await type_text(pilot, cred)
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(app.screen, RequestModal)


async def fill_request(pilot: Pilot[None], reason: str = "db down", ticket: str = "INC-1"
                       ) -> None:
    await type_text(pilot, reason)
    await pilot.press("enter")
    await type_text(pilot, ticket)
    await pilot.press("enter")  # to the duration field
    await pilot.press("enter")  # Enter there submits
    await settle(pilot)


class TestUnlock:
    @run_async
    async def test_wrong_then_right(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, UnlockScreen)
            await unlock(pilot, world, "oncall", passphrase="not-the-passphrase")
            assert isinstance(app.screen, UnlockScreen)
            error = str(app.screen.query_one("#auth-error").render())
            assert "passphrase or TOTP code is wrong" in error
            assert app.session is None
            # The form is ready again: passphrase cleared and focused.
            assert app.screen.query_one("#auth-passphrase").has_focus
            await unlock(pilot, world, "oncall")
            assert isinstance(app.screen, DashboardScreen)
            assert app.session is not None and app.session.name == "oncall"
        assert "auth.failed" in audit_events(world)

    @run_async
    async def test_key_derivation_runs_in_a_worker_with_a_spinner(self, world: World) -> None:
        import threading

        release = threading.Event()
        real_unlock = world.vault.unlock

        def slow_unlock(name: str, passphrase: str, code: str) -> object:
            assert threading.current_thread() is not threading.main_thread()
            release.wait(5)
            return real_unlock(name, passphrase, code)

        world.vault.unlock = slow_unlock  # type: ignore[method-assign,assignment]
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            from glasskey.tui.widgets.auth_form import AuthForm as Form

            form = app.screen.query_one(Form)
            form.query_one("#auth-passphrase").focus()
            await pilot.pause()
            await type_text(pilot, world.passphrase("oncall"))
            await pilot.press("enter")
            await type_text(pilot, world.code("oncall"))
            await pilot.pause(0.1)
            assert form.query_one("#auth-busy").display  # the spinner, while Argon2id runs
            assert "Deriving the key" in screen_text(app)
            assert isinstance(app.screen, UnlockScreen)
            release.set()
            await settle(pilot)
            assert isinstance(app.screen, DashboardScreen)

    @run_async
    async def test_wrong_code_says_one_sentence(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall", code="000000")
            text = screen_text(app)
            assert "passphrase or TOTP code is wrong" in text
            assert "Traceback" not in text

    @run_async
    async def test_incomplete_form_is_explained(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("enter")  # operator chosen -> passphrase
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "Type the passphrase" in screen_text(app)

    @run_async
    async def test_demo_panel_shows_live_codes(self, world: World) -> None:
        app = world.app(demo=True)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            text = screen_text(app)
            code = world.code("security")
            assert f"{code[:3]} {code[3:]}" in text
            assert world.passphrase("oncall") in text
            world.clock.advance(30)
            await pilot.pause(1.1)
            code = world.code("security")
            assert f"{code[:3]} {code[3:]}" in screen_text(app)


class TestOnCallPath:
    @run_async
    async def test_request_countersign_reveal_copy_checkin(self, world: World) -> None:
        app = world.app(clipboard_clear_seconds=30)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await open_request_form(pilot, app, "prod-db")
            await fill_request(pilot)
            screen = app.screen
            assert isinstance(screen, RevealScreen)
            assert screen.checkout is not None and screen.checkout.state == S.REQUESTED
            req_id = screen.request_id

            await pilot.press("s")
            await pilot.pause()
            assert isinstance(app.screen, CountersignModal)
            form = app.screen.query_one(AuthForm)
            assert form.operator == "security"  # the only eligible approver
            await unlock(pilot, world, "security")
            assert top(app) is screen
            assert world.vault.checkout(req_id).state == S.APPROVED
            view = screen.query_one(SecretView)
            assert not view.has_secret
            assert not view.allow_select  # the selection copy can never lift it

            await pilot.press("c")  # claim and copy, still masked
            await pilot.pause()
            assert app.clipboard == SHOWN_VALUE
            assert world.vault.checkout(req_id).state == S.CHECKED_OUT
            assert view.has_secret and not view.shown
            assert SHOWN_VALUE not in screen_text(app)
            assert MASK in screen_text(app)
            assert "Lease      30m00s left" in screen_text(app)

            await pilot.press("r")  # the explicit reveal
            await pilot.pause()
            assert view.shown
            assert SHOWN_VALUE in screen_text(app)  # literally: markup off
            await pilot.press("r")
            await pilot.pause()
            assert SHOWN_VALUE not in screen_text(app)

            await pilot.press("i")
            await pilot.pause()
            await pilot.press("y")  # the y/n question (issue 11)
            await settle(pilot)
            checkout = world.vault.checkout(req_id)
            assert checkout.state == S.CLOSED
            assert checkout.rotation["outcome"] == "committed"
            assert req_id not in app.secrets
            assert app.clipboard == ""  # the copy was cleared at check-in
            assert "done: now version 2" in screen_text(app)
        events = audit_events(world)
        assert events.count("checkout.revealed") == 1
        assert "checkout.refused" not in events
        assert "rotate.commit" in events

    @run_async
    async def test_second_look_comes_from_memory(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await open_request_form(pilot, app, "aws-root")
            await fill_request(pilot)
            req_id = app.screen.request_id  # type: ignore[attr-defined]
            world.vault.approve(world.session("security"), req_id)
            app.poll_vault()  # what the 0.5 s timer does
            for _ in range(3):
                await pilot.press("r")
                await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            await pilot.press("enter")  # dashboard: open the checkout again
            await pilot.pause()
            assert isinstance(app.screen, RevealScreen)
            await pilot.press("r")
            await pilot.pause()
            assert "aws-root-value-AAAA-1111" in screen_text(app)
        events = audit_events(world)
        assert events.count("checkout.revealed") == 1
        assert "checkout.refused" not in events

    @run_async
    async def test_clipboard_is_cleared_after_the_timeout(self, world: World) -> None:
        # Long enough that a loaded machine still sees the copy before the clear fires.
        app = world.app(clipboard_clear_seconds=2.0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await open_request_form(pilot, app, "ldap-admin")
            await fill_request(pilot)
            req_id = app.screen.request_id  # type: ignore[attr-defined]
            world.vault.approve(world.session("security"), req_id)
            app.poll_vault()
            await until(pilot, lambda: req_id in app.secrets or "approved" in screen_text(app))
            await pilot.press("c")
            await until(pilot, lambda: app.clipboard != "")
            assert app.clipboard == "ldap-value-CCCC-3333"
            copied = time.monotonic()
            await until(pilot, lambda: app.clipboard == "")
            assert app.clipboard == ""
            assert time.monotonic() - copied >= 1.5  # not cleared early

    @run_async
    async def test_request_form_validates_and_shows_the_maximum(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await open_request_form(pilot, app, "prod-db")
            assert "maximum 4h00m (policy)" in screen_text(app)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "Give a reason" in screen_text(app)
            await type_text(pilot, "why")
            await pilot.press("tab")
            await type_text(pilot, "T-1")
            await pilot.press("tab", "ctrl+a", "ctrl+k")
            await type_text(pilot, "9h")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, RequestModal)
            assert "exceeds prod-db-root's maximum of 4h00m" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)
        assert "checkout.requested" not in audit_events(world)

    @run_async
    async def test_cancel_a_request(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await open_request_form(pilot, app, "aws-root")
            await fill_request(pilot)
            req_id = app.screen.request_id  # type: ignore[attr-defined]
            await pilot.press("x")
            await pilot.pause()
            await pilot.press("y")  # the y/n question (issue 11)
            await pilot.pause()
            assert world.vault.checkout(req_id).closed_reason == "cancelled"

    @run_async
    async def test_lock_forgets_the_session_and_secrets(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await open_request_form(pilot, app, "aws-root")
            await fill_request(pilot)
            req_id = app.screen.request_id  # type: ignore[attr-defined]
            world.vault.approve(world.session("security"), req_id)
            app.poll_vault()
            await pilot.pause()
            await pilot.press("c")
            await pilot.pause()
            assert app.secrets
            await pilot.press("ctrl+o")
            await pilot.pause()
            await pilot.press("y")  # the y/n question (issue 11)
            await pilot.pause()
            assert isinstance(app.screen, UnlockScreen)
            assert app.session is None and not app.secrets
            assert app.clipboard == ""
            assert "aws-root-value" not in screen_text(app)


class TestTwoSessions:
    @run_async
    async def test_approval_in_a_second_app_shows_up_live(self, world: World) -> None:
        """Request in one app, approve in another app's queue; the first redraws itself."""
        requester = world.app(poll_interval=0.2)
        approver = GlasskeyApp(world.new_vault(), None, world.clock, poll_interval=0.2)
        async with requester.run_test(size=SIZE) as p1, approver.run_test(size=SIZE) as p2:
            await p1.pause()
            await p2.pause()
            await unlock(p1, world, "oncall")
            await unlock(p2, world, "security")
            await open_request_form(p1, requester, "prod-db")
            await fill_request(p1)
            # The approver's dashboard counts it without a keypress.
            await until(p2, lambda: "1 awaiting approval (1 for you)" in screen_text(approver))
            assert "1 awaiting approval (1 for you)" in screen_text(approver)
            reveal = requester.screen
            assert isinstance(reveal, RevealScreen)
            assert "requested" in screen_text(requester)

            await p2.press("a")
            await until(p2, lambda: isinstance(approver.screen, ApprovalsScreen)
                        and approver.screen.query_one(VirtualTable).row_count == 1)
            queue = approver.screen
            assert isinstance(queue, ApprovalsScreen)
            assert queue.query_one(VirtualTable).row_count == 1
            assert "prod-db-root" in screen_text(approver)
            world.clock.advance(30)  # the approval asks for a code not used yet
            await p2.press("a")
            await p2.pause()
            assert isinstance(approver.screen, StepUpModal)  # TOTP only: no passphrase
            await step_up(p2, world, "security")
            assert top(approver) is queue
            await until(p2, lambda: queue.query_one(VirtualTable).row_count == 0)
            assert queue.query_one(VirtualTable).row_count == 0

            # No key pressed in the requester's app: the poll redraws it.
            await until(p1, lambda: "approved: ready to reveal" in screen_text(requester))
            assert reveal.checkout is not None and reveal.checkout.state == S.APPROVED
            assert "approved: ready to reveal" in screen_text(requester)

    @run_async
    async def test_deny_from_the_queue(self, world: World) -> None:
        req = world.vault.request(world.session("oncall"), "aws-root", "need it", "INC-9", 600)
        app = world.app()
        world.clock.advance(30)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "security")
            await pilot.press("a")
            await pilot.pause()
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, DenyModal)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "a reason is required" in screen_text(app)
            await type_text(pilot, "not [b]now[/b]")
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, ApprovalsScreen)
        checkout = world.vault.checkout(req.id)
        assert checkout.closed_reason == "denied"
        assert checkout.deny_reason == "not [b]now[/b]"

    @run_async
    async def test_sweep_checks_in_my_overdue_lease(self, world: World) -> None:
        s = world.session("oncall")
        req = world.vault.request(s, "aws-root", "r", "T", 60)
        world.vault.approve(world.session("security"), req.id)
        world.vault.reveal(s, req.id)
        world.clock.advance(90)
        app = world.app(sweep_interval=3600)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert "sweep" in {t.name for t in app._timers}
            await unlock(pilot, world, "oncall")
            assert "OVERDUE" in screen_text(app)
            app.sweep()  # what the timer does every sweep_interval seconds
            await settle(pilot)
            await until(pilot, lambda: "OVERDUE" not in screen_text(app))
            assert world.vault.checkout(req.id).state == S.CLOSED
            assert "OVERDUE" not in screen_text(app)
        assert "lease.expired" in audit_events(world)


class TestDashboard:
    @run_async
    async def test_filter_200_credentials(self, tmp_path: Path) -> None:
        w = make_world(tmp_path / "v", bulk=200)
        app = w.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, w, "oncall")
            table = app.screen.query_one(VirtualTable)
            assert table.total_count == 200 and table.row_count == 200
            await pilot.press("slash")
            await type_text(pilot, "bulk-00199")
            await pilot.pause()
            assert table.row_count == 1
            assert "bulk-00199" in screen_text(app)
            await pilot.press("backspace")
            await pilot.pause()
            assert table.row_count == 10  # bulk-00190 .. bulk-00199
            await pilot.press("escape", "escape")
            await pilot.pause()
            assert table.row_count == 200
            assert "200 credentials" in screen_text(app)

    @run_async
    async def test_counts_and_states(self, world: World) -> None:
        s = world.session("oncall")
        world.vault.request(s, "aws-root", "r", "T", 600)
        req = world.vault.request(s, "ldap-admin", "r", "T", 60)
        world.vault.approve(world.session("security"), req.id)
        world.vault.reveal(s, req.id)
        world.clock.advance(120)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "security")
            text = screen_text(app)
            assert "1 awaiting approval (1 for you)" in text
            # The count is vault.alerts(): the overdue lease and "no emergency kit".
            assert len(world.vault.alerts()) == 2
            assert "2 alerts" in text
            assert "OVERDUE" in text and "+1m00s" in text
            assert "requested" in text

    @run_async
    async def test_screens_open_from_the_dashboard(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            for key, kind in (("a", ApprovalsScreen), ("l", AuditScreen),
                              ("o", OperatorsScreen)):
                await pilot.press(key)
                await settle(pilot)
                assert isinstance(app.screen, kind), key
                await pilot.press("escape")
                await pilot.pause()
                assert isinstance(app.screen, DashboardScreen)
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpModal)
            assert "Everywhere" in screen_text(app)
            help_keys = {b.description for _t, bs in app.screen.sections for b in bs}
            for word in ("Countersign", "Check in", "Approvals", "Verify chain", "Lock"):
                assert word in help_keys
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)


class TestPalette:
    @run_async
    async def test_screenshot_command_is_removed(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Screenshot" not in titles
            assert "Quit" in titles

    @run_async
    async def test_actions_are_in_the_palette(self, world: World) -> None:
        from glasskey.tui.palette import ScreenActions

        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            provider = ScreenActions(app.screen)
            titles = [t for t, _h, _c in provider._commands()]
            for title in ("Request", "Filter", "Approvals", "Audit", "Operators", "Lock",
                          "Help", "Quit"):
                assert title in titles
            await pilot.press("ctrl+p")
            await pilot.pause()
            await type_text(pilot, "operators")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, OperatorsScreen)


class TestAudit:
    @run_async
    async def test_chain_status_and_filter(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await pilot.press("l")
            await settle(pilot)
            text = screen_text(app)
            assert "Chain intact" in text
            assert "credential.added" in text
            await pilot.press("slash")
            await type_text(pilot, "auth")
            await pilot.pause()
            assert app.screen.query_one(VirtualTable).row_count == 0
            await pilot.press("ctrl+a", "ctrl+k")
            await type_text(pilot, "added")
            await pilot.pause()
            assert app.screen.query_one(VirtualTable).row_count == 4

    @run_async
    async def test_follow_shows_new_entries_live(self, world: World) -> None:
        app = world.app(poll_interval=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await pilot.press("l")
            await settle(pilot)
            world.clock.advance(30)
            world.vault.request(world.session("oncall"), "aws-root", "live", "T-7", 600)
            await until(pilot, lambda: "checkout.requested" in screen_text(app))
            assert "checkout.requested" in screen_text(app)

    @run_async
    async def test_broken_chain_names_the_first_bad_entry(self, world: World) -> None:
        path = file_store(world.vault).audit.path
        lines = path.read_bytes().splitlines(keepends=True)
        assert json.loads(lines[3])["time"] == "2027-01-15T08:00:00Z"
        # Same length, so only the chain (not the byte offsets) tells.
        lines[3] = lines[3].replace(b'"time":"2027-01-15T08:00:00Z"',
                                    b'"time":"2027-01-15T08:00:01Z"')
        path.write_bytes(b"".join(lines))
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await unlock(pilot, world, "oncall")
            await pilot.press("l")
            await settle(pilot)
            text = screen_text(app)
            assert "CHAIN BROKEN" in text
            assert "entry 4 has a hash that does not match its content" in text


def test_core_never_imports_textual() -> None:
    """The boundary the TUI relies on (checked here too because the TUI owns textual)."""
    import subprocess
    import sys

    code = ("import sys, core.vault, core.checkout, core.rotation, core.audit;"
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("state", ["requested", "approved", "checked-out", "overdue",
                                   "rotation-failed", "sealed"])
def test_credential_state_labels(world: World, state: str) -> None:
    from glasskey.tui.widgets.states import credential_state

    cred = world.vault.credential("aws-root")
    now = world.clock.now()
    checkout = None
    if state != "sealed":
        s = world.session("oncall")
        checkout = world.vault.request(s, "aws-root", "r", "T", 60)
        if state != "requested":
            world.vault.approve(world.session("security"), checkout.id)
            if state != "approved":
                world.vault.reveal(s, checkout.id)
        checkout = world.vault.checkout(checkout.id)
    if state == "overdue":
        now += 61
    if state == "rotation-failed":
        from dataclasses import replace

        assert checkout is not None
        checkout = replace(checkout, state="rotation-failed")
    label = credential_state(cred, checkout, now).label
    expected = {"requested": "requested", "approved": "approved",
                "checked-out": "checked out", "overdue": "OVERDUE",
                "rotation-failed": "ROTATION-FAILED", "sealed": "sealed"}[state]
    assert label == expected
