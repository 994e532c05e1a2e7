"""The audit log: tamper detection (L2), truncation and rollback (L3), torn
tails (L4) and concurrent appenders (L5).

CI runs a sample of the L2 indices and a few kill trials; ``GLASSKEY_SOAK=1``
runs every index and more trials.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from glasskey.core import canonical
from glasskey.core.audit import (
    QUARANTINE_DIR,
    SYSTEM_EVENTS,
    SYSTEM_SIGNER,
    AuditLog,
    Head,
    Signer,
    build_entry,
    line_hash,
)
from glasskey.core.chain import verify_log
from glasskey.core.crypto import sign
from glasskey.core.errors import IntegrityError, StorageError
from glasskey.core.store import Store
from helpers import (
    StoreEnv,
    VaultEnv,
    counters,
    file_store,
    fork_and_kill,
    founding_details,
    increment,
    make_store,
    new_signer,
    worker_increment,
)

SOAK = os.environ.get("GLASSKEY_SOAK") == "1"
N = 1000

# -- L2: tamper detection on a 1,000-entry log ------------------------------------------------


@dataclass(frozen=True)
class BuiltLog:
    lines: tuple[bytes, ...]
    head: Head
    signers: dict[str, Signer]


@cache
def built_log() -> BuiltLog:
    """1,000 entries: a founding signed by three founders, then signed and system events."""
    rng = random.Random(1000)
    signers: dict[str, Signer] = {}
    head = Head()
    lines: list[bytes] = []
    now = 1_800_000_000.0
    founders = []
    for name in ("alice", "bob", "carol"):
        signer, public = new_signer(name)
        signers[name] = signer
        founders.append((signer, public))
    vault_id, details = founding_details(founders)
    line, head = build_entry(head, signers["alice"], "vault.founded", vault_id, details, now)
    lines.append(line)
    system_events = sorted(SYSTEM_EVENTS)
    while len(lines) < N:
        now += rng.randint(1, 90)
        who = rng.choice(["alice", "bob", "carol", "alice", "bob", "system"])
        if len(lines) == N - 2:
            who = "system"  # entry N-1: unsigned
        elif len(lines) == N - 1:
            who = "alice"  # entry N: signed
        if who == "system":
            line, head = build_entry(head, SYSTEM_SIGNER, rng.choice(system_events), "x",
                                     {"n": len(lines)}, now)
        else:
            line, head = build_entry(head, signers[who], "credential.added",
                                     f"cred-{len(lines)}", {"n": len(lines), "k": 2}, now)
        lines.append(line)
    return BuiltLog(tuple(lines), head, signers)


FOREIGN, _ = new_signer("mallory")


def _head_before(log: BuiltLog, i: int) -> Head:
    """The head after entries 1..i-1 (recomputed from the lines)."""
    head = Head()
    for raw in log.lines[: i - 1]:
        entry = json.loads(raw)
        actors = dict(head.actors)
        actors[entry["actor"]] = line_hash(raw)
        head = Head(entry["seq"], line_hash(raw), head.offset + len(raw) + 1, actors)
    return head


def _flip(lines: list[bytes], i: int, rng: random.Random) -> int:
    """Flip one bit of one byte of entry i (never turning it into a newline)."""
    raw = bytearray(lines[i - 1])
    pos = rng.randrange(len(raw))
    bit = rng.randrange(8)
    if raw[pos] ^ (1 << bit) == ord("\n"):
        bit = (bit + 1) % 8
    raw[pos] ^= 1 << bit
    lines[i - 1] = bytes(raw)
    return i


def _delete(lines: list[bytes], i: int, rng: random.Random) -> int:
    del lines[i - 1]
    return i


def _swap(lines: list[bytes], i: int, rng: random.Random) -> int:
    i = min(i, len(lines) - 1)
    lines[i - 1], lines[i] = lines[i], lines[i - 1]
    return i


def _insert(lines: list[bytes], i: int, rng: random.Random) -> int:
    """A forged entry that chains perfectly but is signed with a foreign key."""
    log = built_log()
    head = _head_before(log, i)
    victim = rng.choice(["alice", "bob", "carol"])
    line, _ = build_entry(head, Signer(victim, FOREIGN.key), "checkout.revealed", "db-root",
                          {"forged": True}, 1_800_000_000.0)
    lines.insert(i - 1, line)
    return i


def _resign(lines: list[bytes], i: int, rng: random.Random) -> int:
    """Alter entry i, recompute its hash, sign it with a foreign key."""
    entry = canonical.loads(lines[i - 1])
    body = {k: entry[k] for k in entry if k not in ("hash", "sig")}
    body["details"] = dict(body["details"], altered=True)
    digest = hashlib.sha256(canonical.dumps(body)).hexdigest()
    sig = canonical.b64e(sign.sign(FOREIGN.key or b"", bytes.fromhex(digest)))
    lines[i - 1] = canonical.dumps({**body, "hash": digest, "sig": sig})
    return i


MUTATIONS = {"flip": _flip, "delete": _delete, "swap": _swap, "insert": _insert,
             "resign": _resign}


def _indices(kind: str) -> list[int]:
    top = N + 1 if kind == "insert" else N
    if SOAK:
        return list(range(1, top + 1))
    rng = random.Random(kind)
    return sorted({1, 2, 3, 4, 5, N // 2, N - 2, N - 1, N, top,
                   *rng.sample(range(6, N - 2), 4)})


def _write(path: Path, lines: list[bytes]) -> AuditLog:
    path.mkdir(exist_ok=True)
    (path / "audit.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return AuditLog(path)


def test_l2_untouched_log_verifies(tmp_path: Path) -> None:
    built = built_log()
    log = _write(tmp_path, list(built.lines))
    result = verify_log(log, state_head=built.head)
    assert result.ok, result.reason
    assert result.entries == N and result.head.hash == built.head.hash
    assert result.signatures == N - sum(b'"actor":"system"' in ln for ln in built.lines)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_l2_tamper_names_first_bad_entry(tmp_path: Path, kind: str) -> None:
    built = built_log()
    misses: list[str] = []
    for i in _indices(kind):
        rng = random.Random(f"{kind}-{i}")
        lines = list(built.lines)
        expected = MUTATIONS[kind](lines, i, rng)
        log = _write(tmp_path, lines)
        result = verify_log(log, state_head=built.head)
        if result.ok or result.first_bad != expected:
            misses.append(f"{kind}@{i}: got {result.first_bad} ({result.reason})")
            continue
        # Without the state's head it must notice too (only a deleted last line
        # needs the head: nothing after it is left to break).
        alone = verify_log(log)
        if alone.ok and not (kind == "delete" and i == N):
            misses.append(f"{kind}@{i}: verify without heads did not notice")
    assert not misses, misses[:10]


def test_l2_last_entry_altered_without_heads(tmp_path: Path) -> None:
    """Even with no state head to compare, an altered final entry (hash and
    signature fields kept as they were) is caught by the fast pass."""
    built = built_log()
    for i in (N, N - 1):  # the log ending at a signed / at a system entry
        lines = list(built.lines[:i])
        entry = canonical.loads(lines[i - 1])
        entry["details"] = dict(entry["details"], altered=True)
        lines[i - 1] = canonical.dumps(entry)  # stale hash, stale signature
        result = verify_log(_write(tmp_path, lines))
        assert not result.ok and result.first_bad == i, result


def test_l2_unknown_field_and_non_canonical_line(tmp_path: Path) -> None:
    built = built_log()
    entry = canonical.loads(built.lines[9])
    for bad in (canonical.dumps({**entry, "extra": 1}),
                json.dumps(entry).encode(),            # spaces: not canonical
                canonical.dumps(entry) + b" "):
        lines = list(built.lines)
        lines[9] = bad
        result = verify_log(_write(tmp_path, lines), state_head=built.head)
        assert not result.ok and result.first_bad == 10, result


# -- L3: truncation and rollback ----------------------------------------------------------


def _add_entries(env: VaultEnv, count: int) -> None:
    session = env.unlock("alice")
    with env.vault.store.transaction() as txn:
        for n in range(count):
            txn.record(session.signer, "test.note", "x", {"n": n})


def _detected(env: VaultEnv) -> str:
    """``verify_audit`` notices (a failed result, or an IntegrityError); returns why."""
    try:
        result = env.reopen().verify_audit()
    except IntegrityError as exc:
        return str(exc)
    assert not result.ok, "verify_audit accepted a truncated or rolled-back log"
    return result.reason


def _write_refused(root: Path) -> None:
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    with pytest.raises(IntegrityError), Store(root).transaction() as txn:
        txn.table("meta").put("x", {"x": 1})
    after = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    assert after == before


@pytest.mark.parametrize("k", [1, 2, 5])
def test_l3_truncated_log_detected(vault2: VaultEnv, k: int) -> None:
    _add_entries(vault2, 6)
    audit = vault2.root / "audit.jsonl"
    lines = audit.read_bytes().splitlines(keepends=True)
    audit.write_bytes(b"".join(lines[:-k]))
    _detected(vault2)
    _write_refused(vault2.root)


@pytest.mark.parametrize("k", [1, 3])
def test_l3_consistent_truncation_needs_the_witness(vault2: VaultEnv, k: int) -> None:
    """Log cut *and* vault.json's head moved back to match: only the client's
    checkpoint (which saw the later head) can tell."""
    snapshots: list[tuple[bytes, bytes]] = []
    for _ in range(k + 1):
        snapshots.append(((vault2.root / "vault.json").read_bytes(),
                          (vault2.root / "audit.jsonl").read_bytes()))
        _add_entries(vault2, 1)
    state, log = snapshots[1]
    (vault2.root / "vault.json").write_bytes(state)
    (vault2.root / "audit.jsonl").write_bytes(log)
    reason = _detected(vault2)
    assert "checkpoint" in reason or "rolled back" in reason, reason
    _write_refused(vault2.root)
    with pytest.raises(IntegrityError, match="rolled back"), Store(vault2.root).read():
        pass


def test_l3_restored_snapshot_detected(vault2: VaultEnv, tmp_path: Path) -> None:
    snaps: list[Path] = []
    for n in range(3):
        snap = tmp_path / f"snap{n}"
        shutil.copytree(vault2.root, snap)
        snaps.append(snap)
        _add_entries(vault2, 2)
    for snap in snaps:
        shutil.rmtree(vault2.root)
        shutil.copytree(snap, vault2.root)
        reason = _detected(vault2)
        assert "checkpoint" in reason or "rolled back" in reason, reason
        _write_refused(vault2.root)
        with pytest.raises(IntegrityError, match="rolled back"):
            vault2.reopen().operators()


def test_l3_forked_history_detected(vault2: VaultEnv, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An old snapshot restored and then extended past our head by a client that
    never saw the newer history: the entry at our checkpoint differs."""
    snap = tmp_path / "snap"
    shutil.copytree(vault2.root, snap)
    _add_entries(vault2, 2)
    ours = os.environ["GLASSKEY_STATE_DIR"]
    shutil.rmtree(vault2.root)
    shutil.copytree(snap, vault2.root)
    monkeypatch.setenv("GLASSKEY_STATE_DIR", str(tmp_path / "other-client"))
    _add_entries(vault2, 5)  # the other client is happy: it never saw more
    assert vault2.reopen().verify_audit().ok
    monkeypatch.setenv("GLASSKEY_STATE_DIR", ours)
    reason = _detected(vault2)
    assert "checkpoint" in reason or "rewritten" in reason, reason
    _write_refused(vault2.root)
    with pytest.raises(IntegrityError, match="rewritten"):
        vault2.reopen().operators()


