"""Issue 11 in the TUI: no terminal injection, process hygiene, slips forgiven."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from glasskey.tui.safety import ControlEscapeFilter
from glasskey.tui.screens.audit import AuditScreen
from helpers import file_store
from rich.segment import Segment
from textual.color import Color
from tui_helpers import (  # noqa: F401  (tui_env is autouse)
    World,
    run_async,
    screen_text,
    settle,
    sign_in,
    tui_env_fixture,
    until,
    world_fixture,
)

SIZE = (100, 32)
EVIL = "\x1b]52;c;aGFja2Vk\x07\x1b[2J\x9b31m\x1b]0;pwned\x07\x7f\u202e"
RAW = [chr(c) for c in (*range(0, 10), *range(11, 32), *range(0x7F, 0xA0))] + ["\u202e"]


def plant(world: World) -> str:
    """Reason, ticket, deny reason and a review summary full of control sequences."""
    oncall = world.session("oncall")
    world.vault.request(oncall, "prod-db-root", "why " + EVIL, "INC-" + EVIL, 600)
    other = world.vault.request(oncall, "aws-root", "r " + EVIL, "T" + EVIL, 600)
    with world.vault.store.transaction() as txn:
        world.vault.services.reviews.queue(txn, "v-evil", "emergency", "aws-root", "security",
                                  "used " + EVIL, required=2)
    return other.id


def assert_inert(text: str) -> None:
    bad = sorted({c for c in text if c in RAW})
    assert not bad, bad


class TestNoTerminalInjection:
    @run_async
    async def test_audit_screen_before_unlock_shows_escapes(self, world: World) -> None:
        plant(world)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.push_screen(AuditScreen())  # reachable before unlock
            await settle(pilot)
            text = screen_text(app)
            assert_inert(text)
            assert "\\x1b]52;c;" in text  # the banner: escaped, visible

    @run_async
    async def test_dashboard_approvals_reviews_and_toasts(self, world: World) -> None:
        plant(world)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "security")
            await settle(pilot)
            for show in (app.show_dashboard, app.show_approvals, app.show_reviews):
                show()
                await settle(pilot)
                text = screen_text(app)
                assert_inert(text)
            assert "\\x1b" in screen_text(app)  # reviews: the summary, escaped
            app.show_approvals()
            await settle(pilot)
            assert "\\x1b]52" in screen_text(app)
            app.notify("from " + EVIL, title="t" + EVIL)
            await pilot.pause()
            note = list(app._notifications)[-1]
            assert_inert(note.message + note.title)
            assert "\\x1b[2J" in note.message


def test_the_line_filter_replaces_any_control_left_over() -> None:
    segs = [Segment("ab\x1b[2Jc"), Segment("\x9bd  ")]
    width = sum(s.cell_length for s in segs)
    out = ControlEscapeFilter().apply(segs, Color(0, 0, 0))
    text = "".join(s.text for s in out)
    assert_inert(text)
    assert text.startswith("ab\u241b[2Jc")
    assert sum(s.cell_length for s in out) == width


def test_the_process_is_not_dumpable_and_writes_no_core(tmp_path: Path) -> None:
    code = ("import ctypes, resource\n"
            "from glasskey.tui import cli\n"
            "before = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)\n"
            "cli.main(['completion', 'bash'])\n"
            "print('RESULT', before, ctypes.CDLL(None).prctl(3, 0, 0, 0, 0),"
            " resource.getrlimit(resource.RLIMIT_CORE))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    assert line == "RESULT 1 0 (0, 0)", line


class TestStepUpBurst:
    @run_async
    async def test_six_digits_in_one_burst_approve_once_and_fail_nothing(self, world: World
                                                                        ) -> None:
        from glasskey.tui.screens.stepup import StepUpModal
        from textual.widgets import Input

        req = world.vault.request(world.session("oncall"), "aws-root", "need it", "INC-9", 600)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "security")
            app.show_approvals()
            await settle(pilot)
            world.clock.advance(30)  # a code not used yet
            await pilot.press("a")
            await settle(pilot)
            assert isinstance(app.screen, StepUpModal)
            field = app.screen.query_one("#stepup-code", Input)
            field.focus()
            await pilot.pause()
            code = world.code("security")
            for digit in code:  # one burst: six Changed events queued before any runs
                field.insert_text_at_cursor(digit)
            await pilot.press("enter")  # and the auto-typer's Enter
            await settle(pilot)
            events = [e["event"] for e in file_store(world.vault).audit.entries()]
            assert events.count("checkout.approved") == 1, events
            assert "auth.failed" not in events, events
            assert world.vault.checkout(req.id).state == "approved"


async def holding(pilot: object, world: World, app: object) -> str:
    """oncall holds aws-root: requested, approved (core), revealed in the app."""
    from glasskey.tui.app import GlasskeyApp

    assert isinstance(app, GlasskeyApp)
    req = world.vault.request(world.session("oncall"), "aws-root", "need it", "INC-9", 600)
    world.clock.advance(30)
    world.vault.approve(world.session("security"), req.id)
    await sign_in(pilot, world, "oncall")  # type: ignore[arg-type]
    app.open_checkout(req.id)
    await settle(pilot)  # type: ignore[arg-type]
    await pilot.press("r")  # type: ignore[attr-defined]
    await settle(pilot)  # type: ignore[arg-type]
    assert world.vault.checkout(req.id).state == "checked-out"
    return req.id


class TestSlipsAreForgiven:
    @run_async
    async def test_checkin_quit_and_lock_ask_first(self, world: World) -> None:
        from glasskey.tui.screens.confirm import ConfirmModal
        from glasskey.tui.screens.unlock import UnlockScreen

        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            req = await holding(pilot, world, app)
            for key in ("i", "ctrl+q", "ctrl+o"):
                await pilot.press(key)
                await settle(pilot)
                assert isinstance(app.screen, ConfirmModal), key
                await pilot.press("n")
                await settle(pilot)
                assert app.session is not None and app.is_running
                assert world.vault.checkout(req).state == "checked-out"
            await pilot.press("ctrl+l")  # everyone's "clear screen": a redraw, not a lock
            await settle(pilot)
            assert app.session is not None and not isinstance(app.screen, ConfirmModal)
            await pilot.press("ctrl+o")
            await settle(pilot)
            await pilot.press("y")
            await settle(pilot)
            assert isinstance(app.screen, UnlockScreen) and app.session is None

    @run_async
    async def test_cancel_asks_first(self, world: World) -> None:
        from glasskey.tui.screens.confirm import ConfirmModal

        req = world.vault.request(world.session("oncall"), "aws-root", "need it", "INC-9", 600)
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "oncall")
            app.open_checkout(req.id)
            await settle(pilot)
            await pilot.press("x")
            await settle(pilot)
            assert isinstance(app.screen, ConfirmModal)
            await pilot.press("escape")
            await settle(pilot)
            assert world.vault.checkout(req.id).state == "requested"
            await pilot.press("x", "y")
            await settle(pilot)
            assert world.vault.checkout(req.id).state == "closed"


def toasts(app: object) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]  # type: ignore[attr-defined]


class TestFeedback:
    @run_async
    async def test_approvers_hear_of_new_requests_and_requesters_of_denials(self, world: World
                                                                            ) -> None:
        approver = world.app()
        requester = world.app()
        async with approver.run_test(size=SIZE) as p1, requester.run_test(size=SIZE) as p2:
            bells: list[str] = []
            approver.bell = lambda: bells.append("approver")  # type: ignore[method-assign]
            requester.bell = lambda: bells.append("requester")  # type: ignore[method-assign]
            await sign_in(p1, world, "security")
            world.clock.advance(30)
            await sign_in(p2, world, "oncall")
            world.clock.advance(30)
            req = world.vault.request(world.session("oncall"), "aws-root", "db down", "INC-7",
                                      600)
            approver.poll_vault()
            requester.poll_vault()
            await settle(p1)
            await until(p1, lambda: any("New request" in t for t in toasts(approver)))
            assert any("New request" in t and "oncall asks for aws-root" in t
                       for t in toasts(approver)), toasts(approver)
            assert bells == ["approver"]
            assert not any("New request" in t for t in toasts(requester))
            world.clock.advance(30)
            world.vault.deny(world.session("security"), req.id, "use the replica")
            requester.poll_vault()
            await settle(p2)
            await until(p2, lambda: any("denied by" in t for t in toasts(requester)))
            assert any("denied by security: use the replica" in t for t in toasts(requester))
            assert bells == ["approver", "requester"]

    @run_async
    async def test_lease_warnings_at_5_and_1_minute(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            bells: list[int] = []
            app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
            req = await holding(pilot, world, app)
            app.poll_vault()
            lease = world.vault.checkout(req).lease_expires
            assert lease is not None
            world.clock.set(lease - 301)
            app._tick()
            assert bells == []
            world.clock.set(lease - 299)
            app._tick()
            app._tick()
            await pilot.pause()
            assert bells == [1] and any("ends in 4m59s" in t for t in toasts(app)), toasts(app)
            world.clock.set(lease - 59)
            app._tick()
            await pilot.pause()
            assert bells == [1, 1] and any("ends in 59s" in t for t in toasts(app))

    @run_async
    async def test_step_up_right_after_unlock_says_wait(self, world: World) -> None:
        from glasskey.tui.screens.stepup import StepUpModal
        from textual.widgets import Input, Static

        req = world.vault.request(world.session("oncall"), "aws-root", "need it", "INC-9", 600)
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "security")  # spends this step's code
            app.show_approvals()
            await settle(pilot)
            await pilot.press("a")
            await settle(pilot)
            assert isinstance(app.screen, StepUpModal)
            field = app.screen.query_one("#stepup-code", Input)
            field.focus()
            field.insert_text_at_cursor(world.code("security"))
            await settle(pilot)
            error = str(app.screen.query_one("#stepup-error", Static).render())
            assert "wait" in error and "next code" in error, error
            events = [e["event"] for e in file_store(world.vault).audit.entries()]
            assert "auth.failed" not in events
            world.clock.advance(30)
            field.insert_text_at_cursor(world.code("security"))
            await settle(pilot)
            assert world.vault.checkout(req.id).state == "approved"


class TestForms:
    @run_async
    async def test_enter_in_the_ticket_field_moves_on_and_durations_are_strict(
            self, world: World) -> None:
        from glasskey.tui.screens.request import RequestModal
        from textual.widgets import Input, Static

        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "oncall")
            app.open_request("aws-root")
            await settle(pilot)
            modal = app.screen
            assert isinstance(modal, RequestModal)
            modal.query_one("#request-reason", Input).insert_text_at_cursor("why")
            await pilot.press("enter")
            modal.query_one("#request-ticket", Input).insert_text_at_cursor("T-1")
            await pilot.press("enter")
            await settle(pilot)
            assert app.screen is modal  # not submitted with the prefilled duration
            assert app.focused is modal.query_one("#request-duration", Input)
            app.focused.value = "30"
            await pilot.press("enter")
            await settle(pilot)
            error = str(modal.query_one("#request-error", Static).render())
            assert "90s, 30m, 1h30m or 2h" in error
            app.focused.value = "1h30m"
            await pilot.press("enter")
            await settle(pilot)
            assert app.screen is not modal
        assert [c.duration for c in world.vault.checkouts()] == [5400]


class TestEmergencyForm:
    @run_async
    async def test_credential_from_a_list_and_a_slip_keeps_the_code(self, world: World
                                                                    ) -> None:
        from glasskey.tui.screens.emergency import EmergencyScreen
        from textual.widgets import Input, Select, Static

        oncall = world.session("oncall")
        onb = world.vault.issue_onboarding(oncall, "dave", "new hire", "HR-1", "in person",
                                           3600)
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "oncall")
            app.show_emergency(onb.cred_name)  # the highlighted row was an onboarding secret
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, EmergencyScreen)
            select = screen.query_one("#emg-cred", Select)
            offered = [str(v) for _label, v in select._options if v is not Select.NULL]
            assert offered == ["aws-root", "batch-provisioner", "ldap-admin", "prod-db-root"]
            assert select.is_blank()  # the onboarding secret was not carried over
            select.value = "aws-root"
            screen.query_one("#emg-reason", Input).value = "approvers unreachable"
            screen.query_one("#emg-ticket", Input).value = "INC-1"
            screen.query_one("#emg-duration", Input).value = "9h"
            code = screen.query_one("#emg-code", Input)
            code.value = "GK1-typed-with-care"
            screen.action_submit()
            await settle(pilot)
            error = str(screen.query_one("#emergency-error", Static).render())
            assert "exceeds aws-root's maximum" in error
            assert code.value == "GK1-typed-with-care"  # the slip did not clear it
            screen.query_one("#emg-duration", Input).value = "30x"
            screen.action_submit()
            await settle(pilot)
            assert "90s, 30m, 1h30m or 2h" in str(
                screen.query_one("#emergency-error", Static).render())
            assert code.value == "GK1-typed-with-care"


class TestAuditViewer:
    @run_async
    async def test_enter_opens_the_entry_in_full_and_80_columns_keep_the_subject(
            self, world: World) -> None:
        from glasskey.tui.screens.audit import AuditEntryModal

        long_reason = "the primary is down and " + "the replica lags badly " * 8 + "END"
        req = world.vault.request(world.session("oncall"), "aws-root", long_reason, "INC-5",
                                  600)
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=(80, 24)) as pilot:
            await sign_in(pilot, world, "oncall")
            app.show_audit()
            await settle(pilot)
            text = screen_text(app)
            assert "Subject" in text and req.id in text  # who it is about, at 80 columns
            await pilot.press("enter")  # the newest entry: the request
            await settle(pilot)
            assert isinstance(app.screen, AuditEntryModal)
            text = " ".join(screen_text(app).split())
            assert "END" in text and "checkout.requested" in text and "INC-5" in text
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, AuditScreen)


class TestDemo:
    def test_demo_has_two_approvers_and_says_where_it_is(self, tmp_path: Path) -> None:
        from glasskey.tui.demo import make_demo_vault
        from glasskey.tui.widgets.demo_panel import DemoPanel

        info = make_demo_vault(tmp_path / "vault")
        approvers = [name for name, roles, _p, _s in info.operators if "approver" in roles]
        assert len(approvers) >= 2  # an emergency use needs two reviews
        assert info.second_terminal() == f"glasskey --vault {tmp_path / 'vault'}"
        panel = DemoPanel(info.operators, lambda: 1_800_000_000.0, vault=str(info.root),
                          second=info.second_terminal())
        text = panel.render_text().plain
        assert "glasskey --vault \\\n" in text and str(tmp_path / "vault") in text

    @run_async
    async def test_an_onboarding_secret_is_not_offered_for_request(self, world: World
                                                                   ) -> None:
        from glasskey.tui.screens.request import RequestModal

        onb = world.vault.issue_onboarding(world.session("oncall"), "dave", "new hire",
                                           "HR-1", "in person", 3600)
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "oncall")
            app.open_request(onb.cred_name)
            await settle(pilot)
            assert not isinstance(app.screen, RequestModal)
            assert any("cannot be requested" in t for t in toasts(app))


class TestHolderDuringTheLease:
    @run_async
    async def test_after_a_lock_the_holder_sees_it_again_and_can_extend(self, world: World
                                                                         ) -> None:
        from glasskey.tui.screens.note import NoteModal
        from textual.widgets import Input

        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            req = await holding(pilot, world, app)
            await pilot.press("ctrl+o")
            await settle(pilot)
            await pilot.press("y")  # holding a lease: asked first
            await settle(pilot)
            assert app.session is None and not app.secrets
            world.clock.advance(30)
            await sign_in(pilot, world, "oncall")  # re-authenticated
            app.open_checkout(req)
            await settle(pilot)
            assert "r shows it again" in screen_text(app)
            await pilot.press("r")
            await settle(pilot)
            assert "aws-root-value-AAAA-1111" in screen_text(app)
            evs = [e["event"] for e in file_store(world.vault).audit.entries()]
            assert evs.count("checkout.revealed") == 1
            assert evs.count("checkout.redisplayed") == 1
            before = world.vault.checkout(req).lease_expires
            assert before is not None
            await pilot.press("e")
            await settle(pilot)
            assert isinstance(app.screen, NoteModal)
            app.screen.query_one("#note-text", Input).insert_text_at_cursor("15m")
            await pilot.press("enter")
            await settle(pilot)
            assert world.vault.checkout(req).lease_expires == before + 900


class TestCountersignHabit:
    @run_async
    async def test_the_unlock_habit_works_with_one_approver(self, world: World) -> None:
        from glasskey.tui.screens.countersign import CountersignModal
        from textual.widgets import Input

        req = world.vault.request(world.session("oncall"), "aws-root", "need it", "INC-9", 600)
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "oncall")
            app.open_checkout(req.id)
            await settle(pilot)
            await pilot.press("s")
            await settle(pilot)
            assert isinstance(app.screen, CountersignModal)
            await pilot.press("enter")  # the habit: "choose yourself" first
            await pilot.pause()
            assert app.focused is app.screen.query_one("#auth-passphrase", Input)
            app.focused.insert_text_at_cursor(world.passphrase("security"))
            await pilot.press("enter")
            await pilot.pause()
            assert app.focused is app.screen.query_one("#auth-totp", Input)
            app.focused.insert_text_at_cursor(world.code("security"))
            await settle(pilot)
            assert world.vault.checkout(req.id).state == "approved"


class TestExpiry:
    @run_async
    async def test_the_requester_hears_when_an_approval_expires_unclaimed(
            self, world: World) -> None:
        req = world.vault.request(world.session("oncall"), "aws-root", "need it", "INC-9", 600)
        world.clock.advance(30)
        world.vault.approve(world.session("security"), req.id)
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            bells: list[int] = []
            app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
            await sign_in(pilot, world, "oncall")
            app._tick()
            await pilot.pause()
            assert not any("expired" in t for t in toasts(app))
            world.clock.advance(16 * 60)  # past the 15-minute claim window
            app._tick()
            app._tick()
            await until(pilot, lambda: any("expired" in t for t in toasts(app)))
            assert bells == [1]
            assert any("aws-root expired before it was used" in t for t in toasts(app))


class TestRealDemoLayout:
    @run_async
    async def test_the_real_demo_unlock_screen_fits_80x24_and_100x30(self, tmp_path: Path
                                                                     ) -> None:
        from glasskey.core.clock import FakeClock
        from glasskey.core.vault import Vault
        from glasskey.tui.app import GlasskeyApp
        from glasskey.tui.demo import DEMO_OPERATORS, make_demo_vault

        clock = FakeClock(1_800_000_000.0)
        info = make_demo_vault(tmp_path / "vault", clock)
        for size in ((80, 24), (100, 30)):
            app = GlasskeyApp(Vault(tmp_path / "vault", clock, allow_weak_kdf=True), info, clock)
            async with app.run_test(size=size) as pilot:
                await settle(pilot)
                text = screen_text(app)
                for name, _roles, passphrase, _seed in DEMO_OPERATORS:
                    assert f"pass  {passphrase}" in text, (size, name)
                assert text.count("s left") == len(DEMO_OPERATORS), size
                assert "glasskey --vault \\" in text and "? Help" in text, size
