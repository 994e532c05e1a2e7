"""The TUI across machines on a PostgreSQL vault (real server, issue 13).

Machine A is this process: a Pilot-driven app, the requester signed in.
Machine B is another process with its own HOME and state dir: the approver,
through the core. A's screen must show B's approval with no keypress and no
manual poll: the app's own half-second timer reads ``seq()`` from the database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import worlds
from glasskey.core import totp
from glasskey.core.clock import FakeClock
from glasskey.core.credentials import CredentialSpec
from glasskey.core.models import Policy
from glasskey.core.operators import OperatorSpec
from glasskey.core.secret import SecretValue
from glasskey.core.storage.postgres import PostgresStore
from glasskey.core.vault import Vault
from glasskey.tui.screens.request import RequestModal
from glasskey.tui.screens.reveal import RevealScreen
from tui_helpers import (
    FLOOR_PARAMS,
    OPERATORS,
    SECURITY,
    STANDARD_CREDS,
    START,
    CountingRandom,
    World,
    run_async,
    screen_text,
    settle,
    sign_in,
    type_text,
    until,
)

if TYPE_CHECKING:
    from pg_vault import PgVaults

SIZE = (100, 32)
pytest_plugins = ["pg_vault"]  # the session's PostgreSQL (the pg_vaults fixture)

APPROVER = textwrap.dedent("""
    import sys
    from glasskey.core import totp
    from glasskey.core.clock import FakeClock
    from glasskey.core.storage.postgres import PostgresStore
    from glasskey.core.vault import Vault
    url, now, name, passphrase, seed, req = sys.argv[1:7]
    vault = Vault(PostgresStore(url), FakeClock(float(now)), allow_weak_kdf=True)
    session = vault.unlock(name, passphrase, totp.code_at(seed, float(now)))
    print(vault.approve(session, req).state)
""")


@pytest.fixture
def pg_world(pg_vaults: PgVaults, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, str]]:
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / "machine-a"))
    monkeypatch.delenv("GLASSKEY_VAULT", raising=False)
    monkeypatch.delenv("GLASSKEY_INSECURE_FAST_KDF", raising=False)
    url = pg_vaults.url(pg_vaults.new_database())
    clock = FakeClock(START)
    vault = Vault(PostgresStore(url), clock, CountingRandom(), allow_weak_kdf=True)
    vault.initialise([OperatorSpec(n, r, p, s) for n, r, p, s in OPERATORS], label="test",
                     kdf_params=FLOOR_PARAMS)
    name, _roles, passphrase, seed = SECURITY
    admin = vault.unlock(name, passphrase, totp.code_at(seed, clock.now() - totp.PERIOD))
    vault.import_credentials(admin, [CredentialSpec(n, kind=k, secret=SecretValue(v),
                                                    policy=Policy(max_duration=4 * 3600))
                                     for n, k, v in STANDARD_CREDS])
    roster = {op.name: op for op in (worlds.TUI_ONCALL, worlds.TUI_SECURITY)}
    yield World(tmp_path / "unused", clock, vault, roster, founders=tuple(roster)), url
    vault.store.close()  # type: ignore[attr-defined]


def approve_on_machine_b(world: World, url: str, req_id: str, tmp_path: Path) -> None:
    """Machine B: another process with its own HOME and state dir, the same database,
    approves as security (through the core)."""
    home = tmp_path / "machine-b"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), GLASSKEY_STATE_DIR=str(home / "state"))
    world.clock.advance(30)
    name, _roles, passphrase, seed = SECURITY
    done = subprocess.run(
        [sys.executable, "-c", APPROVER, url, str(world.clock.now()), name, passphrase,
         seed, req_id], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "approved"


@run_async
async def test_an_approval_on_machine_b_appears_on_machine_a(
        pg_world: tuple[World, str], tmp_path: Path) -> None:
    world, url = pg_world
    app = world.app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, world, "oncall")
        world.clock.advance(30)
        req = world.vault.request(world.session("oncall"), "aws-root", "db down", "INC-7",
                                  600)
        await until(pilot, lambda: "aws-root" in screen_text(app))
        before = screen_text(app)
        assert "aws-root" in before and "approved" not in before
        approve_on_machine_b(world, url, req.id, tmp_path)
        approved = time.monotonic()
        await until(pilot, lambda: "approved" in screen_text(app))
        shown = time.monotonic() - approved
        assert "approved" in screen_text(app), "machine B's approval never appeared on A"
        assert shown < 5, shown  # the 0.5 s poll, plus a loaded machine's slack


@run_async
async def test_a_database_vault_pushes_the_approval_without_waiting_for_the_poll(
        pg_world: tuple[World, str], tmp_path: Path) -> None:
    """LISTEN/NOTIFY wakes the TUI: with the poll an hour away, machine B's approval
    still shows at once (the notification is only a wake-up; the app re-reads)."""
    world, url = pg_world
    app = world.app(poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, world, "oncall")
        world.clock.advance(30)
        req = world.vault.request(world.session("oncall"), "aws-root", "db down", "INC-8",
                                  600)
        await until(pilot, lambda: "aws-root" in screen_text(app) and
                    "requested" in screen_text(app))
        approve_on_machine_b(world, url, req.id, tmp_path)
        approved = time.monotonic()
        await until(pilot, lambda: "approved" in screen_text(app), timeout=10)
        shown = time.monotonic() - approved
        assert "approved" in screen_text(app), "the push never woke the TUI"
        assert shown < 3, shown


async def _line(proc: asyncio.subprocess.Process, timeout: float = 120.0) -> str:
    """Machine B's next progress word (tests/tui_approver.py), or its stderr on failure."""
    assert proc.stdout is not None and proc.stderr is not None
    try:
        raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
    except TimeoutError:
        raw = b""
    if not raw:
        proc.kill()
        err = await proc.stderr.read()
        raise AssertionError(f"machine B's TUI stopped: {err.decode()[-3000:]}")
    return raw.decode().strip()