@pytest.mark.parametrize("field,delta", [("seq", 3), ("offset", 40), ("seq", 1)])
def test_l3_state_head_beyond_log_detected(vault2: VaultEnv, field: str, delta: int) -> None:
    _add_entries(vault2, 3)
    path = vault2.root / "vault.json"
    state = json.loads(path.read_bytes())
    state["meta"]["vault"]["audit"][field] += delta
    path.write_bytes(canonical.dumps(state))
    _detected(vault2)
    _write_refused(vault2.root)


# -- L4: torn tails and uncommitted appends -----------------------------------------------


def _events(root: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (root / "audit.jsonl").read_bytes().splitlines()]


@pytest.mark.parametrize("partial", [
    b'{"actor":"tester","actor_prev":"00',
    b"\x00" * 300,
    b"{",
    b'{"seq":99}',  # complete JSON, but no newline: still a torn tail
])
def test_l4_partial_tail_quarantined(store_env: StoreEnv, partial: bytes) -> None:
    store, signer, root = store_env.store, store_env.signer, store_env.root
    acked = [increment(store, signer) for _ in range(3)]
    before = (root / "audit.jsonl").read_bytes()
    with open(root / "audit.jsonl", "ab") as fh:
        fh.write(partial)
    pre = verify_log(store.audit)
    assert pre.ok and pre.torn_tail_bytes == len(partial)
    assert increment(store, signer) == acked[-1] + 1  # never fatal
    quarantined = list((root / QUARANTINE_DIR).iterdir())
    assert [q.read_bytes() for q in quarantined] == [partial]
    events = _events(root)
    assert (root / "audit.jsonl").read_bytes().startswith(before)
    tq = [e for e in events if e["event"] == "audit.tail-quarantined"]
    assert len(tq) == 1 and tq[0]["details"]["bytes"] == len(partial)  # type: ignore[index]
    result = verify_log(store.audit, state_head=_state_head(root))
    assert result.ok and result.torn_tail_bytes == 0, result.reason
    assert counters(store) == (4, 4)


