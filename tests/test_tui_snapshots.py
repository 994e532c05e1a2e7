"""Snapshot tests: every screen and its key states, at a fixed size, time and randomness.

Sync tests (``snap_compare`` runs its own event loop); ``run_before`` drives
the app with Pilot. Deterministic by construction: a FakeClock, counted
randomness for ids and salts, counted operator keys (so audit hashes repeat),
fixed credential values and no cursor blink. Update with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from glasskey.core.credentials import CredentialSpec
from glasskey.core.models import Policy
from glasskey.core.secret import SecretValue
from glasskey.tui.app import GlasskeyApp
from glasskey.tui.screens.audit import AuditScreen
from glasskey.tui.screens.emergency import KitIssuedScreen
from helpers import file_store
from textual.pilot import Pilot
from textual.widgets import Input
from tui_helpers import (
    AUDITOR,
    ONCALL,
    SECURITY,
    STANDARD_CREDS,
    World,
    make_world,
    settle,
    sign_in,
    tui_env_fixture,  # noqa: F401  (autouse)
    type_text,
    unlock,
)

WIDE = (100, 32)
NARROW = (80, 24)
Snap = Callable[..., bool]
RunBefore = Callable[[Pilot[None]], Awaitable[None]]


@pytest.fixture(autouse=True)
def deterministic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Counted operator keys and a cursor that never blinks."""
    counter = itertools.count()

    def key(rng: object = None) -> bytes:  # the vault's randomness is not drawn on
        return hashlib.sha256(b"tui-snapshot-key-%d" % next(counter)).digest()

    monkeypatch.setattr("glasskey.core.crypto.sign.generate_private", key)
    monkeypatch.setattr("glasskey.core.crypto.hpke.generate_private", key)
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    yield


def build(tmp_path: Path) -> World:
    return make_world(tmp_path / "vault", credentials=STANDARD_CREDS)


def as_user(world: World, name: str, then: RunBefore | None = None) -> RunBefore:
    async def run_before(pilot: Pilot[None]) -> None:
        await sign_in(pilot, world, name)
        if then is not None:
            await then(pilot)
        await settle(pilot)
        quiet(pilot)

    return run_before


def mixed_states(tmp_path: Path) -> World:
    """sealed, requested, approved, checked out, OVERDUE and ROTATION-FAILED at once."""
    script = tmp_path / "unreachable.sh"
    script.write_text("#!/bin/sh\necho 'target unreachable' >&2\nexit 2\n")
    script.chmod(0o755)
    world = build(tmp_path)
    v, clock = world.vault, world.clock
    admin_session = world.session("security")
    v.add_credential(admin_session, CredentialSpec(
        "legacy-mainframe", kind="break-glass", connector="command", target=str(script),
        secret=SecretValue("mainframe-value-DDDD"), policy=Policy(max_duration=3600)))
    v.add_credential(admin_session, CredentialSpec(
        "wifi-onboarding", kind="onboarding", secret=SecretValue("wifi-EEEE")))
    clock.advance(30)
    oncall = world.session("oncall")
    security = world.session("security")
    overdue = v.request(oncall, "ldap-admin", "LDAP outage", "INC-7", 300)
    v.approve(security, overdue.id)
    v.reveal(oncall, overdue.id)
    failed = v.request(oncall, "legacy-mainframe", "batch rerun", "CHG-3", 600)
    v.approve(security, failed.id)
    v.reveal(oncall, failed.id)
    v.checkin(oncall, failed.id)
    clock.advance(600)
    v.request(oncall, "aws-root", "billing console locked", "INC-8", 1800)
    approved = v.request(oncall, "batch-provisioner", "provision new hires", "HR-12", 3600)
    v.approve(security, approved.id)
    held = v.request(oncall, "prod-db-root", "db failover", "INC-9", 1800)
    v.approve(security, held.id)
    v.reveal(oncall, held.id)
    clock.advance(65)
    return world


