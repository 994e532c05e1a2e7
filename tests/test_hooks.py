"""The emergency notify hook runs outside the vault lock, in its own process
group, and is waited for as a process (issue 15, "Locks and hooks").

The finding: a hook that left a child running made other operators get "the
vault is busy" during an emergency, and the emergency user waited 30.4 s for
the secret. Real processes: the hook is a shell script, its child a real
``sleep``; the other operator is a second Vault with its own lock file handle.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from checkout_world import make_world
from glasskey.core import hooks
from glasskey.core.vault import Vault


def kill(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass


def test_a_hook_leaving_a_child_neither_locks_others_out_nor_delays_the_secret(
        tmp_path: Path) -> None:
    w = make_world(tmp_path, ("alice", "bob", "carol"))
    w.add("db-root", "v1-value")
    out, started, child = tmp_path / "event.json", tmp_path / "started", tmp_path / "child.pid"
    hook = tmp_path / "notify.sh"
    hook.write_text(f"#!/bin/sh\ncat > {out}\nsleep 30 &\necho $! > {child}\n"
                    f"touch {started}\nexit 0\n")
    hook.chmod(0o755)
    (w.root / "glasskey.toml").write_text(f'[notify]\ncommand = "{hook}"\n')
    w.vault.issue_kit([w.s("bob"), w.s("carol")])
    code = " ".join(w.vault.kit_part(w.s(n)) for n in ("bob", "carol"))
    alice = w.s("alice")
    outcome: dict[str, float] = {}

    def use_kit() -> None:
        t0 = time.monotonic()
        _, value = w.vault.emergency_reveal(alice, "db-root", code, "site down", "INC-9",
                                            600)
        assert value.reveal() == "v1-value"
        outcome["secret_after"] = time.monotonic() - t0

    thread = threading.Thread(target=use_kit, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + 15
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists(), "the hook never ran"
        # Another operator writes while the hook's child is still running.
        other = Vault(w.root, w.clock, lock_timeout=2, allow_weak_kdf=True)
        t0 = time.monotonic()
        with other.store.transaction():
            pass
        assert time.monotonic() - t0 < 1.5
        thread.join(20)
        assert not thread.is_alive()
        assert outcome["secret_after"] < 3, outcome
        assert json.loads(out.read_text())["event"] == "emergency.used"
        assert os.path.exists(f"/proc/{int(child.read_text())}")  # it was left running
    finally:
        kill(child)
        thread.join(40)


def test_a_hook_past_its_deadline_is_killed_with_its_group(tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    hook = tmp_path / "hang.sh"
    hook.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {child}\nwait\n")
    hook.chmod(0o755)
    try:
        t0 = time.monotonic()
        why = hooks.run(str(hook), b"{}", timeout=1)
        assert time.monotonic() - t0 < 3
        assert why is not None and "did not finish within 1 s" in why
        pid = int(child.read_text())
        for _ in range(50):
            if not os.path.exists(f"/proc/{pid}") or \
                    Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the hook's child outlived the hook's deadline")
    finally:
        kill(child)


def test_a_hook_outside_the_allowed_dirs_is_not_run(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "site.toml"
    policy.write_text(f'[command]\nallowed_dirs = ["{tmp_path / "allowed"}"]\n')
    monkeypatch.setenv("GLASSKEY_SITE_CONFIG", str(policy))
    marker = tmp_path / "RAN"
    hook = tmp_path / "notify.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    why = hooks.run(str(hook), b"{}")
    assert why is not None and "not under a directory the site allows" in why
    assert not marker.exists()


def test_a_hook_that_never_reads_a_large_payload_is_still_cut_at_its_deadline(
        tmp_path: Path) -> None:
    hook = tmp_path / "deaf.sh"
    hook.write_text("#!/bin/sh\nexec sleep 30\n")
    hook.chmod(0o755)
    t0 = time.monotonic()
    why = hooks.run(str(hook), b"x" * (4 << 20), timeout=1)
    assert time.monotonic() - t0 < 3
    assert why is not None and "did not finish" in why
