"""The store under crashes, failing disks, concurrency, lock pitfalls and umasks.

D2 power loss / crash mid-commit, D3 disk full and I/O errors, D4 lost
updates, D5 lock pitfalls, D6 permissions (RELIABILITY.md).

Every increment (tests.helpers.increment) moves a counter in vault.json and
the same counter in a shard file in one transaction, with an audit record, so
a state where the two differ is a torn commit.
"""

from __future__ import annotations

import errno
import fcntl
import json
import multiprocessing as mp
import os
import random
import signal
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from glasskey.core import fsutil
from glasskey.core.audit import Head
from glasskey.core.chain import verify_log
from glasskey.core.errors import StorageError
from glasskey.core.store import Store, parse_state
from helpers import (
    StoreEnv,
    counters,
    fork_and_kill,
    increment,
    make_store,
    make_vault,
    tree_digest,
    worker_increment,
)

SOAK = os.environ.get("GLASSKEY_SOAK") == "1"


def _state_head(root: Path) -> Head:
    return Head.from_doc(json.loads((root / "vault.json").read_bytes())["meta"]["vault"]["audit"])


def _healthy(env: StoreEnv) -> None:
    """The vault opens, its two counter copies agree, the audit chain verifies."""
    small, shard = counters(Store(env.root))
    assert small == shard
    result = verify_log(env.store.audit, state_head=_state_head(env.root))
    assert result.ok, result.reason


# -- D2: crash at every commit step -------------------------------------------------------


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", ["shard", "backup", "state", "committed"])
def test_d2_crash_at_each_commit_step(store_env: StoreEnv, step: str) -> None:
    store, signer, root = store_env.store, store_env.signer, store_env.root
    increment(store, signer)
    increment(store, signer)
    state_before = (root / "vault.json").read_bytes()

    def fault(at: str) -> None:
        if at == step:
            raise Crash(at)

    store.fault = fault
    with pytest.raises(Crash):
        increment(store, signer)
    store.fault = None
    if step == "committed":
        assert counters(Store(root)) == (3, 3)  # the after state
    else:
        assert counters(Store(root)) == (2, 2)  # the before state, exactly
        assert (root / "vault.json").read_bytes() == state_before
    parse_state((root / "vault.json.bak").read_bytes())
    n = increment(store, signer)
    assert n == (4 if step == "committed" else 3)
    _healthy(store_env)


def _no_damaged_files(root: Path) -> None:
    """No 0-byte or NUL-filled file; every file the state names is there."""
    for path in root.rglob("*"):
        if not path.is_file() or path.name in (".lock", ".lock.holder") \
                or path.name.endswith(".tmp"):
            continue  # the lock file is empty by design; temp files are collected
        data = path.read_bytes()
        assert data.strip(b"\x00"), f"{path.relative_to(root)} is empty or all NUL"
    for name in ("vault.json", "vault.json.bak"):
        parse_state((root / name).read_bytes())


def _increment_loop(root: Path, key_hex: str, ack_fd: int) -> None:
    from glasskey.core.audit import Signer

    store = Store(root)
    signer = Signer("tester", bytes.fromhex(key_hex))
    while True:
        n = increment(store, signer)
        os.write(ack_fd, f"{n}\n".encode())


@pytest.mark.slow
def test_d2_sigkill_mid_transaction(tmp_path: Path) -> None:
    trials = 300 if SOAK else 30
    rng = random.Random(2)
    env = make_store(tmp_path / "v")
    key_hex = (env.signer.key or b"").hex()
    last_acked = 0
    acks = 0
    for trial in range(trials):
        out = fork_and_kill(_increment_loop, (env.root, key_hex), rng.uniform(0.0, 0.03))
        acked = [int(x) for x in out.decode().split("\n")[:-1]]
        assert acked, "the child never acknowledged a commit"
        last_acked = acked[-1]
        acks += len(acked)
        # Before any recovery: the files as the crash left them.
        _no_damaged_files(env.root)
        small, shard = counters(Store(env.root))
        assert small == shard, f"trial {trial}: torn commit ({small} != {shard})"
        # Acknowledged commits survive; at most the one in flight was added.
        assert last_acked <= small <= last_acked + 1, (trial, last_acked, small)
        last_acked = increment(Store(env.root), env.signer)  # recovery, then a commit
        _healthy(env)
        leftovers = [p.name for p in env.root.rglob("*.tmp")]
        assert not leftovers, leftovers
    assert acks >= trials


# -- D3: disk full, I/O errors ------------------------------------------------------------


