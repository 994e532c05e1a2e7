"""Textual's debug switches never reach the real app (issue 15).

Each switch is set in the environment of the real ``glasskey demo`` running
in a real terminal (tmux). The test types a would-be passphrase, quits, and
asserts that nothing was written (log file, screenshot, a driver module's
side effect), that nothing was typed or captured for us, and that the
warning naming the switch is on the terminal.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from glasskey.tui import envguard

GLASSKEY = Path(sys.executable).parent / "glasskey"


class Term:
    def __init__(self) -> None:
        self.socket = f"glasskey-envguard-{uuid.uuid4().hex[:8]}"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("COLUMNS", "LINES") and not k.startswith("TEXTUAL")}

    def tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                             capture_output=True, text=True, timeout=20, check=False,
                             env=self.env)
        return out.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "demo")

    def wait_for(self, *needles: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if any(n in text for n in needles):
                return text
            time.sleep(0.05)
        raise AssertionError(f"none of {needles} on screen:\n{text}")


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Term]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: this test needs it (apt-get install tmux)")
    if not GLASSKEY.exists():
        pytest.fail(f"{GLASSKEY} is missing: pip install -e '.[test]' first")
    t = Term()
    try:
        yield t
    finally:
        t.tmux("kill-server")


def run_demo(term: Term, tmp: Path, switches: dict[str, str]) -> tuple[str, str]:
    """Start the demo with ``switches``; type, quit; return (screen while running, after)."""
    env = " ".join(f"{k}='{v}'" for k, v in switches.items())
    command = (f"env -u COLUMNS -u LINES GLASSKEY_STATE_DIR={tmp / 'state'} {env} "
               f"{GLASSKEY} demo --vault {tmp / 'vault'}; echo GLASSKEY-EXITED $?; sleep 30")
    term.tmux("new-session", "-d", "-s", "demo", "-x", "150", "-y", "40", "-c", str(tmp),
              command)
    running = term.wait_for("Unlock the demo vault", "GLASSKEY-EXITED")
    time.sleep(1.0)  # long enough for a screenshot timer, a pressed key, a driver
    running = term.screen()
    for ch in "hunter2-passphrase":
        term.tmux("send-keys", "-t", "demo", "-l", ch)
    time.sleep(0.3)
    term.tmux("send-keys", "-t", "demo", "C-q")
    after = term.wait_for("GLASSKEY-EXITED")
    return running, after


def _no_files(*paths: Path) -> Callable[[], None]:
    def check() -> None:
        for p in paths:
            found = [p] if p.is_file() else list(p.rglob("*")) if p.is_dir() else []
            assert not found, f"written: {found}"
    return check


def _listener() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.setblocking(False)
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("case", ["log", "screenshot", "driver", "press", "devtools"])
def test_each_debug_switch_is_removed_with_a_warning(term: Term, tmp_path: Path,
                                                     case: str) -> None:
    listener: socket.socket | None = None
    if case == "log":
        switches = {"TEXTUAL_LOG": str(tmp_path / "textual.log")}
        check = _no_files(tmp_path / "textual.log")
    elif case == "screenshot":
        shots = tmp_path / "shots"
        shots.mkdir()
        switches = {"TEXTUAL_SCREENSHOT": "0", "TEXTUAL_SCREENSHOT_LOCATION": str(shots),
                    "TEXTUAL_SCREENSHOT_FILENAME": "screen.svg"}
        check = _no_files(shots)
    elif case == "driver":
        mods = tmp_path / "mods"
        mods.mkdir()
        marker = tmp_path / "driver-ran"
        (mods / "gk_evil_driver.py").write_text(
            f"open({str(marker)!r}, 'w').write('imported')\n"
            "from textual.drivers.linux_driver import LinuxDriver as Driver\n")
        switches = {"TEXTUAL_DRIVER": "gk_evil_driver:Driver", "PYTHONPATH": str(mods)}
        check = _no_files(marker)
    elif case == "press":
        switches = {"TEXTUAL_PRESS": "ctrl+q"}  # would quit the app before anyone typed

        def check() -> None:
            pass
    else:
        listener, port = _listener()
        switches = {"TEXTUAL": "devtools,debug", "TEXTUAL_DEVTOOLS_HOST": "127.0.0.1",
                    "TEXTUAL_DEVTOOLS_PORT": str(port)}

        def check() -> None:
            assert listener is not None
            with pytest.raises(BlockingIOError):
                listener.accept()
    try:
        running, after = run_demo(term, tmp_path, switches)
        check()
        # The app ran normally: nothing pressed, captured or quit for us.
        assert "Unlock the demo vault" in running and "GLASSKEY-EXITED" not in running
        assert "GLASSKEY-EXITED 0" in after
        assert "WARNING: removed Textual debug switch(es)" in after
        for name in switches:
            if name.startswith("TEXTUAL"):
                assert name in after, f"{name} not named in the warning"
        assert "hunter2" not in after
    finally:
        if listener is not None:
            listener.close()
    for leftover in tmp_path.rglob("*.svg"):
        raise AssertionError(f"a screenshot was written: {leftover}")


def test_cosmetic_switches_stay_and_are_not_warned_about(term: Term, tmp_path: Path) -> None:
    _, after = run_demo(term, tmp_path, {"TEXTUAL_ANIMATIONS": "none", "TEXTUAL_FPS": "30"})
    assert "GLASSKEY-EXITED 0" in after and "WARNING" not in after


def test_scrub_and_screenshot_methods() -> None:
    env = {"TEXTUAL": "debug", "TEXTUAL_LOG": "/tmp/x", "textual_press": "q",
           "TEXTUAL_SCREENSHOT": "1", "TEXTUAL_SCREENSHOT_LOCATION": "/tmp",
           "TEXTUAL_DRIVER": "m:C", "TEXTUAL_NEW_DEBUG_THING": "1", "TEXTUAL_THEME": "nord",
           "HOME": "/root"}

    class Out:
        text = ""

        def write(self, s: str) -> int:
            Out.text += s
            return len(s)

        def flush(self) -> None:
            pass

    removed = envguard.scrub(env, Out())  # type: ignore[arg-type]
    assert set(env) == {"TEXTUAL_THEME", "HOME"}
    assert set(removed) == {"TEXTUAL", "TEXTUAL_LOG", "textual_press", "TEXTUAL_SCREENSHOT",
                            "TEXTUAL_SCREENSHOT_LOCATION", "TEXTUAL_DRIVER",
                            "TEXTUAL_NEW_DEBUG_THING"}
    assert "TEXTUAL_LOG" in Out.text and Out.text.count("\n") == 1
    assert envguard.scrub({"TEXTUAL_FPS": "30"}, Out()) == []  # type: ignore[arg-type]


def test_screen_capture_methods_write_nothing(tmp_path: Path) -> None:
    code = ("import sys; from glasskey.tui import envguard; envguard.disable_screenshots(); "
            "from textual.app import App; app = App(); "
            "r1 = app.save_screenshot(path=sys.argv[1], filename='a.svg'); "
            "r2 = app.deliver_screenshot('b.svg', sys.argv[1]); "
            "app.action_screenshot('c.svg', sys.argv[1]); print(r1, r2)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "None None"
    assert list(tmp_path.iterdir()) == []


def test_cli_commands_remove_quietly() -> None:
    class Out:
        text = ""

        def write(self, s: str) -> int:
            Out.text += s
            return len(s)

        def flush(self) -> None:
            pass

    env = {"TEXTUAL_LOG": "/tmp/x", "PATH": "/bin"}
    assert envguard.scrub(env, Out(), quiet=True) == ["TEXTUAL_LOG"]  # type: ignore[arg-type]
    assert env == {"PATH": "/bin"} and Out.text == ""
