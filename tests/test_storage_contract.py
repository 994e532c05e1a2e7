"""The storage contract: what every backend behind ``core/storage/interface.py`` must do.

Written against the Protocols only (``Store``, ``Transaction``, ``Table``, the
audit reader and ``AuditCursor``): no file names, no offsets, no manifests. The
``backend`` fixture is parametrized over ``BACKENDS``: the file backend and the
PostgreSQL backend (a real server, tests/pg_vault.py) run every test. File-specific
behaviour (shards, the manifest, torn files) stays in tests/test_store.py.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from glasskey.core.audit import Signer
from glasskey.core.errors import IntegrityError, PolicyError, UsageError
from glasskey.core.storage.files import FileStore
from glasskey.core.storage.interface import AuditCursor, Refused, Store, Transaction
from glasskey.core.storage.postgres import PostgresStore
from helpers import counters, fork_and_kill, founding_details, increment, new_signer

if TYPE_CHECKING:
    from pg_vault import PgVaults

pytest_plugins = ["pg_vault"]  # the session's PostgreSQL (the pg_vaults fixture)


def _open_files(target: str) -> Store:
    return FileStore(Path(target))


def _open_postgres(target: str) -> Store:
    return PostgresStore(target)


#: backend name -> how to open a handle on the vault at ``target`` (module-level, so a
#: child process can open its own handle).
BACKENDS: dict[str, Callable[[str], Store]] = {"files": _open_files,
                                               "postgres": _open_postgres}


@dataclass(frozen=True)
class Backend:
    """A founded vault in one backend, and how to open more handles on it."""

    name: str
    target: str
    signer: Signer

    def open(self) -> Store:
        return BACKENDS[self.name](self.target)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    name = request.param
    if name == "postgres":  # a fresh database in the session's real PostgreSQL
        vaults: PgVaults = request.getfixturevalue("pg_vaults")
        target = vaults.url(vaults.new_database())
    else:
        target = str(tmp_path / "vault")
    store = BACKENDS[name](target)
    signer, public = new_signer()
    second, second_pub = new_signer("second")
    vid, details = founding_details([(signer, public), (second, second_pub)])
    assert not store.exists()
    store.create({"vault_id": vid})
    assert store.exists()
    with store.transaction() as txn:
        txn.record(signer, "vault.founded", vid, details)
    return Backend(name, target, signer)


def _all_entries(store: Store) -> list[dict[str, object]]:
    return store.audit_since(AuditCursor()).entries


# -- transactions ----------------------------------------------------------------------------

def test_a_commit_is_seen_by_every_new_handle(backend: Backend) -> None:
    store = backend.open()
    with store.transaction() as txn:
        txn.table("requests").put("r1", {"id": "r1", "n": 1})
        txn.table("flags").put("f1", {"name": "x"})
    for handle in (store, backend.open(), store.twin()):
        with handle.read() as txn:
            assert txn.table("requests").get("r1") == {"id": "r1", "n": 1}
            assert txn.table("flags").get("f1") == {"name": "x"}


def test_an_error_inside_a_transaction_changes_nothing(backend: Backend) -> None:
    store = backend.open()
    increment(store, backend.signer)
    seq, entries = store.seq(), len(_all_entries(store))
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as txn:
        txn.table("requests").put("counter", {"n": 99})
        txn.table("meta").put("counter", {"n": 99})
        txn.record(backend.signer, "test.increment", "counter", {"n": 99})
        raise RuntimeError("boom")
    assert counters(backend.open()) == (1, 1)
    assert store.seq() == seq
    assert len(_all_entries(store)) == entries


def test_a_refusal_commits_its_audit_records_then_raises(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(PolicyError, match="not allowed"), store.transaction() as txn:
        txn.table("flags").put("attempts", {"n": 1})
        seq = txn.record(backend.signer, "test.refused", "thing", {"why": "policy"})
        raise Refused(PolicyError("not allowed"))
    last = store.audit_tail(1).entries[-1]
    assert (last["seq"], last["event"], last["subject"]) == (seq, "test.refused", "thing")
    with backend.open().read() as txn:
        assert txn.table("flags").get("attempts") == {"n": 1}


def test_a_read_snapshot_refuses_writes(backend: Backend) -> None:
    store = backend.open()
    with store.read() as txn:
        assert not txn.write
        with pytest.raises(UsageError):
            txn.table("requests").put("r", {"n": 1})
        with pytest.raises(UsageError):
            txn.record(backend.signer, "test.increment", "r", {})
    with store.transaction() as txn:
        assert txn.write


def test_seq_changes_exactly_on_commit(backend: Backend) -> None:
    store = backend.open()
    before = store.seq()
    with store.read() as txn:
        txn.table("requests").get("counter")
    assert store.seq() == before, "a read changed seq"
    with pytest.raises(RuntimeError), store.transaction() as txn:
        txn.table("requests").put("counter", {"n": 1})
        raise RuntimeError("rolled back")
    assert store.seq() == before, "a rolled-back write changed seq"
    increment(store, backend.signer)
    after = store.seq()
    assert after != before, "a commit left seq unchanged"
    assert backend.open().seq() == after  # every handle sees the same counter
    assert store.seq() == after  # polling again changes nothing


# -- tables ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["requests", "credentials", "flags", "reviews"])
def test_every_table_has_the_same_surface(backend: Backend, name: str) -> None:
    store = backend.open()
    docs = {f"k{i:03d}": {"id": f"k{i:03d}", "i": i} for i in range(40)}
    with store.transaction() as txn:
        table = txn.table(name)
        for key, doc in docs.items():
            table.put(key, doc)
        table.delete("k000")
        table.delete("no-such-key")  # deleting what is not there is not an error
        assert table.get("k000") is None
    del docs["k000"]
    with backend.open().read() as txn:
        table = txn.table(name)
        assert len(table) == len(docs)
        assert dict(table.items()) == docs
        assert sorted(d["id"] for d in table.values()) == sorted(docs)
        assert table.get("k001") == docs["k001"]
        # partitions cover the table exactly once
        parts = [d["id"] for i in range(table.partitions()) for d in table.partition(i)]
        assert sorted(parts) == sorted(docs)


def test_a_returned_document_is_a_copy(backend: Backend) -> None:
    store = backend.open()
    with store.transaction() as txn:
        txn.table("requests").put("r", {"n": 1})
        doc = txn.table("requests").get("r")
        assert doc is not None
        doc["n"] = 2  # not written back
    with store.read() as txn:
        assert txn.table("requests").get("r") == {"n": 1}


def test_an_unknown_table_is_refused(backend: Backend) -> None:
    with backend.open().read() as txn, pytest.raises(UsageError):
        txn.table("no-such-table")


def test_table_version_changes_exactly_when_the_table_does(backend: Backend) -> None:
    store = backend.open()
    with store.transaction() as txn:
        txn.table("credentials").put("c1", {"id": "c1"})
    v1 = store.table_version("credentials")
    increment(store, backend.signer)  # touches other tables only
    assert store.table_version("credentials") == v1
    with store.transaction() as txn:
        txn.table("credentials").put("c2", {"id": "c2"})
    assert store.table_version("credentials") != v1


# -- isolation and serial order ------------------------------------------------------------------

def _increments(target: str, name: str, key_hex: str, count: int) -> None:
    store = BACKENDS[name](target)
    signer = Signer("tester", bytes.fromhex(key_hex))
    for _ in range(count):
        increment(store, signer)


def test_concurrent_writers_are_serial_and_lose_nothing(backend: Backend) -> None:
    """Two processes and two threads increment one counter; a reader watches."""
    key_hex = (backend.signer.key or b"").hex()
    per, start = 8, backend.open().seq()
    torn: list[tuple[int, int]] = []
    stop = threading.Event()

    def reader() -> None:
        store = backend.open()
        while not stop.is_set():
            small, shard = counters(store)
            if small != shard:
                torn.append((small, shard))

    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                _increments(backend.target, backend.name, key_hex, per)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    threads = [threading.Thread(target=_increments,
                                args=(backend.target, backend.name, key_hex, per))
               for _ in range(2)]
    watcher = threading.Thread(target=reader)
    for t in [*threads, watcher]:
        t.start()
    for t in threads:
        t.join()
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    stop.set()
    watcher.join()
    total = 4 * per
    store = backend.open()
    assert counters(store) == (total, total), "an update was lost"
    assert not torn, f"a reader saw a half-committed transaction: {torn[:3]}"
    # Serial order: the audit log holds the increments in commit order, 1..total.
    ns = [e["details"]["n"] for e in _all_entries(store)  # type: ignore[index]
          if e["event"] == "test.increment"]
    assert ns == list(range(1, total + 1))
    assert store.seq() != start
    assert store.verify_audit().ok


def test_a_nested_transaction_waits_for_none(backend: Backend) -> None:
    """on_unlock runs once no lock is held: it may itself write (notifications do)."""
    store = backend.open()
    seen: list[list[str]] = []

    def after(txn: Transaction) -> None:
        seen.append([r[1] for r in txn.recorded])
        if len(seen) == 1:
            increment(store.twin(), backend.signer, "hooked")

    queued: list[int] = []
    store.on_unlock = after
    store.before_commit = lambda txn: queued.append(len(txn.recorded))
    increment(store, backend.signer)
    store.on_unlock = store.before_commit = None
    assert seen == [["test.increment"]]
    assert queued == [1]
    assert counters(backend.open(), "hooked") == (1, 1)


# -- the audit log by cursor ------------------------------------------------------------------------

def test_audit_append_read_and_verify_by_cursor(backend: Backend) -> None:
    store = backend.open()
    with store.transaction() as txn:
        first = txn.record(backend.signer, "test.note", "a", {"i": 1})
        txn.record(backend.signer, "test.note", "b", {"i": 2})
        in_txn = txn.audit_head
    assert in_txn.seq == first + 1
    head = store.audit_head()
    assert head == in_txn
    with store.read() as txn:
        assert txn.audit_head == head
    tail = store.audit_tail(2)
    assert [e["subject"] for e in tail.entries] == ["a", "b"]
    assert tail.cursor == head
    assert store.audit_since(head).entries == []
    assert store.audit_since(head).cursor == head
    # everything from the start, in order, seq contiguous
    everything = store.audit_since(AuditCursor())
    assert [e["seq"] for e in everything.entries] == list(range(1, head.seq + 1))
    assert everything.cursor == head
    lines = list(store.audit_lines())
    assert len(lines) == head.seq
    assert [b for batch in store.audit_batches() for b in batch] == lines
    # more entries: since(old cursor) returns exactly the new ones
    with store.transaction() as txn:
        txn.record(backend.signer, "test.note", "c", {"i": 3})
    page = store.audit_since(head)
    assert [e["subject"] for e in page.entries] == ["c"]
    assert page.cursor == store.audit_head() and page.cursor.seq == head.seq + 1
    assert len(list(store.audit_lines(since=head))) == 1
    assert list(store.audit_lines(since=page.cursor)) == []
    # a cursor whose entry is not what it names is refused, not silently re-read
    for bad in (AuditCursor(head.seq, "0" * 64), AuditCursor(head.seq + 5, head.hash)):
        with pytest.raises(IntegrityError):
            store.audit_since(bad)
        with pytest.raises(IntegrityError):
            list(store.audit_lines(since=bad))
    result = store.verify_audit()
    assert result.ok, result.reason
    assert (result.head.seq, result.head.hash) == (page.cursor.seq, page.cursor.hash)
    assert store.verify_audit(incremental=True).ok


def test_audit_cursors_far_from_and_near_the_end(backend: Backend) -> None:
    store = backend.open()
    cursors = {}
    for i in range(30):
        with store.transaction() as txn:
            txn.record(backend.signer, "test.note", f"s{i}", {"pad": "x" * (i * 97)})
        cursors[i] = store.audit_head()
    page = store.audit_tail(7)
    assert [e["subject"] for e in page.entries] == [f"s{i}" for i in range(23, 30)]
    assert store.audit_tail(1000).entries == _all_entries(store)
    for i in (2, 15, 27, 29):  # early, middle, late and last entries as cursors
        page = store.audit_since(cursors[i])
        assert [e["subject"] for e in page.entries] == [f"s{k}" for k in range(i + 1, 30)]
        assert page.cursor == cursors[29]
        wrong = AuditCursor(cursors[i].seq, cursors[(i + 1) % 30].hash)
        with pytest.raises(IntegrityError):
            store.audit_since(wrong)


def test_entry_times_never_go_backwards(backend: Backend) -> None:
    store = backend.open()
    store.now = lambda: 2_000_000_000.0
    increment(store, backend.signer)
    store.now = lambda: 2_000_000_000.0 - 5  # within the skew bound: clamped
    with store.transaction() as txn:
        assert txn.entry_time() == 2_000_000_000.0
        newest = txn.newest_entry()
        assert newest is not None and newest[0] == 2_000_000_000.0


# -- crash points -----------------------------------------------------------------------------------

def _increment_loop(target: str, name: str, key_hex: str, ack_fd: int) -> None:
    store = BACKENDS[name](target)
    signer = Signer("tester", bytes.fromhex(key_hex))
    while True:
        n = increment(store, signer)
        os.write(ack_fd, f"{n}\n".encode())


def test_a_killed_writer_leaves_the_old_or_the_new_state(backend: Backend) -> None:
    """A real child process SIGKILLed mid-commit, at random points, 12 times."""
    rng = random.Random(7)
    key_hex = (backend.signer.key or b"").hex()
    last_acked = 0
    for trial in range(12):
        out = fork_and_kill(_increment_loop, (backend.target, backend.name, key_hex),
                            rng.uniform(0.0, 0.02))
        acked = [int(x) for x in out.decode().split("\n")[:-1]]
        assert acked, "the child never acknowledged a commit"
        last_acked = acked[-1]
        small, shard = counters(backend.open())
        assert small == shard, f"trial {trial}: half a transaction is visible"
        assert last_acked <= small <= last_acked + 1, (trial, last_acked, small)
        last_acked = increment(backend.open(), backend.signer)  # recovery, then a commit
    store = backend.open()
    result = store.verify_audit()
    assert result.ok, result.reason
    assert store.audit_head().seq == result.head.seq


# -- injection ----------------------------------------------------------------------------------------

def test_a_vault_runs_on_the_store_it_is_given(backend: Backend) -> None:
    from glasskey.core.vault import Vault

    store = backend.open()
    vault = Vault(store, allow_weak_kdf=True)
    assert vault.store is store
    with store.read() as txn:
        assert vault.vault_id == txn.meta["vault_id"]
    assert vault.audit_head() == store.audit_head()
    assert vault.audit_tail(1).cursor == store.audit_head()
