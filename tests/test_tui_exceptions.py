"""Pilot tests of the exception screens: reviews, onboarding, the emergency kit and its
banner, operator removal with the leaver sweep, and the rotation alerts (retry, apply)."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from glasskey.core import totp
from glasskey.core.credentials import CredentialSpec
from glasskey.core.errors import PolicyError
from glasskey.core.models import CheckoutState, Policy
from glasskey.core.secret import SecretValue
from glasskey.tui.app import GlasskeyApp
from glasskey.tui.screens.alerts import AlertsScreen
from glasskey.tui.screens.apply import ApplyScreen
from glasskey.tui.screens.dashboard import DashboardScreen
from glasskey.tui.screens.emergency import EmergencyScreen, KitIssuedScreen
from glasskey.tui.screens.note import NoteModal
from glasskey.tui.screens.onboarding import IssueOnboardingModal, OnboardingScreen
from glasskey.tui.screens.operators import EnrolmentScreen, OperatorsScreen
from glasskey.tui.screens.reveal import RevealScreen
from glasskey.tui.screens.reviews import ReviewsScreen
from glasskey.tui.screens.sweep import SweepModal
from glasskey.tui.screens.twoperson import Progressing, TwoPersonModal
from glasskey.tui.screens.unlock import UnlockScreen
from glasskey.tui.widgets.alert_banner import AlertBanner
from glasskey.tui.widgets.secret import MASK, SecretView
from glasskey.tui.widgets.vtable import VirtualTable
from helpers import file_store
from tui_helpers import (
    AUDITOR,
    ONCALL,
    SECURITY,
    STANDARD_CREDS,
    World,
    make_world,
    run_async,
    screen_text,
    settle,
    sign_in,
    tui_env_fixture,  # noqa: F401  (autouse)
    type_text,
    unlock,
    world_fixture,  # noqa: F401
)

S = CheckoutState
SIZE = (100, 32)
THREE = (ONCALL, SECURITY, AUDITOR)


@pytest.fixture(name="world3")
def world3_fixture(tmp_path: Path) -> World:
    """The standard credentials and a second approver (auditor)."""
    return make_world(tmp_path / "vault", credentials=STANDARD_CREDS, operators=THREE)


def events(world: World, name: str) -> list[dict[str, Any]]:
    return [e for e in file_store(world.vault).audit.entries() if e["event"] == name]


def top(app: GlasskeyApp) -> object:
    """The top screen, without the type narrowing of an earlier ``isinstance``."""
    return app.screen


def banner(app: GlasskeyApp) -> AlertBanner:
    return app.screen.query_one(AlertBanner)


def used(world: World, holder: object, approver: object, cred: str) -> str:
    """A finished checkout of ``cred`` (through the core): it waits for review."""
    v = world.vault
    req = v.request(holder, cred, "outage", "INC-5", 600)  # type: ignore[arg-type]
    v.approve(approver, req.id)  # type: ignore[arg-type]
    v.reveal(holder, req.id)  # type: ignore[arg-type]
    v.checkin(holder, req.id)  # type: ignore[arg-type]
    world.clock.advance(1)  # a stable queue order
    return req.id


class TestReviews:
    @run_async
    async def test_ok_then_a_concern_that_needs_a_note(self, world3: World) -> None:
        world = world3  # the reviewer (security) must not be the approver (auditor)
        oncall, auditor = world.session("oncall"), world.session("auditor")
        first = used(world, oncall, auditor, "aws-root")
        second = used(world, oncall, auditor, "ldap-admin")
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "security")
            await pilot.press("v")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, ReviewsScreen)
            assert screen.table.row_count == 2
            assert "2 waiting for review" in screen_text(app)
            assert screen.table.cursor_key == first

            await pilot.press("o")
            await pilot.pause()
            assert isinstance(app.screen, NoteModal)
            await pilot.press("ctrl+s")  # a note is optional for ok
            await settle(pilot)
            assert top(app) is screen and screen.table.row_count == 1

            await pilot.press("c")
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, NoteModal)
            assert "A concern needs a note" in screen_text(app)
            await type_text(pilot, "ticket INC-5 is about [b]another[/b] system")
            await pilot.press("enter")
            await settle(pilot)
            assert top(app) is screen and screen.table.row_count == 0
        recorded = [(e["subject"], e["details"]["outcome"])  # type: ignore[index]
                    for e in events(world, "review.recorded")]
        assert recorded == [(first, "ok"), (second, "concern")]
        assert world.vault.checkout(second).review["status"] == "concern"

    @run_async
    async def test_own_item_is_shown_but_the_core_refuses_it(self, world3: World) -> None:
        security, auditor = world3.session("security"), world3.session("auditor")
        mine = used(world3, security, auditor, "aws-root")
        world3.clock.advance(30)
        app = world3.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world3, "security")
            await pilot.press("v")
            await settle(pilot)
            assert "1 yours (dimmed)" in screen_text(app)
            await pilot.press("o")
            await pilot.pause()
            await type_text(pilot, "looks fine to me")
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, NoteModal)  # stays open with the core's sentence
            assert "you cannot review your own use; another approver must" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, ReviewsScreen)
        assert [i.id for i in world3.vault.review_queue()] == [mine]
        assert events(world3, "review.refused")


class TestOnboarding:
    @run_async
    async def test_issue_approve_reveal_once_activate(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "oncall")
            await pilot.press("b")
            await settle(pilot)
            assert isinstance(app.screen, OnboardingScreen)
            await pilot.press("n")
            await pilot.pause()
            assert isinstance(app.screen, IssueOnboardingModal)
            await type_text(pilot, "new-hire-42")
            await pilot.press("enter")
            await type_text(pilot, "first day")
            await pilot.press("enter")
            await type_text(pilot, "HR-9")
            await pilot.press("enter")
            await type_text(pilot, "in person, badge checked")
            await pilot.press("tab", "ctrl+a", "ctrl+k")
            await type_text(pilot, "80h")
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, IssueOnboardingModal)
            assert "expiry must be between 1 s and 72h00m" in screen_text(app)
            await pilot.press("ctrl+a", "ctrl+k")
            await type_text(pilot, "24h")
            await pilot.press("enter")
            await settle(pilot)

            screen = app.screen
            assert isinstance(screen, RevealScreen) and screen.kind == "onboarding"
            onb_id = screen.request_id
            assert onb_id.startswith("o-")
            text = screen_text(app)
            assert "Onboarding secret for new-hire-42" in text
            assert "requested: waiting for approval" in text
            assert "Expires    in 24h00m" in text

            world.clock.advance(30)
            world.vault.approve(world.session("security"), onb_id)  # a second approver
            app.poll_vault()
            await settle(pilot)
            assert "it can be shown exactly once" in screen_text(app)

            await pilot.press("r")  # the one reveal
            await pilot.pause()
            value = app.secrets[onb_id].reveal()
            assert len(value) == 20 and value in screen_text(app)
            await pilot.press("r")
            await pilot.pause()
            assert value not in screen_text(app) and MASK in screen_text(app)
            assert app.session is not None
            with pytest.raises(PolicyError, match="already revealed"):
                world.vault.reveal(app.session, onb_id)
            assert "delivered: waiting for the recipient's first use" in screen_text(app)

            await pilot.press("t")  # the recipient used it: revoke
            await settle(pilot)
            assert world.vault.checkout(onb_id).closed_reason == "activated"
            assert onb_id not in app.secrets
            assert "activated: revoked, it opens nothing now" in screen_text(app)
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, OnboardingScreen)
            assert "activated (revoked)" in screen_text(app)
        queue = world.vault.review_queue()
        assert [(i.id, i.kind) for i in queue] == [(onb_id, "onboarding")]
        assert len(events(world, "onboarding.revealed")) == 1


class TestEmergency:
    @run_async
    async def test_kit_use_banner_stays_until_two_reviews(self, world3: World) -> None:
        v = world3.vault
        holders = [world3.session("security"), world3.session("auditor")]
        kit = v.issue_kit(holders)
        code = " ".join(v.kit_part(s) for s in holders)
        world3.clock.advance(30)
        app = world3.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world3, "oncall")
            await settle(pilot)
            assert not banner(app).display
            await pilot.press("E")  # shift+e; aws-root is highlighted
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, EmergencyScreen)
            text = screen_text(app)
            assert "TWO approvers" in text and "Burned" in text
            assert kit.fingerprint in text
            await type_text(pilot, "approvers unreachable, billing outage")
            await pilot.press("enter")
            await type_text(pilot, "INC-77")
            await pilot.press("enter")  # the duration keeps 30m: on to the code
            await type_text(pilot, code.lower())
            assert code.split()[0] not in screen_text(app)  # a password field
            await pilot.press("enter")
            await settle(pilot)

            reveal = app.screen
            assert isinstance(reveal, RevealScreen) and reveal.kind == "emergency"
            e_id = reveal.request_id
            text = screen_text(app)
            assert "aws-root-value-AAAA-1111" not in text and MASK in text
            assert "EMERGENCY USE of aws-root" in text
            assert banner(app).display and "EMERGENCY KIT USED" in text
            assert "needs review by 2 more approver(s)" in text
            assert v.active_kit() is None  # burned
            await pilot.press("r")
            await pilot.pause()
            assert "aws-root-value-AAAA-1111" in screen_text(app)

            v.review(world3.session("security"), e_id, "ok", "confirmed by phone")
            app.poll_vault()
            await settle(pilot)
            assert banner(app).display  # one review is not enough
            assert "needs review by 1 more approver(s)" in screen_text(app)

            await pilot.press("ctrl+o")
            await pilot.pause()
            await pilot.press("y")  # holding the emergency lease: asked first
            await settle(pilot)
            assert isinstance(app.screen, UnlockScreen)
            assert banner(app).display  # on the unlock screen too
            v.review(world3.session("auditor"), e_id, "ok", "ticket matches")
            app.poll_vault()
            await settle(pilot)
            assert not banner(app).display
            assert "EMERGENCY KIT USED" not in screen_text(app)
        assert events(world3, "emergency.used")

    @run_async
    async def test_kit_issued_in_the_tui_shows_a_code_that_works(self, world: World) -> None:
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "security")
            await settle(pilot)
            await pilot.press("ctrl+p")  # from anywhere: the palette
            await pilot.pause()
            await type_text(pilot, "issue emergency kit")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, TwoPersonModal)
            assert "NO emergency kit" in screen_text(app)  # the Operators screen below
            await unlock(pilot, world, "oncall")  # the second operator, here
            await settle(pilot)
            assert isinstance(app.screen, KitIssuedScreen)
            kit = world.vault.active_kit()
            assert kit is not None
            text = screen_text(app)
            assert kit["fingerprint"] in text
            # No part of the kit is shown here: each holder prints theirs elsewhere.
            shown = str(app.screen.query_one("#kit-code").render())
            assert "glasskey kit part --as security" in shown
            assert "glasskey kit part --as oncall" in shown
            assert "GK2" not in text and "GK1" not in text
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, OperatorsScreen)
        world.clock.advance(30)
        oncall = world.session("oncall")
        world.clock.advance(30)
        code = " ".join(world.vault.kit_part(s) for s in (world.session("security"), oncall))
        checkout, secret = world.vault.emergency_reveal(oncall, "ldap-admin", code, "drill",
                                                        "T-1", 600)
        assert secret.reveal() == "ldap-value-CCCC-3333"
        assert checkout.id.startswith("e-")


class TestOperators:
    @run_async
    async def test_remove_with_progress_then_the_leaver_sweep(
            self, world3: World, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[tuple[int, int, bool]] = []
        real = Progressing.set_progress

        def record(self: Progressing, done: int, total: int) -> None:
            calls.append((done, total, threading.current_thread() is threading.main_thread()))
            real(self, done, total)

        monkeypatch.setattr(Progressing, "set_progress", record)
        app = world3.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world3, "security")
            await pilot.press("o")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, OperatorsScreen)
            screen.table.move_to("oncall")
            await pilot.pause()
            await pilot.press("x")
            await pilot.pause()
            modal = app.screen
            assert isinstance(modal, TwoPersonModal)
            assert "Remove oncall" in screen_text(app)
            await unlock(pilot, world3, "auditor")
            await settle(pilot)
            assert isinstance(app.screen, SweepModal)
            assert calls and calls[-1][:2] == (4, 4) and all(c[2] for c in calls)
            assert "4 credential(s) they could reach" in screen_text(app)
            calls.clear()
            await pilot.press("enter")
            await settle(pilot)
            assert calls[-1][:2] == (4, 4)
            assert "Leaver sweep: 4 of 4 rotated." in screen_text(app)
            await pilot.press("escape")
            await settle(pilot)
            assert top(app) is screen
            assert "removed" in screen_text(app)
        ops = {o.name: o.status for o in world3.vault.operators()}
        assert ops["oncall"] == "removed"
        assert {c.name: c.version for c in world3.vault.credentials()} == {
            n: 2 for n, _k, _v in STANDARD_CREDS}

    @run_async
    async def test_enrol_shows_the_totp_key_once(self, world: World) -> None:
        passphrase = "newbie-test-passphrase-42"
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "security")
            await pilot.press("o")
            await settle(pilot)
            await pilot.press("n")
            await pilot.pause()
            for text in ("newbie", "requester", passphrase, passphrase):
                await type_text(pilot, text)
                await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, TwoPersonModal)
            await unlock(pilot, world, "oncall")
            await settle(pilot)
            assert isinstance(app.screen, EnrolmentScreen)
            seed = str(app.screen.query_one("#kit-code").render()).strip()
            assert seed in screen_text(app) and "newbie is enrolled (enrolling)" in \
                screen_text(app)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, OperatorsScreen)
            assert seed not in screen_text(app)
        session = world.vault.unlock("newbie", passphrase, totp.code_at(seed, world.clock.now()))
        assert session.roles == ("requester",)
        assert {o.name: o.status for o in world.vault.operators()}["newbie"] == "active"

    @run_async
    async def test_suspend_and_reactivate(self, world3: World) -> None:
        app = world3.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world3, "security")
            await pilot.press("o")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, OperatorsScreen)
            screen.table.move_to("auditor")
            await pilot.press("s")
            await settle(pilot)
            assert isinstance(app.screen, TwoPersonModal)  # a roster change needs two
            await unlock(pilot, world3, "oncall")
            await settle(pilot)
            assert {o.name: o.status for o in world3.vault.operators()}["auditor"] == \
                "suspended"
            world3.clock.advance(30)
            await pilot.press("r")
            await settle(pilot)
            assert isinstance(app.screen, TwoPersonModal)
            await unlock(pilot, world3, "oncall")
            await settle(pilot)
            assert {o.name: o.status for o in world3.vault.operators()}["auditor"] == "active"
        details = events(world3, "operator.suspended")[0]["details"]
        assert details["countersigned_by"] == ["oncall", "security"]
        assert set(details["sigs"]) == {"oncall", "security"}


FLAKY_ONCE = """#!/usr/bin/env python3
import json, sys, pathlib
base = pathlib.Path(__file__).parent
req = json.load(sys.stdin)
calls = base / "calls"
n = int(calls.read_text()) if calls.exists() else 0
calls.write_text(str(n + 1))
if n == 0:
    sys.exit(3)  # the first call: the target is unreachable