def _state_head(root: Path) -> Head:
    return Head.from_doc(json.loads((root / "vault.json").read_bytes())["meta"]["vault"]["audit"])


@pytest.mark.parametrize("step", ["shard", "backup", "state"])
def test_l4_appended_but_uncommitted(store_env: StoreEnv, step: str) -> None:
    store, signer, root = store_env.store, store_env.signer, store_env.root
    increment(store, signer)
    seq_before = _state_head(root).seq

    def fault(at: str) -> None:
        if at == step:
            raise OSError(5, "injected")

    store.fault = fault
    with pytest.raises(OSError):
        increment(store, signer)
    store.fault = None
    assert counters(store) == (1, 1)
    assert len(_events(root)) == seq_before + 1  # the record is durable, the state is not
    increment(store, signer)
    events = _events(root)
    unc = [e for e in events if e["event"] == "audit.uncommitted"]
    assert len(unc) == 1
    assert unc[0]["details"]["first"] == seq_before + 1  # type: ignore[index]
    assert unc[0]["details"]["last"] == seq_before + 1  # type: ignore[index]
    result = verify_log(store.audit, state_head=_state_head(root))
    assert result.ok and result.entries == len(events), result.reason
    assert counters(store) == (2, 2)


def _append_loop(root: Path, key_hex: str, ack_fd: int) -> None:
    store = Store(root)
    signer = Signer("tester", bytes.fromhex(key_hex))
    while True:
        with store.transaction() as txn:
            doc = txn.table("meta").get("counter") or {"n": 0}
            txn.table("meta").put("counter", {"n": doc["n"] + 1})
            txn.table("requests").put("counter", {"n": doc["n"] + 1})
            for _ in range(1 + doc["n"] % 3):
                txn.record(signer, "test.increment", "counter", {"n": doc["n"] + 1,
                                                                 "pad": "p" * (doc["n"] % 500)})
        os.write(ack_fd, f"{txn.head.seq} {txn.head.hash}\n".encode())