class TestUnlockSnapshots:
    def test_unlock_demo(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        assert snap_compare(world.app(demo=True), terminal_size=WIDE)

    def test_unlock_demo_80x24(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        assert snap_compare(world.app(demo=True), terminal_size=NARROW)

    def test_unlock_wrong_passphrase(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)

        async def run_before(pilot: Pilot[None]) -> None:
            await pilot.pause()
            await unlock(pilot, world, "oncall", passphrase="wrong-passphrase")
            quiet(pilot)

        assert snap_compare(world.app(), terminal_size=WIDE, run_before=run_before)


class TestDashboardSnapshots:
    def test_dashboard_mixed_states(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = mixed_states(tmp_path)
        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "security"))

    def test_dashboard_mixed_states_80x24(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = mixed_states(tmp_path)
        assert snap_compare(world.app(), terminal_size=NARROW,
                            run_before=as_user(world, "oncall"))

    def test_dashboard_filtered(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("slash")
            await type_text(pilot, "root")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))


class TestCheckoutSnapshots:
    def test_request_form(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("end", "enter")
            await pilot.pause()
            await type_text(pilot, "primary DB down, need to fail over")
            await pilot.press("enter")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))

    def test_countersign_modal(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await request_prod_db(pilot)
            await pilot.press("s")
            await pilot.pause()

        assert snap_compare(world.app(demo=True), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))

    def test_countersign_modal_80x24(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await request_prod_db(pilot)
            await pilot.press("s")
            await pilot.pause()

        assert snap_compare(world.app(demo=True), terminal_size=NARROW,
                            run_before=as_user(world, "oncall", then))

    def test_reveal_approved_masked(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        open_it = countersigned(world)
        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", open_it))

    def test_reveal_claimed_masked(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        open_it = countersigned(world)

        async def then(pilot: Pilot[None]) -> None:
            await open_it(pilot)
            await pilot.press("r", "r")  # shown, then masked again: held in memory

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))

    def test_reveal_shown(self, snap_compare: Snap, tmp_path: Path) -> None:
        """A fixed test value with markup-like text: it must appear literally."""
        world = build(tmp_path)
        open_it = countersigned(world)

        async def then(pilot: Pilot[None]) -> None:
            await open_it(pilot)
            await pilot.press("r")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))

    def test_reveal_shown_80x24(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        open_it = countersigned(world)

        async def then(pilot: Pilot[None]) -> None:
            await open_it(pilot)
            await pilot.press("r")

        assert snap_compare(world.app(), terminal_size=NARROW,
                            run_before=as_user(world, "oncall", then))


class TestQueueAndLogSnapshots:
    def test_approvals_queue(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        oncall = world.session("oncall")
        world.vault.request(oncall, "prod-db-root", "primary DB down [urgent]", "INC-42", 1800)
        world.clock.advance(95)
        world.vault.request(oncall, "aws-root", "billing console locked", "INC-43", 900)
        world.clock.advance(30)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("a")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "security", then))

    def test_audit_viewer(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        oncall = world.session("oncall")
        world.vault.request(oncall, "prod-db-root", "primary DB down", "INC-42", 1800)
        world.clock.advance(30)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("l")
            await settle(pilot)

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "security", then))

    def test_audit_viewer_broken_chain(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        path = file_store(world.vault).audit.path
        lines = path.read_bytes().splitlines(keepends=True)
        lines[2] = lines[2].replace(b'"kind":"break-glass"', b'"kind":"break-glazz"')
        path.write_bytes(b"".join(lines))

        async def run_before(pilot: Pilot[None]) -> None:
            await pilot.pause()
            pilot.app.push_screen(AuditScreen())
            await settle(pilot)
            quiet(pilot)

        assert snap_compare(world.app(), terminal_size=WIDE, run_before=run_before)

    def test_operators(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("o")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))

    def test_help(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("question_mark")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))

    def test_help_80x24(self, snap_compare: Snap, tmp_path: Path) -> None:
        """Key, name and explanation stay in their columns; explanations wrap under
        themselves (issue 11: entries ran together)."""
        world = build(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("question_mark")
            await pilot.pause()
            for _ in range(10):
                await pilot.press("down")

        assert snap_compare(world.app(), terminal_size=NARROW,
                            run_before=as_user(world, "oncall", then))


def build3(tmp_path: Path) -> World:
    """The standard credentials and a second approver (auditor)."""
    return make_world(tmp_path / "vault", credentials=STANDARD_CREDS,
                      operators=(ONCALL, SECURITY, AUDITOR))


def emergency_used(tmp_path: Path) -> World:
    """A kit issued by security + auditor, then used by oncall on ldap-admin; one review."""
    world = build3(tmp_path)
    v, clock = world.vault, world.clock
    holders = [world.session("security"), world.session("auditor")]
    v.issue_kit(holders)
    code = " ".join(v.kit_part(s) for s in holders)
    clock.advance(30)
    checkout, _secret = v.emergency_reveal(world.session("oncall"), "ldap-admin", code,
                                           "approvers unreachable [night]", "INC-77", 1800)
    v.review(world.session("auditor"), checkout.id, "ok", "called oncall back")
    clock.advance(30)
    return world


def review_backlog(tmp_path: Path) -> World:
    """An overdue checkout review, an emergency use, security's own checkout."""
    world = build3(tmp_path)
    v, clock = world.vault, world.clock
    oncall, security = world.session("oncall"), world.session("security")
    req = v.request(oncall, "aws-root", "billing console locked", "INC-8", 900)
    v.approve(security, req.id)
    v.reveal(oncall, req.id)
    v.checkin(oncall, req.id)
    clock.advance(8 * 24 * 3600)
    holders = [world.session("security"), world.session("auditor")]
    v.issue_kit(holders)
    code = " ".join(v.kit_part(s) for s in holders)
    clock.advance(30)
    oncall = world.session("oncall")
    v.emergency_reveal(oncall, "ldap-admin", code, "approvers unreachable", "INC-77", 1800)
    security = world.session("security")
    req = v.request(security, "batch-provisioner", "provision new hires", "HR-12", 900)
    v.approve(world.session("auditor"), req.id)
    v.reveal(security, req.id)
    v.checkin(security, req.id)
    clock.advance(3 * 3600 + 30)
    return world


def onboarding_states(tmp_path: Path) -> World:
    """Onboarding secrets awaiting approval, approved, delivered and activated."""
    world = build(tmp_path)
    v, clock = world.vault, world.clock
    oncall, security = world.session("oncall"), world.session("security")
    done = v.issue_onboarding(oncall, "svc-backup", "new backup agent", "CHG-40",
                              "vault agent bootstrap")
    v.approve(security, done.id)
    v.reveal(oncall, done.id)
    v.activate_onboarding(oncall, done.id)
    clock.advance(600)
    delivered = v.issue_onboarding(oncall, "jdoe", "first day", "HR-9",
                                   "in person, badge checked", 8 * 3600)
    v.approve(security, delivered.id)
    v.reveal(oncall, delivered.id)
    clock.advance(600)
    approved = v.issue_onboarding(oncall, "asmith", "first day", "HR-10", "sealed envelope")
    v.approve(security, approved.id)
    clock.advance(60)
    v.issue_onboarding(oncall, "svc-metrics", "metrics exporter", "CHG-41",
                       "config management", 72 * 3600)
    clock.advance(30)
    return world


class TestExceptionSnapshots:
    def test_reviews_queue(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = review_backlog(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("v")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "security", then))

    def test_onboarding_list(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = onboarding_states(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("b")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))

    def test_emergency_before_the_code(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build3(tmp_path)
        world.vault.issue_kit([world.session("security"), world.session("auditor")])
        world.clock.advance(30)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("end", "E")  # prod-db-root, the last row
            await settle(pilot)
            await type_text(pilot, "approvers unreachable, primary DB down")
            await pilot.press("enter")
            await type_text(pilot, "INC-77")
            await pilot.press("enter")  # on to the (empty) recovery code

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "oncall", then))

    def test_kit_issued(self, snap_compare: Snap, tmp_path: Path) -> None:
        """The recovery code of a test vault (counted keys): a fixture value, not a secret."""
        world = build(tmp_path)
        issued = world.vault.issue_kit([world.session("security"), world.session("oncall")])
        world.clock.advance(30)

        async def then(pilot: Pilot[None]) -> None:
            pilot.app.push_screen(KitIssuedScreen(issued))

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "security", then))

    def test_kit_issued_80x24(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = build(tmp_path)
        issued = world.vault.issue_kit([world.session("security"), world.session("oncall")])
        world.clock.advance(30)

        async def then(pilot: Pilot[None]) -> None:
            pilot.app.push_screen(KitIssuedScreen(issued))

        assert snap_compare(world.app(), terminal_size=NARROW,
                            run_before=as_user(world, "security", then))

    def test_enrolment_80x24(self, snap_compare: Snap, tmp_path: Path) -> None:
        """The once-only TOTP key and its QR at 80x24: nothing cut (issue 11). A fixture
        seed, not a secret."""
        from glasskey.core.operators import Enrolment
        from glasskey.tui.screens.operators import EnrolmentScreen

        world = build(tmp_path)
        seed = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"
        enrolment = Enrolment("carol", seed, f"otpauth://totp/test:carol?secret={seed}"
                              "&issuer=test")

        async def then(pilot: Pilot[None]) -> None:
            pilot.app.push_screen(EnrolmentScreen(enrolment))

        assert snap_compare(world.app(), terminal_size=NARROW,
                            run_before=as_user(world, "security", then))

    def test_dashboard_emergency_banner(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = emergency_used(tmp_path)
        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "security"))

    def test_dashboard_emergency_banner_80x24(self, snap_compare: Snap,
                                              tmp_path: Path) -> None:
        world = emergency_used(tmp_path)
        assert snap_compare(world.app(), terminal_size=NARROW,
                            run_before=as_user(world, "security"))

    def test_alerts(self, snap_compare: Snap, tmp_path: Path) -> None:
        world = mixed_states(tmp_path)

        async def then(pilot: Pilot[None]) -> None:
            await pilot.press("exclamation_mark")

        assert snap_compare(world.app(), terminal_size=WIDE,
                            run_before=as_user(world, "security", then))


# -- drivers --------------------------------------------------------------------------------
def quiet(pilot: Pilot[None]) -> None:
    """Toasts time out after a few seconds: keep them out of the pictures."""
    pilot.app.clear_notifications()

async def request_prod_db(pilot: Pilot[None]) -> None:
    await pilot.press("end", "enter")  # prod-db-root is the last row
    await pilot.pause()
    await type_text(pilot, "primary DB down, need to fail over")
    await pilot.press("enter")
    await type_text(pilot, "INC-42")
    await pilot.press("enter", "enter")  # ticket -> duration -> submit
    await settle(pilot)


def countersigned(world: World) -> RunBefore:
    """prod-db-root requested by oncall and approved by security (through the core)."""
    oncall = world.session("oncall")
    req = world.vault.request(oncall, "prod-db-root", "primary DB down, need to fail over",
                              "INC-42", 1800)
    world.vault.approve(world.session("security"), req.id)
    world.clock.advance(30)  # the app's own unlock of oncall needs a fresh code

    async def then(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, GlasskeyApp)
        app.open_checkout(req.id)
        await settle(pilot)

    return then