target = base / "password"
if req["action"] == "verify":
    sys.exit(0 if target.read_text() == req["value"] else 1)
target.write_text(req["value"])
"""


class TestRotationAlerts:
    @run_async
    async def test_retry_a_failed_rotation(self, world: World, tmp_path: Path) -> None:
        site = tmp_path / "site"
        site.mkdir()
        script = site / "set-password"
        script.write_text(FLAKY_ONCE)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        (site / "password").write_text("legacy-initial")
        v = world.vault
        oncall, security = world.session("oncall"), world.session("security")
        v.add_credential(security, CredentialSpec(
            "legacy-app", kind="break-glass", connector="command", target=str(script),
            secret=SecretValue("legacy-initial"), policy=Policy(max_duration=3600)))
        req = v.request(oncall, "legacy-app", "batch rerun", "CHG-3", 600)
        v.approve(security, req.id)
        v.reveal(oncall, req.id)
        assert v.checkin(oncall, req.id).outcome == "failed"  # exit 3
        world.clock.advance(30)
        app = world.app()
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "oncall")
            await settle(pilot)
            dash = app.screen
            assert isinstance(dash, DashboardScreen)
            assert "ROTATION-FAILED" in screen_text(app)
            assert dash.check_action("reconcile", ()) is False  # aws-root: nothing to retry
            assert dash.table.move_to(v.cred_id_for("legacy-app"))
            await pilot.pause()
            assert dash.check_action("reconcile", ()) is True
            await pilot.press("R")
            await settle(pilot)
            await pilot.pause()
            assert "ROTATION-FAILED" not in screen_text(app)
        cred = v.credential("legacy-app")
        assert cred.status == "active" and cred.version == 2
        assert v.checkout(req.id).state == S.CLOSED
        assert (site / "password").read_text() != "legacy-initial"

    @run_async
    async def test_apply_pending_fetch_copy_confirm(self, world: World) -> None:
        v = world.vault
        oncall, security = world.session("oncall"), world.session("security")
        v.add_credential(security, CredentialSpec(
            "door-panel", kind="break-glass", connector="manual",
            secret=SecretValue("door-initial-value"), policy=Policy(max_duration=3600)))
        req = v.request(oncall, "door-panel", "door stuck", "FAC-1", 600)
        v.approve(security, req.id)
        v.reveal(oncall, req.id)
        assert v.checkin(oncall, req.id).outcome == "apply-pending"
        world.clock.advance(30)
        app = world.app(clipboard_clear_seconds=600)
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "security")
            await pilot.press("exclamation_mark")
            await settle(pilot)
            alerts = app.screen
            assert isinstance(alerts, AlertsScreen)
            text = screen_text(app)
            assert "APPLY-PENDING" in text and "no emergency kit is issued" in text
            assert alerts.query_one(VirtualTable).row_count == len(v.alerts()) == 2
            await pilot.press("enter")  # the first alert: APPLY-PENDING door-panel
            await settle(pilot)
            dash = app.screen
            assert isinstance(dash, DashboardScreen)
            assert dash.table.row_count == 1 and dash.table.cursor_key == \
                v.cred_id_for("door-panel")
            dash.set_focus(dash.table)
            await pilot.pause()
            await pilot.press("p")
            await settle(pilot)
            assert isinstance(app.screen, ApplyScreen)
            await pilot.press("c")  # fetched and copied, never shown
            await pilot.pause()
            value = app.clipboard
            assert len(value) >= 16 and value not in screen_text(app)
            assert not app.screen.query_one(SecretView).shown
            await pilot.press("y")
            await settle(pilot)
            assert app.clipboard == ""  # confirmed: the copy is cleared
        cred = v.credential("door-panel")
        assert cred.status == "active" and cred.version == 2
        assert len(events(world, "rotate.apply-revealed")) == 1


class TestVaultCall:
    """``run_vault_call``: a result comes back as ``Done``, any exception as ``Failed``
    carrying a sentence that never repeats the exception's text (it could hold a value)."""

    @run_async
    async def test_done_and_failed(self) -> None:
        from glasskey.tui.widgets.vault_call import Done, Failed, run_vault_call
        from textual import on
        from textual.app import App

        heard: list[tuple[str, object]] = []

        class Probe(App[None]):
            @on(Done)
            def _done(self, event: Done[int]) -> None:
                heard.append((event.job, event.result))

            @on(Failed)
            def _failed(self, event: Failed) -> None:
                heard.append((event.job, event.sentence))

        def leaky() -> int:
            raise RuntimeError("hunter2-the-secret")

        def refused() -> int:
            raise PolicyError("the policy says no")

        app = Probe()
        async with app.run_test() as pilot:
            run_vault_call(app, "sum", lambda: 40 + 2)
            run_vault_call(app, "leaky", leaky)
            run_vault_call(app, "refused", refused)
            for _ in range(100):
                if len(heard) == 3:
                    break
                await pilot.pause(0.02)
        assert sorted(heard) == [
            ("leaky", "Internal error (RuntimeError); nothing was changed."),
            ("refused", "the policy says no"),
            ("sum", 42)]