@pytest.mark.slow
def test_l4_sigkill_during_appends(tmp_path: Path) -> None:
    trials = 100 if SOAK else 12
    rng = random.Random(4)
    env = make_store(tmp_path / "v")
    key_hex = (env.signer.key or b"").hex()
    acked: dict[int, str] = {}
    for _ in range(trials):
        out = fork_and_kill(_append_loop, (env.root, key_hex), rng.uniform(0.0, 0.04))
        for line in out.decode().splitlines():
            if line.count(" ") == 1:
                seq, digest = line.split()
                acked[int(seq)] = digest
        increment(Store(env.root), env.signer)  # recovery runs here; never fatal
        result = verify_log(env.store.audit, state_head=_state_head(env.root))
        assert result.ok, result.reason
        small, shard = counters(env.store)
        assert small == shard
    assert acked, "the child never acknowledged anything; the test proved nothing"
    lines = (env.root / "audit.jsonl").read_bytes().splitlines()
    for number, digest in acked.items():
        assert line_hash(lines[number - 1]) == digest, f"acknowledged entry {number} lost"
    quarantined = list((env.root / QUARANTINE_DIR).glob("*")) if (
        env.root / QUARANTINE_DIR).exists() else []
    events = [json.loads(x) for x in lines]
    assert len([e for e in events if e["event"] == "audit.tail-quarantined"]) == len(quarantined)


# -- L5: concurrent appenders ---------------------------------------------------------------


