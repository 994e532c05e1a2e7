"""File backend vs PostgreSQL backend at the storage interface: ``python -m
benchmarks.store_backends`` (docs/team-mode.md, "Measured").

One ``increment`` write (two documents and one signed audit entry), one verified
read, and one ``seq()`` poll, 300 times each, on a fresh vault of each backend;
then, after 50,000 more entries, a new client's first read (it verifies every
entry) and second read (from its checkpoint), and a full ``verify_audit``.
PostgreSQL is the throwaway test server (tests/servers.py: local TCP and
**fsync off**, so its write figure is optimistic). Not part of ``make bench``:
the issue-13 figures at 10,000 x 25 x 1,000,000 are the ``team`` group
(benchmarks/team.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("GLASSKEY_STATE_DIR", tempfile.mkdtemp(prefix="glasskey-bench-state-"))

from glasskey.core.storage.files import FileStore
from glasskey.core.storage.interface import Store
from glasskey.core.storage.postgres import PostgresStore
from helpers import counters, found_store, increment
from servers import postgres_server

ROUNDS = 300
#: Entries in the history a new client verifies on its first read.
HISTORY = 50_000


def _ms(values: list[float], q: float) -> float:
    return sorted(values)[max(0, int(q * len(values)) - 1)] * 1000


def measure(label: str, store: Store) -> str:
    signer, _ = found_store(store)
    for _ in range(20):
        increment(store, signer)
    writes, reads = [], []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        increment(store, signer)
        writes.append(time.perf_counter() - t)
        t = time.perf_counter()
        counters(store)
        reads.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(ROUNDS):
        store.seq()
    poll = (time.perf_counter() - t) / ROUNDS * 1000
    with store.transaction() as txn:  # a long history, in one commit
        for i in range(HISTORY):
            txn.record(signer, "test.note", f"s{i}", {"i": i})
    fresh = os.environ["GLASSKEY_STATE_DIR"] + f"-{label}-new"
    os.environ["GLASSKEY_STATE_DIR"], old = fresh, os.environ["GLASSKEY_STATE_DIR"]
    try:
        t = time.perf_counter()
        counters(store)  # a client new to the vault verifies everything first
        first = time.perf_counter() - t
        t = time.perf_counter()
        counters(store)
        second = time.perf_counter() - t
        t = time.perf_counter()
        assert store.verify_audit().ok
        full = time.perf_counter() - t
    finally:
        os.environ["GLASSKEY_STATE_DIR"] = old
    return (f"| {label} | {_ms(writes, .5):.1f} / {_ms(writes, .95):.1f} ms | "
            f"{_ms(reads, .5):.1f} / {_ms(reads, .95):.1f} ms | {poll:.3f} ms | "
            f"{first:.2f} s / {second * 1000:.1f} ms | {full:.2f} s |")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="glasskey-bench-"))
    with postgres_server() as pg:
        passfile = base / "pgpass"
        passfile.write_text(f"{pg.host}:{pg.port}:*:{pg.admin_user}:{pg.admin_password}\n")
        passfile.chmod(0o600)
        os.environ["PGPASSFILE"] = str(passfile)
        pg.execute("CREATE DATABASE bench")
        rows = [measure("files", FileStore(base / "vault")),
                measure("postgres", PostgresStore(
                    f"postgresql://{pg.admin_user}@{pg.host}:{pg.port}/bench"))]
    print("| backend | write p50 / p95 | verified read p50 / p95 | seq() poll | "
          f"new client's first / second read ({HISTORY:,} entries) | audit verify |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