class FailingOs:
    """``os`` for core.fsutil whose n-th write/fsync fails with ``err``."""

    def __init__(self, fail_at: int, func: str, err: int) -> None:
        self.fail_at, self.func, self.err = fail_at, func, err
        self.calls = 0
        self.failed_path: str | None = None
        self.calls_after_failure = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _maybe_fail(self, func: str, fd: int) -> None:
        if func != self.func:
            return
        if self.failed_path is not None:
            self.calls_after_failure += 1
            return
        self.calls += 1
        if self.calls == self.fail_at:
            self.failed_path = os.readlink(f"/proc/self/fd/{fd}")
            raise OSError(self.err, os.strerror(self.err))

    def write(self, fd: int, data: Any) -> int:
        self._maybe_fail("write", fd)
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        self._maybe_fail("fsync", fd)
        os.fsync(fd)


def _count_calls(env: StoreEnv, monkeypatch: pytest.MonkeyPatch, func: str) -> int:
    probe = FailingOs(10**9, func, errno.EIO)
    with monkeypatch.context() as m:
        m.setattr(fsutil, "os", probe)
        increment(env.store, env.signer)
    return probe.calls


REASONS = {errno.ENOSPC: "disk is full", errno.EIO: "I/O error"}


@pytest.mark.parametrize("func", ["write", "fsync"])
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
def test_d3_disk_errors_at_every_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       func: str, err: int) -> None:
    probe_env = make_store(tmp_path / "probe")
    total = _count_calls(probe_env, monkeypatch, func)
    assert total >= 3
    witness_dir = os.environ["GLASSKEY_STATE_DIR"]
    seen: set[str] = set()
    for k in range(1, total + 1):
        env = make_store(tmp_path / f"{func}-{err}-{k}")
        increment(env.store, env.signer)
        state = (env.root / "vault.json").read_bytes()
        failing = FailingOs(k, func, err)
        error: StorageError | None = None
        with monkeypatch.context() as m:
            m.setattr(fsutil, "os", failing)
            try:
                increment(env.store, env.signer)
            except StorageError as exc:
                error = exc
        assert failing.failed_path is not None
        assert failing.calls_after_failure == 0, "a failed write/fsync was retried"
        where = failing.failed_path
        changed = (env.root / "vault.json").read_bytes() != state
        if where.startswith(witness_dir):
            # The client's checkpoint is best effort: the commit stands.
            assert error is None and changed
            seen.add("witness")
        elif where == str(env.root):
            # Only the final directory flush comes after the rename: the new
            # state is visible, and the message must not claim otherwise.
            assert error is not None and changed
            assert "nothing was changed" not in str(error)
            assert "may be lost" in str(error)
            seen.add("after-rename")
        else:
            assert error is not None, f"failure in {where} not reported"
            assert not changed, f"vault.json changed after a failure in {where}"
            seen.add("before-commit")
        if error is not None:
            assert REASONS[err] in str(error)
        # A failed attempt never damages: the next write works and all agrees.
        increment(env.store, env.signer)
        _healthy(env)
    expected = {"witness", "before-commit"} | ({"after-rename"} if func == "fsync" else set())
    assert seen == expected


# -- D4: lost updates ---------------------------------------------------------------------


