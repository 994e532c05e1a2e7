"""Real processes: single-use grants under races (A6) and SIGKILL during check-in."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from checkout_world import World, make_world
from glasskey.core.clock import FakeClock
from glasskey.core.errors import GlasskeyError
from glasskey.core.session import Session
from glasskey.core.vault import Vault
from helpers import file_store

SOAK = os.environ.get("GLASSKEY_SOAK") == "1"


def _redeem(root: str, session: Session, req: str, now: float, start: object,
            results: object) -> None:
    vault = Vault(Path(root), FakeClock(now), allow_weak_kdf=True)
    start.wait()  # type: ignore[attr-defined]
    try:
        value = vault.reveal(session, req)
        results.put(("ok", len(value)))  # type: ignore[attr-defined]
    except GlasskeyError as exc:
        results.put(("refused", type(exc).__name__))  # type: ignore[attr-defined]


@pytest.mark.parametrize("procs", [2, 4, 8])
def test_one_approval_redeemed_by_many_processes_succeeds_once(tmp_path: Path,
                                                               procs: int) -> None:
    w = make_world(tmp_path)
    w.add("db-root", "race-value-xyz")
    ctx = mp.get_context("fork")
    trials = 40 if SOAK else 4
    for _ in range(trials):
        req = w.checkout("db-root")
        start = ctx.Event()
        results = ctx.Queue()
        workers = [ctx.Process(target=_redeem, args=(str(w.root), w.s("alice"), req,
                                                      w.clock.now(), start, results))
                   for _ in range(procs)]
        for p in workers:
            p.start()
        start.set()
        outcomes = [results.get(timeout=60) for _ in workers]
        for p in workers:
            p.join(timeout=60)
        assert sum(1 for o in outcomes if o[0] == "ok") == 1, outcomes
        w.vault.checkin(w.s("alice"), req)
    refusals = [e for e in file_store(w.vault).audit.entries() if e["event"] == "checkout.refused"]
    assert len(refusals) == trials * (procs - 1)  # every failed redemption is audited
    assert w.vault.verify_audit().ok


CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from glasskey.core.clock import FakeClock
    from glasskey.core.vault import Vault
    from glasskey.core import totp
    root, req, now, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    vault = Vault(Path(root), FakeClock(now), allow_weak_kdf=True)
    s = vault.unlock("alice", "alice has a long passphrase", totp.code_at(seed, now))
    print("unlocked", flush=True)
    if mode == "checkin":
        r = vault.checkin(s, req)
        print("done", r.outcome, flush=True)
""")


def _run_child(w: World, req: str, mode: str = "checkin") -> subprocess.Popen[str]:
    w.clock.advance(30)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    return subprocess.Popen([sys.executable, "-c", CHILD, str(w.root), req,
                             str(w.clock.now()), mode], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_during_checkin_never_loses_the_credential(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    w.add("db-root", "kill-me-value")
    trials = 200 if SOAK else 16
    rng = random.Random(1234)
    seen: dict[str, int] = {}
    for trial in range(trials):
        req = w.checkout("db-root")
        revealed = w.vault.reveal(w.s("alice"), req).reveal()
        assert revealed  # a value we may later compare against
        child = _run_child(w, req)
        # wait for the unlock, then kill at a random moment inside the check-in
        line = child.stdout.readline() if child.stdout else ""
        assert line.startswith("unlocked"), child.stderr.read() if child.stderr else ""
        time.sleep(rng.uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        out = child.stdout.read() if child.stdout else ""
        # the vault opens, the log verifies, finishing the check-in works
        fresh = Vault(w.root, w.clock, allow_weak_kdf=True)
        assert fresh.verify_audit().ok, fresh.verify_audit().reason
        state = fresh.checkout(req).state
        pending = bool(fresh.pending_rotations())
        key = f"{state}{'+pending' if pending else ''}{'' if 'done' not in out else '+done'}"
        seen[key] = seen.get(key, 0) + 1
        if state != "closed":
            result = w.vault.checkin(w.s("alice"), req)
            assert result.outcome in ("committed", "nothing-to-do"), (trial, result)
        assert w.vault.checkout(req).state == "closed"
        # and the credential still opens: a new checkout reveals a new, working value
        nxt = w.checkout("db-root")
        value = w.vault.reveal(w.s("alice"), nxt).reveal()
        assert value != revealed
        w.vault.checkin(w.s("alice"), nxt)
    assert w.vault.verify_audit().ok
    assert not w.vault.pending_rotations()
    # the trials must actually have interrupted check-ins at different points
    print("states after SIGKILL:", seen)
    assert len(seen) >= 2, seen
