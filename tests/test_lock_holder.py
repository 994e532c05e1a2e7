"""A stuck lock holder is named, and the CLI offers --wait (issue 15, "Locks and hooks").

The finding: a stopped process holding the vault lock gave everyone "the vault
is busy ... try again" after 10 s, without saying who. Real parts: the holder
is a real process that takes the real flock and is then stopped with SIGSTOP;
the waiter is the real CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from glasskey.core.errors import StorageError
from glasskey.core.fsutil import VaultLock
from test_cli import Cli, one_sentence
from test_cli import cli as cli  # the fixture, re-exported

ROOT = Path(__file__).resolve().parent.parent

HOLDER = """
import sys, time
from pathlib import Path
from glasskey.core.fsutil import VaultLock, set_lock_identity
set_lock_identity(operator="mallory", command="request db-root")
VaultLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(120)
"""


def stopped_holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        os.kill(proc.pid, signal.SIGSTOP)
        yield proc
    finally:
        proc.kill()  # SIGKILL ends a stopped process too
        proc.wait(10)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    yield from stopped_holder(tmp_path / ".lock")


def test_the_timeout_names_a_stopped_holder(tmp_path: Path,
                                            holder: subprocess.Popen[str]) -> None:
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        VaultLock(tmp_path / ".lock", timeout=0.5).acquire()
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert f"process {holder.pid}" in message
    assert "operator mallory" in message and "command request db-root" in message
    assert "STOPPED" in message and "--wait" in message


def test_a_released_lock_names_nobody(tmp_path: Path) -> None:
    lock = VaultLock(tmp_path / ".lock")
    lock.acquire()
    assert lock.holder() is not None and lock.holder()["pid"] == os.getpid()  # type: ignore[index]
    lock.release()
    assert lock.holder() is None


def test_the_cli_waits_as_long_as_asked_and_names_the_holder(cli: Cli) -> None:
    # (names are checked before anything waits for the lock: the credential exists)
    assert cli("cred", "add", "db", *cli.as_("bob", -30)).code == 0
    for proc in stopped_holder(cli.root / "vault" / ".lock"):
        started = time.monotonic()
        r = cli("request", "db", "--reason", "r", "--ticket", "T-1", "--duration", "30m",
                "--wait", "1",
                *cli.as_("alice", 0))
        took = time.monotonic() - started
        assert r.code == 1, (r.code, r.err)
        assert one_sentence(r.err), r.err
        assert f"process {proc.pid}" in r.err and "mallory" in r.err, r.err
        assert took < 6, took
    r = cli("request", "db", "--wait", "inf", *cli.as_("alice", 0))
    assert r.code == 2 and "--wait" in r.err, r.err
