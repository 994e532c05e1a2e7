"""Machine B's TUI, driven by Pilot in a process of its own (tests/test_tui_postgres.py).

Run with the venv's python: ``tui_approver.py URL NOW NAME PASSPHRASE SEED``, with
its own HOME and GLASSKEY_STATE_DIR. It unlocks the app by keys, waits for machine
A's request to appear on its dashboard (pushed: its poll is an hour away), waits
for ``go`` on stdin, opens the approvals queue, approves with a TOTP step-up, and
says how far it got, one word a line on stdout: ``unlocked``, ``saw-request``,
``approved``. Anything else is an error line, and the exit status is 1.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from glasskey.core import totp
from glasskey.core.clock import FakeClock
from glasskey.core.storage.postgres import PostgresStore
from glasskey.core.vault import Vault
from glasskey.tui.app import GlasskeyApp
from glasskey.tui.screens.approvals import ApprovalsScreen
from glasskey.tui.screens.stepup import StepUpModal
from glasskey.tui.widgets.vtable import VirtualTable
from tui_helpers import screen_text, step_up, unlock, until

SIZE = (100, 32)
#: How long to wait for machine A's request to reach this screen.
WAIT_FOR_REQUEST = 60.0


def say(word: str) -> None:
    print(word, flush=True)


def queue_rows(app: GlasskeyApp) -> int:
    screen = app.screen
    if not isinstance(screen, ApprovalsScreen):
        return -1
    return screen.query_one(VirtualTable).row_count


async def approve(url: str, now: float, name: str, passphrase: str, seed: str) -> bool:
    clock = FakeClock(now)
    vault = Vault(PostgresStore(url), clock, allow_weak_kdf=True)
    app = GlasskeyApp(vault, None, clock, poll_interval=3600)  # wake-ups only: no poll
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await unlock(pilot, None, name, passphrase,  # type: ignore[arg-type]
                     totp.code_at(seed, clock.now()))
        if app.session is None:
            say(f"error: not unlocked: {screen_text(app)!r}")
            return False
        say("unlocked")
        waiting = "1 awaiting approval (1 for you)"
        await until(pilot, lambda: waiting in screen_text(app), timeout=WAIT_FOR_REQUEST)
        if waiting not in screen_text(app):
            say(f"error: the request never showed: {screen_text(app)!r}")
            return False
        say("saw-request")
        # Approve only once machine A shows the request itself (it writes "go"): then
        # A's screen can only learn of the approval by a wake-up.
        go = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if go.strip() != "go":
            say(f"error: told {go!r}, not go")
            return False
        await pilot.press("a")
        await until(pilot, lambda: queue_rows(app) == 1)
        if queue_rows(app) != 1:
            say(f"error: no queue with the request: {screen_text(app)!r}")
            return False
        queue = app.screen
        clock.advance(30)  # the approval asks for a code not used yet
        await pilot.press("a")
        await pilot.pause()
        if not isinstance(app.screen, StepUpModal):
            say(f"error: no step-up: {screen_text(app)!r}")
            return False
        await step_up(pilot, None, name, totp.code_at(seed, clock.now()))  # type: ignore[arg-type]
        await until(pilot, lambda: app.screen is queue and queue_rows(app) == 0)
        if queue_rows(app) != 0:
            say(f"error: still in the queue: {screen_text(app)!r}")
            return False
        say("approved")
    vault.store.close()  # type: ignore[attr-defined]
    return True


if __name__ == "__main__":
    url, now, name, passphrase, seed = sys.argv[1:6]
    sys.exit(0 if asyncio.run(approve(url, float(now), name, passphrase, seed)) else 1)