@pytest.mark.slow
def test_l5_concurrent_appenders(store_env: StoreEnv) -> None:
    procs_n, each = (4, 500) if SOAK else (3, 100)
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
    raw = (store_env.root / "audit.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    events = [canonical.loads_canonical(line) for line in raw.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) == 1 + procs_n * each
    assert sorted(e["details"]["n"] for e in events[1:]) == list(range(1, procs_n * each + 1))
    result = verify_log(store_env.store.audit, state_head=_state_head(store_env.root))
    assert result.ok, result.reason
    assert counters(store_env.store) == (procs_n * each, procs_n * each)


def test_audit_append_fault_keeps_log_byte_identical(store_env: StoreEnv) -> None:
    store, signer, root = store_env.store, store_env.signer, store_env.root
    increment(store, signer)
    for at in ("write", "fsync"):
        before = {p: (root / p).read_bytes() for p in ("audit.jsonl", "vault.json")}

        def fault(step: str, at: str = at) -> None:
            if step == at:
                raise OSError(28, "No space left on device")

        store.audit.fault = fault
        with pytest.raises(StorageError, match="action refused"):
            increment(store, signer)
        store.audit.fault = None
        assert {p: (root / p).read_bytes() for p in before} == before
    assert increment(store, signer) == 2
    assert verify_log(store.audit).ok


@pytest.mark.parametrize("bad_at", [2, 457, N])
def test_parallel_signature_check_names_the_first_bad_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_at: int) -> None:
    """The worker-process path (used past 20,000 signatures) finds the same entry."""
    from glasskey.core import chain

    monkeypatch.setattr(chain, "PARALLEL_MIN", 50)
    monkeypatch.setattr(chain.SignatureChecker, "CHUNK", 64)
    pools: list[int] = []

    class CountingPool(ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(chain, "ProcessPoolExecutor", CountingPool)
    built = built_log()
    lines = list(built.lines)
    rng = random.Random(bad_at)
    while True:  # a line whose actor signs (system entries carry no signature)
        if b'"actor":"system"' not in lines[bad_at - 1]:
            break
        bad_at -= 1
    expected = _resign(lines, bad_at, rng)
    seen: list[tuple[int, int]] = []
    result = verify_log(_write(tmp_path, lines), progress=lambda d, t: seen.append((d, t)))
    assert not result.ok and result.first_bad == expected, result.reason
    clean = verify_log(_write(tmp_path, list(built.lines)), progress=lambda d, t: None)
    assert clean.ok and clean.signatures > 50
    assert pools  # the clean run went through worker processes (a tampered one may stop early)


def test_incremental_verify_still_catches_an_old_line_rewritten(
        vault2: VaultEnv) -> None:
    """Signatures are checked only after the checkpoint, but a same-length rewrite of a
    line this client verified long ago is still caught (hash links of the prefix)."""
    _add_entries(vault2, 30)
    first = vault2.vault.verify_audit()  # full; the checkpoint now sits at the head
    assert first.ok and first.mode == "full"
    _add_entries(vault2, 5)
    again = vault2.vault.verify_audit(incremental=True)
    assert again.ok and again.mode == "incremental" and again.signatures <= 6
    path = vault2.root / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    victim = 9  # entry 10, long before the checkpoint
    old = lines[victim]
    at = old.rindex(b'Z"') - 1  # the last digit of its time
    lines[victim] = old[:at] + (b"1" if old[at:at + 1] != b"1" else b"2") + old[at + 1:]
    assert len(lines[victim]) == len(old) and lines[victim] != old
    path.write_bytes(b"".join(lines))
    result = vault2.vault.verify_audit(incremental=True)
    assert not result.ok and result.first_bad == victim + 1, result.reason


@pytest.mark.parametrize("victim", [0, 1, 17, 18, 19, 35])
def test_prefix_check_in_worker_processes_names_the_rewritten_line(
        vault2: VaultEnv, monkeypatch: pytest.MonkeyPatch, victim: int) -> None:
    """The byte-range split (used past 64 MiB) finds a rewrite at and around the seams."""
    from glasskey.core import chain

    monkeypatch.setattr(chain, "PREFIX_PARALLEL_BYTES", 0)
    _add_entries(vault2, 36)
    assert vault2.vault.verify_audit().ok
    with file_store(vault2.vault).read() as txn:
        head: Head = txn.head  # type: ignore[attr-defined]  # the file backend's offset head
    assert chain.check_prefix(file_store(vault2.vault).audit, head) is None
    path = vault2.root / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    old = lines[victim]
    at = old.rindex(b'Z"') - 1
    lines[victim] = old[:at] + (b"1" if old[at:at + 1] != b"1" else b"2") + old[at + 1:]
    path.write_bytes(b"".join(lines))
    found = chain.check_prefix(file_store(vault2.vault).audit, head)
    assert found is not None and not found.ok
    # the link after the rewritten line breaks (or, for the last, the head)
    assert found.first_bad in (victim + 2, min(victim + 2, head.seq)), found.reason
