"""The canary: a secret value that must never reach the screen without the explicit reveal.

A credential holds a unique value. The test drives every screen and the
whole checkout (request, countersign, copy, check-in) except the reveal key,
then the exception screens (reviews, onboarding, alerts) and an emergency-kit
use of a second credential holding the same value (copied, never revealed),
with its banner on every screen, and looks for the value in every rendered
screen, in what the process printed, in the vault's files and in every
snapshot SVG in the repository.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from glasskey.tui.app import GlasskeyApp
from glasskey.tui.screens.countersign import CountersignModal
from glasskey.tui.screens.emergency import EmergencyScreen
from glasskey.tui.screens.reveal import RevealScreen
from textual.widgets import Select
from tui_helpers import (
    CANARY,
    SHOWN_VALUE,
    STANDARD_CREDS,
    make_world,
    run_async,
    screen_text,
    settle,
    tui_env_fixture,  # noqa: F401  (autouse)
    type_text,
    unlock,
)

SNAPSHOTS = Path(__file__).resolve().parent / "__snapshots__"


def assert_clean(app: GlasskeyApp, where: str) -> None:
    text = screen_text(app)
    assert CANARY not in text, f"the canary is on the screen at: {where}"
    assert CANARY not in app.export_screenshot(), where


@run_async
async def test_canary_never_shown_without_the_explicit_reveal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world(tmp_path / "vault",
                       credentials=(*STANDARD_CREDS, ("canary-cred", "break-glass", CANARY),
                                    ("canary-kit", "break-glass", CANARY)))
    holders = [world.session("security"), world.session("oncall")]
    world.vault.issue_kit(holders)
    kit_code = " ".join(world.vault.kit_part(s) for s in holders)
    world.clock.advance(30)
    app = world.app(demo=True, clipboard_clear_seconds=600)
    visited: list[str] = []

    async def visit(where: str) -> None:
        await settle(pilot)
        assert_clean(app, where)
        visited.append(where)

    async with app.run_test(size=(100, 32)) as pilot:
        await visit("unlock")
        await unlock(pilot, world, "oncall")
        await visit("dashboard")
        for key, where in (("a", "approvals"), ("l", "audit"), ("o", "operators")):
            await pilot.press(key)
            await visit(where)
            await pilot.press("escape")
        await pilot.press("question_mark")
        await visit("help")
        await pilot.press("escape")

        await pilot.press("slash")
        await type_text(pilot, "canary")
        await visit("dashboard filtered")
        await pilot.press("enter")
        await visit("request form")
        await type_text(pilot, "canary drill")
        await pilot.press("enter")
        await type_text(pilot, "T-1")
        await pilot.press("enter", "enter")  # ticket -> duration -> submit
        await visit("checkout requested")
        await pilot.press("s")
        assert isinstance(app.screen, CountersignModal)
        await visit("countersign")
        await unlock(pilot, world, "security")
        await visit("checkout approved")

        await pilot.press("c")  # claims the value: now in memory and on the clipboard
        await visit("copied (masked)")
        assert app.clipboard == CANARY
        screen = app.screen
        assert isinstance(screen, RevealScreen)
        assert CANARY not in repr(app.secrets) and CANARY not in str(app.secrets)

        await pilot.press("escape")
        await visit("dashboard with the checkout held")
        for key, where in (("a", "approvals (held)"), ("l", "audit (held)"),
                           ("o", "operators (held)")):
            await pilot.press(key)
            await visit(where)
            await pilot.press("escape")
        await pilot.press("ctrl+p")
        await visit("command palette")
        await pilot.press("escape")
        await pilot.press("enter")  # back into the checkout: still masked
        await visit("checkout reopened")
        await pilot.press("i")
        await pilot.pause()
        await pilot.press("y")  # the y/n question (issue 11)
        await visit("checked in")
        assert app.clipboard == ""  # the copy was overwritten at check-in
        assert not app.secrets

        await pilot.press("escape")
        for key, where in (("v", "reviews"), ("b", "onboarding"),
                           ("exclamation_mark", "alerts")):
            await pilot.press(key)
            await visit(where)
            await pilot.press("escape")
        await pilot.press("E")
        assert isinstance(app.screen, EmergencyScreen)
        app.screen.query_one("#emg-cred", Select).value = "canary-kit"
        await type_text(pilot, "canary drill")
        await pilot.press("enter")
        await type_text(pilot, "T-2")
        await pilot.press("enter")
        await type_text(pilot, kit_code)
        await visit("emergency form")
        await pilot.press("enter")
        await visit("emergency reveal (masked)")
        assert isinstance(app.screen, RevealScreen) and app.screen.kind == "emergency"
        await pilot.press("c")
        await visit("emergency copied (masked)")
        assert app.clipboard == CANARY
        await pilot.press("escape")
        await visit("dashboard with the emergency banner")
        await pilot.press("v")
        await visit("reviews with the emergency banner")
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("y")  # the y/n question (issue 11)
        await visit("unlock with the emergency banner")
        assert "EMERGENCY KIT USED" in screen_text(app)
        assert app.clipboard == "" and not app.secrets

    assert len(visited) == 28
    out = capsys.readouterr()
    assert CANARY not in out.out and CANARY not in out.err
    # The vault's own files never hold a plaintext value either.
    for path in world.root.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_canary_in_no_snapshot_file() -> None:
    """Snapshots are committed: no secret of any test vault may be in one."""
    svgs = list(SNAPSHOTS.rglob("*.svg"))
    assert svgs, "no snapshots found: run tests/test_tui_snapshots.py first"
    for svg in svgs:
        raw = svg.read_text(encoding="utf-8")
        text = html.unescape(re.sub(r"<[^>]+>", "", raw)).replace("\xa0", " ")
        for value in (CANARY, *(v for _n, _k, v in STANDARD_CREDS if v != SHOWN_VALUE)):
            assert value not in raw and value not in text, (svg, value)


def test_revealed_test_value_is_only_in_the_reveal_snapshots() -> None:
    """The one value shown on purpose appears only where the reveal key was pressed."""
    marker = SHOWN_VALUE.replace("[", "").replace("]", "")[:4]  # "p@ss"
    for svg in SNAPSHOTS.rglob("*.svg"):
        if marker in svg.read_text(encoding="utf-8"):
            assert "reveal_shown" in svg.name, svg
