"""The real ``glasskey demo`` in a real terminal (tmux): a checkout from keystrokes alone.

The on-call path as a person types it: unlock as the requester, filter to the
credential, request it, let the security officer countersign at the same
keyboard, copy the secret. Every key sent is counted; the count is what
docs/tui.md reports. tmux's ``set-clipboard on`` turns the app's OSC 52 copy
into a tmux paste buffer, so the test can check what reached the clipboard.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from glasskey.tui.demo import DEMO_OPERATORS
from tui_helpers import tui_env_fixture  # noqa: F401  (autouse)

#: The installed console script, beside this interpreter (the project's venv).
GLASSKEY = Path(sys.executable).parent / "glasskey"
#: Seconds between keys: a very fast typist (~30 keys/s). A focus change is an
#: asynchronous message in Textual, so keys fired in the same millisecond can
#: land on the widget that had focus before; nobody types that fast.
KEY_GAP = 0.03
#: The keys of the on-call path (launch -> secret copied), counted by this test run.
ONCALL_PATH_KEYS: dict[str, int] = {}


class Tmux:
    """One tmux server of our own (``-L``), one session, keys in, screen out."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self.keys = 0
        # The server's environment comes from its first client; a COLUMNS/LINES
        # there (pytest's process can carry them) would pin the app to 80x24.
        self.env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}

    def run(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                             capture_output=True, text=True, timeout=20, check=False,
                             env=self.env)
        if check and out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def press(self, *keys: str) -> None:
        """Named keys (Enter, Escape, C-q) or single characters: one keystroke each."""
        for key in keys:
            self.run("send-keys", "-t", "demo", key)
            self.keys += 1
            time.sleep(KEY_GAP)

    def type(self, text: str) -> None:
        """Literal text, one character at a time: one keystroke per character."""
        for char in text:
            self.run("send-keys", "-t", "demo", "-l", char)
            self.keys += 1
            time.sleep(KEY_GAP)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "demo")

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            found = re.search(pattern, text)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} did not appear within {timeout} s; screen:\n{text}")

    def buffer(self) -> str:
        return self.run("show-buffer", check=False)

    def all_buffers(self) -> str:
        names = self.run("list-buffers", "-F", "#{buffer_name}", check=False).split()
        return "\n".join(self.run("show-buffer", "-b", n, check=False) for n in names)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: this test needs it (apt-get install tmux; "
                    ".ci/run installs it)")
    if not GLASSKEY.exists():
        pytest.fail(f"{GLASSKEY} is missing: install the project into this venv "
                    "(pip install -e '.[test]', or make test) first")
    t = Tmux(f"glasskey-test-{uuid.uuid4().hex[:8]}")
    vault = tmp_path / "vault"
    env = f"GLASSKEY_STATE_DIR={os.environ['GLASSKEY_STATE_DIR']}"
    command = f"env -u COLUMNS -u LINES {env} {GLASSKEY} demo --vault {vault}; echo GLASSKEY-EXITED $?; sleep 30"
    t.run("new-session", "-d", "-s", "demo", "-x", "120", "-y", "40", command)
    t.run("set-option", "-g", "set-clipboard", "on")
    try:
        yield t
    finally:
        t.run("kill-server", check=False)


def test_oncall_path_in_a_real_terminal(tmux: Tmux) -> None:
    oncall, _r, oncall_pass, _s = DEMO_OPERATORS[0]
    security, _r, security_pass, _s = DEMO_OPERATORS[1]
    code_re = r"code  (\d{3}) (\d{3})"

    # Launch: the unlock screen with the DEMO panel (live codes).
    tmux.wait_for(r"Unlock the demo vault")
    code = tmux.wait_for(code_re)
    time.sleep(0.3)  # a person reads the screen first
    tmux.press("Enter")                      # operator: oncall (first in the list)
    tmux.type(oncall_pass)
    tmux.wait_for("Passphrase  " + "•" * len(oncall_pass) + " ")
    tmux.press("Enter")
    tmux.type(code.group(1) + code.group(2))  # six digits unlock
    tmux.wait_for(r"3 credentials")

    # Dashboard: filter to the credential, Enter opens the request form.
    tmux.press("/")
    tmux.type("prod")
    tmux.press("Enter")
    tmux.wait_for(r"Request prod-db-root")
    tmux.type("primary db down")
    tmux.press("Enter")
    tmux.type("INC-1")
    tmux.press("Enter")                      # to the duration field (30m prefilled)
    tmux.wait_for(r"Duration")
    tmux.press("Enter")                      # Enter in the duration field submits
    tmux.wait_for(r"requested: waiting for approval")

    # Countersign at the same keyboard: the officer types their own factors.
    # The demo has two approvers (security, standby): the officer picks themselves first.
    tmux.press("s")
    found = tmux.wait_for(security + r"\s+pass \S+\s+code (\d{3}) (\d{3})")
    tmux.press("Enter")                      # operator: security (first in the list)
    tmux.type(security_pass)
    tmux.wait_for("Passphrase  " + "•" * len(security_pass) + " ")
    tmux.press("Enter")
    tmux.type(found.group(1) + found.group(2))
    tmux.wait_for(r"approved: ready to reveal")

    # Copy without showing: the secret is on the clipboard, not on the screen.
    tmux.press("c")
    tmux.wait_for(r"Clipboard: holds this secret")
    ONCALL_PATH_KEYS["total"] = tmux.keys
    copied = tmux.buffer()
    assert len(copied) >= 16, "the OSC 52 copy did not reach tmux's clipboard"
    assert copied not in tmux.screen()
    assert "\u25cf" * 16 in tmux.screen()

    # The explicit reveal shows exactly what was copied.
    tmux.press("r")
    tmux.wait_for(re.escape(copied))
    tmux.press("r")
    tmux.wait_for("\u25cf" * 16)

    # Check in: the lease ends and the credential is rotated.
    tmux.press("i")
    tmux.wait_for(r"Check in prod-db-root and rotate it now\?")
    tmux.press("n")                          # a slip is forgiven: nothing happened
    time.sleep(0.3)
    assert "Rotation   done" not in tmux.screen()
    tmux.press("i")
    tmux.wait_for(r"Check in prod-db-root and rotate it now\?")
    tmux.press("y")
    tmux.wait_for(r"Rotation   done: now version 2")
    assert copied not in tmux.screen()
    # The clear is real under tmux: no paste buffer holds the secret any more (an empty
    # OSC 52 alone leaves tmux's buffer in place).
    assert copied not in tmux.all_buffers()
    tmux.press("C-q")
    tmux.wait_for(r"GLASSKEY-EXITED 0")

    # 11 command keys + what a person types (two passphrases, two codes, a filter,
    # a reason and a ticket): see docs/tui.md.
    typed = len(oncall_pass) + len(security_pass) + 6 + 6 + len("prod") \
        + len("primary db down") + len("INC-1")
    assert ONCALL_PATH_KEYS["total"] == typed + 11
    del oncall