@run_async
async def test_two_tuis_request_on_one_and_approve_on_the_other(
        pg_world: tuple[World, str], tmp_path: Path) -> None:
    """Both sides are TUIs driven by Pilot: the requester's here (machine A), the
    approver's in another process with its own HOME and state dir (machine B,
    tests/tui_approver.py). Both polls are an hour away: A's request reaches B's
    dashboard, and B's approval reaches A's screen, by wake-ups alone, with no key
    pressed on the side that is told."""
    world, url = pg_world
    home = tmp_path / "machine-b"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), GLASSKEY_STATE_DIR=str(home / "state"))
    name, _roles, passphrase, seed = SECURITY
    world.clock.advance(30)
    approver = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).parent / "tui_approver.py"), url,
        str(world.clock.now() + 30), name, passphrase, seed, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    app = world.app(poll_interval=3600)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, world, "oncall")
            assert await _line(approver) == "unlocked"
            world.clock.advance(30)
            # The request, typed into A's own TUI.
            await pilot.press("slash")
            await type_text(pilot, "aws-root")
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, RequestModal)
            await type_text(pilot, "db down")
            await pilot.press("enter")
            await type_text(pilot, "INC-11")
            await pilot.press("enter")
            await pilot.press("enter")
            await settle(pilot)
            reveal = app.screen
            assert isinstance(reveal, RevealScreen)
            await until(pilot, lambda: "requested" in screen_text(app), timeout=30)
            assert "requested" in screen_text(app)
            assert await _line(approver) == "saw-request"  # pushed to B's dashboard
            assert approver.stdin is not None
            approver.stdin.write(b"go\n")  # B approves now: A is showing "requested"
            await approver.stdin.drain()
            assert await _line(approver) == "approved"
            approved = time.monotonic()
            await until(pilot, lambda: "approved: ready to reveal" in screen_text(app),
                        timeout=10)
            shown = time.monotonic() - approved
            assert "approved: ready to reveal" in screen_text(app), \
                "machine B's approval never appeared on A"
            assert reveal.checkout is not None and reveal.checkout.state == "approved"
            print(f"B approves in its TUI -> A's screen shows it: {shown * 1000:.0f} ms")
            assert shown < 3, shown
        assert await asyncio.wait_for(approver.wait(), 60) == 0
    finally:
        if approver.returncode is None:
            approver.kill()
            await approver.wait()
    # B's approval is the signed entry of B's operator, made in B's TUI.
    entries = world.vault.store.audit_tail(5).entries
    assert [e["actor"] for e in entries if e["event"] == "checkout.approved"] == [name]