@pytest.mark.slow
def test_d4_two_processes_no_lost_updates(store_env: StoreEnv) -> None:
    procs_n, each = (4, 1000) if SOAK else (2, 200)
    ctx = mp.get_context("spawn")
    key_hex = (store_env.signer.key or b"").hex()
    procs = [ctx.Process(target=worker_increment,
                         args=(str(store_env.root), os.environ["GLASSKEY_STATE_DIR"], key_hex,
                               each))
             for _ in range(procs_n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert counters(store_env.store) == (procs_n * each, procs_n * each)
    _healthy(store_env)


def test_d4_stale_view_never_overwrites(store_env: StoreEnv) -> None:
    a, b = Store(store_env.root), Store(store_env.root)
    increment(a, store_env.signer)
    with a.read() as stale:
        seen = stale.table("meta").get("counter")
        increment(b, store_env.signer)  # another process commits meanwhile
    assert seen == {"n": 1}
    assert increment(a, store_env.signer) == 3  # a re-reads under the lock
    assert counters(b) == (3, 3)


# -- D5: lock pitfalls --------------------------------------------------------------------


def test_d5_lock_file_is_permanent(store_env: StoreEnv) -> None:
    lock = store_env.root / ".lock"
    ino = lock.stat().st_ino
    for _ in range(5):
        increment(store_env.store, store_env.signer)

    def crash(at: str) -> None:
        raise OSError(errno.EIO, "injected")

    store_env.store.fault = crash
    with pytest.raises(OSError):
        increment(store_env.store, store_env.signer)
    store_env.store.fault = None
    with pytest.raises(RuntimeError), store_env.store.transaction():
        raise RuntimeError("body failed")
    assert lock.exists() and lock.stat().st_ino == ino


def test_d5_flock_held_for_the_whole_transaction(store_env: StoreEnv) -> None:
    """Another open file description cannot flock the lock file mid-transaction
    (it could if the store used POSIX lockf, which does not conflict with flock)."""
    with store_env.store.transaction() as txn:
        fd = os.open(store_env.root / ".lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        txn.table("meta").put("x", {"x": 1})
    fd = os.open(store_env.root / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released afterwards
    finally:
        os.close(fd)


@pytest.mark.parametrize("target_exists", [False, True])
def test_d5_symlink_at_lock_path_refused(store_env: StoreEnv, tmp_path: Path,
                                         target_exists: bool) -> None:
    lock = store_env.root / ".lock"
    lock.unlink()
    target = tmp_path / "elsewhere"
    if target_exists:
        target.write_bytes(b"")
    lock.symlink_to(target)
    before = tree_digest(store_env.root)
    with pytest.raises(StorageError, match="symlink"):
        increment(store_env.store, store_env.signer)
    assert tree_digest(store_env.root) == before
    assert target.exists() == target_exists


@contextmanager
def _lock_held_elsewhere(root: Path) -> Iterator[int]:
    """A forked process holding the vault's flock until the block ends."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            fd = os.open(root / ".lock", os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(w, b"x")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"x"
    os.close(r)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_d5_lock_timeout_is_an_error_not_a_write(store_env: StoreEnv) -> None:
    increment(store_env.store, store_env.signer)
    before = tree_digest(store_env.root)
    ran = []
    with _lock_held_elsewhere(store_env.root):
        store = Store(store_env.root, lock_timeout=0.3)
        start = time.monotonic()
        with pytest.raises(StorageError, match="busy"), store.transaction() as txn:
            ran.append(True)
            txn.table("meta").put("x", {"x": 1})
        assert 0.3 <= time.monotonic() - start < 5
    assert not ran, "the transaction body ran without the lock"
    assert tree_digest(store_env.root) == before
    increment(Store(store_env.root), store_env.signer)  # works once released


def test_d5_unlock_lock_timeout_counts_nothing(tmp_path: Path) -> None:
    env = make_vault(tmp_path)
    failures = env.operator_doc("alice")["totp"]["failures"]
    before = tree_digest(env.root)
    with _lock_held_elsewhere(env.root):
        vault = env.reopen(lock_timeout=0.2)
        with pytest.raises(StorageError):
            vault.unlock("alice", env.passphrases["alice"], env.code("alice"))
    assert tree_digest(env.root) == before
    assert env.operator_doc("alice")["totp"]["failures"] == failures


# -- D6: permissions ----------------------------------------------------------------------


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _modes(*roots: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            out[str(path)] = stat.S_IMODE(path.lstat().st_mode)
    return out


@pytest.mark.parametrize("mask", [0o000, 0o077, 0o022])
def test_d6_private_modes_whatever_the_umask(tmp_path: Path, mask: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "client-state"
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(state_dir))
    with _umask(mask):
        env = make_vault(tmp_path)
        alice = env.unlock("alice")
        from glasskey.core.credentials import CredentialSpec

        env.vault.add_credential(alice, CredentialSpec("db-root"))
        with open(env.root / "audit.jsonl", "ab") as fh:
            fh.write(b'{"torn')  # so that a quarantine dir and file exist
        env.vault.add_credential(alice, CredentialSpec("db-two"))
        (env.root / "vault.json").chmod(0o644)  # a replace must restore 0600
        (env.root / "vault.json.bak").chmod(0o644)
        env.vault.add_credential(alice, CredentialSpec("db-three"))
    modes = _modes(env.root, state_dir / "checkpoints")
    assert (env.root / "audit.quarantine").is_dir()
    assert any(p.endswith(".partial") for p in modes)
    bad = {p: oct(m) for p, m in modes.items()
           if m != (0o700 if Path(p).is_dir() else 0o600)}
    assert not bad, bad
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700


def test_d6_temp_files_same_dir_exclusive_nofollow(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, int]] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        def open(self, path: Any, flags: int, mode: int = 0o777) -> int:
            opened.append((str(path), flags))
            return os.open(path, flags, mode)

    target = tmp_path / "f.json"
    with monkeypatch.context() as m:
        m.setattr(fsutil, "os", Recording())
        fsutil.atomic_write(target, b"{}")
    creates = [(p, f) for p, f in opened if f & os.O_CREAT]
    assert len(creates) == 1
    path, flags = creates[0]
    assert Path(path).parent == tmp_path and path.endswith(".tmp")
    assert flags & os.O_EXCL and flags & os.O_NOFOLLOW
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp left behind
