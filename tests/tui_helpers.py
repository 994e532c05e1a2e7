"""Shared fixtures and drivers for the TUI tests (Pilot, snapshots, tmux).

Import what a module uses (``from tests.tui_helpers import ...``). Fixtures
are defined as ``*_fixture`` with an explicit ``name=`` so that importing
them does not shadow the test arguments; import ``tui_env_fixture`` (autouse:
witness checkpoints in a temp dir) in every TUI test module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec

import pytest
import worlds
from glasskey.core import totp
from glasskey.core.credentials import CredentialSpec
from glasskey.core.crypto import kdf
from glasskey.core.models import Policy
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.vault import Vault
from glasskey.tui.app import GlasskeyApp
from glasskey.tui.demo import DemoInfo
from textual.pilot import Pilot

P = ParamSpec("P")

START = worlds.START  # 2027-01-15 08:00:00 UTC
FLOOR_PARAMS = kdf.KdfParams(19456, 2, 1, b"glasskey-tui-salt")

ONCALL = worlds.TUI_ONCALL.as_tuple()
SECURITY = worlds.TUI_SECURITY.as_tuple()
OPERATORS = (ONCALL, SECURITY)
#: A second approver, for what needs two (emergency reviews, removal, the kit).
AUDITOR = worlds.TUI_AUDITOR.as_tuple()

#: A value with markup-like text: it must render literally once revealed.
SHOWN_VALUE = "p@ss[red]w0rd[/]x-7Q"
CANARY = "CANARY-7f3e9d2c-NEVER-ON-SCREEN"
#: The vault path the DEMO panel shows in tests (the real one is a per-test temp dir).
DEMO_SHOWN_ROOT = Path("/tmp/glasskey-demo-x1y2z3/vault")


class CountingRandom:
    """Deterministic randomness (ids, salts) so snapshots are stable."""

    def __init__(self, seed: bytes = b"glasskey-tui") -> None:
        self._seed = seed
        self._n = 0

    def bytes(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self._n += 1
            out += hashlib.sha256(self._seed + self._n.to_bytes(8, "big")).digest()
        return out[:n]


@dataclass
class World(worlds.VaultWorld):
    """A test vault, its clock and its operators (tests/worlds.py), for the TUI."""

    extra: dict[str, str] = field(default_factory=dict)

    @property
    def info(self) -> DemoInfo:
        """The demo-style description of the operators (the DEMO panel's input)."""
        return DemoInfo(self.root, [self.roster[n].as_tuple() for n in self.founders])

    def code(self, name: str) -> str:
        return self.totp(name)

    def session(self, name: str) -> Session:
        """Unlock outside the UI (uses the current 30 s step of ``name``)."""
        return self.vault.unlock(name, self.passphrase(name), self.code(name))

    def new_vault(self) -> Vault:
        """A second Vault object on the same files (a second process's view)."""
        return Vault(self.root, self.clock, CountingRandom(b"second"), allow_weak_kdf=True)

    def app(self, *, demo: bool = False, **kwargs: object) -> GlasskeyApp:
        # The DEMO panel shows the vault's path: a fixed one keeps snapshots stable.
        info = dataclasses.replace(self.info, root=DEMO_SHOWN_ROOT)
        return GlasskeyApp(self.vault, info if demo else None, self.clock,
                           **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True, name="tui_env")
def tui_env_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Witness checkpoints in a temp dir; no user config; the real KDF floor."""
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("GLASSKEY_VAULT", raising=False)
    monkeypatch.delenv("GLASSKEY_INSECURE_FAST_KDF", raising=False)
    yield


def make_world(root: Path, *, credentials: tuple[tuple[str, str, str], ...] = (),
               bulk: int = 0, max_duration: int = 4 * 3600,
               operators: tuple[tuple[str, tuple[str, ...], str, str], ...] = OPERATORS
               ) -> World:
    """A vault with the test operators and (name, kind, value) credentials."""
    roster = [worlds.Operator(n, r, p, s) for n, r, p, s in operators]
    world = worlds.build_world(World, root, roster, kdf_params=FLOOR_PARAMS,
                               rng=CountingRandom(), label="test")
    # The previous step's code: the current one stays usable by the test.
    admin = world.vault.unlock(SECURITY[0], world.passphrase(SECURITY[0]),
                               world.totp(SECURITY[0], -totp.PERIOD))
    specs = [CredentialSpec(n, kind=k, secret=SecretValue(v),
                            policy=Policy(max_duration=max_duration))
             for n, k, v in credentials]
    specs += [CredentialSpec(f"bulk-{i:05d}", kind="batch",
                             secret=SecretValue(f"bulk-value-{i:05d}-xyz"))
              for i in range(bulk)]
    if specs:
        world.vault.import_credentials(admin, specs)
    return world


STANDARD_CREDS = (
    ("aws-root", "break-glass", "aws-root-value-AAAA-1111"),
    ("batch-provisioner", "batch", "batch-value-BBBB-2222"),
    ("ldap-admin", "break-glass", "ldap-value-CCCC-3333"),
    ("prod-db-root", "break-glass", SHOWN_VALUE),
)


@pytest.fixture(name="world")
def world_fixture(tmp_path: Path) -> World:
    return make_world(tmp_path / "vault", credentials=STANDARD_CREDS)


# -- Pilot drivers ---------------------------------------------------------------------------
def run_async(fn: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an ``async def`` test in a fresh event loop (no asyncio plugin is installed)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


async def settle(pilot: Pilot[None], rounds: int = 3) -> None:
    """Let workers finish and the screen catch up (all but a database vault's wake-up
    listener, which runs as long as the app does)."""
    for _ in range(rounds):
        pending = [w for w in pilot.app.workers if w.group != "listen"]
        if pending:  # (an empty list would mean every worker to Textual)
            await pilot.app.workers.wait_for_complete(pending)
        await pilot.pause()


async def unlock(pilot: Pilot[None], world: World, name: str,
                 passphrase: str | None = None, code: str | None = None) -> None:
    """Drive the unlock (or countersign) form on the top screen by keys."""
    from glasskey.tui.widgets.auth_form import AuthForm

    form = pilot.app.screen.query_one(AuthForm)
    if form.operator != name:
        form.select_operator(name)
    form.query_one("#auth-passphrase").focus()
    await pilot.pause()
    await type_text(pilot, passphrase if passphrase is not None else world.passphrase(name))
    await pilot.press("enter")
    await type_text(pilot, code if code is not None else world.code(name))
    await settle(pilot)


async def step_up(pilot: Pilot[None], world: World, name: str, code: str | None = None
                  ) -> None:
    """Type a TOTP code into the step-up approval modal (six digits submit)."""
    from textual.widgets import Input

    field = pilot.app.screen.query_one("#stepup-code", Input)
    field.focus()
    await pilot.pause()
    await type_text(pilot, code if code is not None else world.code(name))
    await settle(pilot)


async def sign_in(pilot: Pilot[None], world: World, name: str) -> None:
    """Skip the unlock form (tested on its own): unlock through the core, then hand over."""
    app = pilot.app
    assert isinstance(app, GlasskeyApp)
    await pilot.pause()
    app.unlocked(world.session(name))
    await pilot.pause()


async def until(pilot: Pilot[None], cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Pause until ``cond()`` holds or ``timeout`` passes (a loaded machine delivers later).

    Tests that wait on a timer (the 0.2 s poll, a clipboard clear) wait on the state the
    timer produces instead of a fixed pause, so a slow CI machine cannot make them flaky;
    the assertion after the wait still fails when the state never arrives.
    """
    import time as _time

    deadline = _time.monotonic() + timeout
    while not cond() and _time.monotonic() < deadline:
        await pilot.pause(0.05)


async def type_text(pilot: Pilot[None], text: str) -> None:
    """Type into the focused Input in one go (pressing each key costs ~40 ms in Pilot)."""
    from textual.widgets import Input

    focused = pilot.app.focused
    assert isinstance(focused, Input), f"focus is on {focused!r}, not an Input"
    focused.insert_text_at_cursor(text)
    await pilot.pause()


def screen_text(app: GlasskeyApp) -> str:
    """Everything on the screen right now, as plain text (from the SVG export)."""
    import html
    import re

    svg = app.export_screenshot()
    text = re.sub(r"<[^>]+>", "", svg)
    return html.unescape(text).replace("\xa0", " ")
