"""``glasskey open REQ`` / ``glasskey --open REQ`` (issue 14): after unlock the TUI shows
that request, where a notification's reader acts on it in their own client."""

from __future__ import annotations

from glasskey.tui.cli import build_parser
from glasskey.tui.screens.reveal import RevealScreen
from glasskey.tui.screens.unlock import UnlockScreen
from tui_helpers import (
    World,
    run_async,
    sign_in,
    tui_env_fixture,  # noqa: F401  (autouse: witness checkpoints in a temp dir)
    world_fixture,  # noqa: F401
)


@run_async
async def test_the_tui_opens_on_the_request_after_unlock(world: World) -> None:
    req = world.vault.request(world.session("oncall"), "prod-db-root", "db down", "INC-7",
                              1800)
    world.clock.advance(30)
    app = world.app()
    app.start_request = req.id
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, UnlockScreen)  # nothing before the unlock
        await sign_in(pilot, world, "security")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RevealScreen) and screen.request_id == req.id
        assert app.start_request is None  # once


def test_open_and_the_global_option_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(["open", "r123"]).request == "r123"
    assert parser.parse_args(["--open", "r123"]).open == "r123"


def test_open_an_unknown_request_is_one_sentence_and_no_tui(world: World) -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "glasskey.tui.cli", "open", "r-nope", "--vault",
                           str(world.root)],
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("TEXTUAL")}, capture_output=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.decode() == "glasskey: there is no request 'r-nope'\n"
