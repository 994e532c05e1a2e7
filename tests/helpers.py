"""Shared test factory: small vaults with known operators, seeds and a fake clock.

The vault itself is built by tests/worlds.py (one builder for every test family);
this module keeps the storage/auth family's names and adds bare stores.

Import from any test module::

    from helpers import make_vault, make_store

    env = make_vault(tmp_path)                 # alice + bob (2 operators)
    env = make_vault(tmp_path, operators=3)    # alice + bob + carol
    alice = env.unlock("alice")                # a Session; moves the clock if needed
    env.vault.add_credential(alice, ...)

    st = make_store(tmp_path / "s")            # a bare Store with one enrolled signer
    with st.store.transaction() as txn:
        txn.record(st.signer, "test.event", "subject", {"n": 1})

Conventions (see also the "foundation fixtures" block in conftest.py, whose
autouse fixture points ``GLASSKEY_STATE_DIR`` into a per-test temp dir and
sets ``GLASSKEY_INSECURE_FAST_KDF=1`` for every test):

* Every operator has a known passphrase (:data:`PASSPHRASES`) and TOTP seed
  (:data:`SEEDS`); Argon2id runs with tiny parameters (:data:`FAST_KDF`).
* The clock is a :class:`FakeClock` starting at :data:`START`. A TOTP step
  can be used once per operator, so :meth:`VaultEnv.unlock` moves the clock
  to the next 30-second step when this operator's current step was already
  used through the helper. Nothing else moves the clock.
* Process workers used by several reliability tests live at the end of this
  module (they must be importable for ``multiprocessing`` "spawn").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import worlds
from glasskey.core import canonical
from glasskey.core.audit import Signer
from glasskey.core.clock import FakeClock
from glasskey.core.crypto import sign
from glasskey.core.errors import GlasskeyError
from glasskey.core.session import Session
from glasskey.core.storage import interface
from glasskey.core.storage.files import FileStore
from glasskey.core.storage.manifest import state_layout
from glasskey.core.store import Store
from glasskey.core.vault import Vault

#: Argon2id parameters small enough for tests (needs GLASSKEY_INSECURE_FAST_KDF=1).
FAST_KDF = worlds.FAST_KDF
#: Where every FakeClock starts (2027-01-15T08:00:00Z; TOTP step 60_000_000).
START = worlds.START
STEP = worlds.STEP

SEEDS: dict[str, str] = {op.name: op.seed for op in worlds.FOUNDATION_ROSTER}
PASSPHRASES: dict[str, str] = {op.name: op.passphrase for op in worlds.FOUNDATION_ROSTER}
ROLES: dict[str, tuple[str, ...]] = {op.name: op.roles for op in worlds.FOUNDATION_ROSTER}
NAMES = tuple(op.name for op in worlds.FOUNDATION_ROSTER)


def require_test_env() -> None:
    """Fail loudly if a test would touch the real client state or slow KDFs."""
    state = os.environ.get("GLASSKEY_STATE_DIR")
    if not state:
        raise RuntimeError("GLASSKEY_STATE_DIR is not set (use the conftest fixtures)")
    if os.environ.get("GLASSKEY_INSECURE_FAST_KDF") != "1":
        raise RuntimeError("GLASSKEY_INSECURE_FAST_KDF=1 is not set (use the conftest fixtures)")


@dataclass
class VaultEnv(worlds.VaultWorld):
    """A vault with known operators (tests/worlds.py). ``vault`` is the first
    process's view; ``unlock`` moves the clock only when it must."""

    @property
    def names(self) -> tuple[str, ...]:
        return self.founders

    @property
    def passphrases(self) -> dict[str, str]:
        return {name: op.passphrase for name, op in self.roster.items()}

    @property
    def seeds(self) -> dict[str, str]:
        return {name: op.seed for name, op in self.roster.items()}

    def code(self, name: str, steps: int = 0) -> str:
        """``name``'s TOTP code for the current step + ``steps``."""
        return self.totp(name, steps * STEP)

    def unlock(self, name: str, vault: Vault | None = None) -> Session:
        """Unlock ``name`` with the right passphrase and a fresh TOTP step."""
        return self.fresh_session(name, vault)

    def operator_doc(self, name: str) -> dict[str, Any]:
        with Store(self.root).read() as txn:
            doc = txn.table("operators").get(name)
        assert doc is not None
        return doc

    def edit_operator(self, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """Change ``name``'s stored document in place (a legitimate write, no audit)."""
        with self.vault.store.transaction() as txn:
            doc = txn.table("operators").get(name)
            assert doc is not None
            edit(doc)
            txn.table("operators").put(name, doc)


def make_vault(tmp_path: Path, operators: int = 2, *,
               passphrases: dict[str, str] | None = None,
               seeds: dict[str, str] | None = None,
               start: float = START, subdir: str = "vault") -> VaultEnv:
    """Initialise a vault at ``tmp_path/subdir`` with the first ``operators`` of
    alice, bob, carol (override passphrases or seeds per name)."""
    require_test_env()
    if not 2 <= operators <= len(NAMES):
        raise ValueError("operators must be 2 or 3")
    roster = [dataclasses.replace(op,
                                  passphrase=(passphrases or {}).get(op.name, op.passphrase),
                                  seed=(seeds or {}).get(op.name, op.seed))
              for op in worlds.FOUNDATION_ROSTER]
    return worlds.build_world(VaultEnv, tmp_path / subdir, roster, founders=NAMES[:operators],
                              start=start)


def tamper_state(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit ``vault.json`` in place as an attacker with write access would (no lock, no
    audit, no glasskey code): the tables are plain JSON objects keyed by name/id."""
    path = root / "vault.json"
    state = json.loads(path.read_bytes())
    edit(state)
    path.write_bytes(canonical.dumps(state))


def shard_digests(root: Path, table: str) -> dict[str, str]:
    """{shard index: digest} of ``table`` as vault.json names it (through its group
    files for a table with a two-level manifest, schema 6)."""
    state = json.loads((root / "vault.json").read_bytes())
    if table in state["manifest"]:
        return dict(state["manifest"][table])
    out: dict[str, str] = {}
    for key, digest in state.get("groups", {}).get(table, {}).items():
        group = json.loads((root / "tables" / f"{table}.g{key}.{digest}.json").read_bytes())
        out.update(group["shards"])
    return out


def _repoint(root: Path, table: str, idx: str, new: str) -> None:
    """Make vault.json name shard file ``new`` for shard ``idx`` (rewriting its group)."""
    state_path = root / "vault.json"
    state = json.loads(state_path.read_bytes())
    if table in state["manifest"]:
        state["manifest"][table][idx] = new
    else:
        layout = state_layout(state)[table]
        key = f"{layout.group_of(int(idx, 16)):02x}"
        old = state["groups"][table][key]
        group = json.loads((root / "tables" / f"{table}.g{key}.{old}.json").read_bytes())
        group["shards"][idx] = new
        data = canonical.dumps(group)
        digest = hashlib.sha256(data).hexdigest()
        (root / "tables" / f"{table}.g{key}.{digest}.json").write_bytes(data)
        state["groups"][table][key] = digest
    state_path.write_bytes(canonical.dumps(state))


def tamper_shard(root: Path, table: str, key: str,
                 edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit one document of a sharded table (credentials, sealed, requests) in place:
    rewrite its shard file and re-point vault.json's manifest at the new digest."""
    for idx, digest in shard_digests(root, table).items():
        fpath = root / "tables" / f"{table}.{idx}.{digest}.json"
        shard = json.loads(fpath.read_bytes())
        if key in shard["docs"]:
            edit(shard["docs"][key])
            data = canonical.dumps(shard)
            new = hashlib.sha256(data).hexdigest()
            (root / "tables" / f"{table}.{idx}.{new}.json").write_bytes(data)
            _repoint(root, table, idx, new)
            return
    raise KeyError(f"{table}/{key} not found")


# -- bare stores (storage and audit tests, no KDF at all) ---------------------------------

@dataclass
class StoreEnv:
    """A Store with one enrolled founder ("tester") whose key signs entries."""

    root: Path
    store: Store
    signer: Signer
    public: bytes


def new_signer(name: str = "tester") -> tuple[Signer, bytes]:
    priv = sign.generate_private()
    return Signer(name, priv), sign.public_from_private(priv)


def founding_details(signers: list[tuple[Signer, bytes]], label: str = "test"
                     ) -> tuple[str, dict[str, Any]]:
    """A signed founding (vault id, ``vault.founded`` details) for bare test logs.

    Every signer is a founding admin/approver; their HPKE keys are fresh and
    unused (bare stores seal nothing).
    """
    from glasskey.core.crypto import hpke
    from glasskey.core.roster import sign_founding, vault_id_for

    records = []
    for x, (signer, public) in enumerate(signers, 1):
        records.append({
            "id": f"o{x}-{signer.name}", "name": signer.name,
            "roles": ["requester", "approver", "admin"], "status": "active", "x": x,
            "hpke_pub": canonical.b64e(hpke.public_from_private(hpke.generate_private())),
            "sign_pub": canonical.b64e(public),
        })
    founding = {"label": label, "created": START, "kdf": {}, "founders": records}
    keys = {signer.name: signer.key for signer, _ in signers if signer.key is not None}
    return vault_id_for(founding), {"founding": founding,
                                    "sigs": sign_founding(founding, keys)}


def make_store(root: Path, vault_id: str | None = None) -> StoreEnv:
    """Create a Store at ``root`` and record its signed founding by "tester" (and a
    silent second founder, since a vault needs two).

    The vault id is the digest of the founding (fresh keys: ids always differ);
    ``vault_id`` is accepted for old callers and ignored.
    """
    require_test_env()
    store = Store(root)
    signer, public = found_store(store)
    return StoreEnv(root, store, signer, public)


def found_store(store: interface.Store) -> tuple[Signer, bytes]:
    """Create ``store`` (either backend) and record its signed founding by "tester"
    and a silent second founder; "tester"'s signer and public key."""
    signer, public = new_signer()
    second, second_pub = new_signer("second")
    vid, details = founding_details([(signer, public), (second, second_pub)])
    store.create({"vault_id": vid})
    with store.transaction() as txn:
        txn.record(signer, "vault.founded", vid, details)
    return signer, public


def open_store(root: Path, **kw: Any) -> Store:
    return Store(root, **kw)


def increment(store: interface.Store, signer: Signer, key: str = "counter") -> int:
    """One transaction: bump a counter in vault.json *and* in a shard, audit it.

    Both copies always move together, so a state where they differ is a torn
    commit. Returns the new value.
    """
    with store.transaction() as txn:
        doc = txn.table("meta").get(key) or {"n": 0}
        n = int(doc["n"]) + 1
        txn.table("meta").put(key, {"n": n})
        txn.table("requests").put(key, {"n": n})
        txn.record(signer, "test.increment", key, {"n": n})
    return n


def counters(store: interface.Store, key: str = "counter") -> tuple[int, int]:
    """(value in vault.json, value in its shard) as a fresh reader sees them."""
    with store.read() as txn:
        small = txn.table("meta").get(key) or {"n": 0}
        shard = txn.table("requests").get(key) or {"n": 0}
    return int(small["n"]), int(shard["n"])


# -- file inspection ----------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path: sha256} of every regular file under ``root``."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_file() and not path.is_symlink() and rel not in skip:
            out[rel] = sha256_file(path)
    return out


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.exists():
            yield from (p for p in sorted(root.rglob("*")) if p.is_file())


# -- process workers (importable for multiprocessing "spawn") ------------------------------

def worker_increment(root: str, state_dir: str, key_hex: str, count: int) -> None:
    """Run ``count`` increments as the signer whose private key is ``key_hex``."""
    os.environ["GLASSKEY_STATE_DIR"] = state_dir
    store = Store(Path(root), lock_timeout=30.0)
    signer = Signer("tester", bytes.fromhex(key_hex))
    for _ in range(count):
        increment(store, signer)


def worker_hold_lock(root: str, ready: Any, release: Any) -> None:
    """Hold the vault lock until ``release`` is set (lock-timeout tests)."""
    store = Store(Path(root))
    with store.lock:
        ready.set()
        release.wait(30)


def worker_unlock(root: str, state_dir: str, name: str, passphrase: str,
                  barrier: Any, jobs: Any, results: Any) -> None:
    """Unlock ``name`` for each (time, code) job, all workers released together."""
    os.environ["GLASSKEY_STATE_DIR"] = state_dir
    os.environ["GLASSKEY_INSECURE_FAST_KDF"] = "1"
    clock = FakeClock(START)
    vault = Vault(Path(root), clock, lock_timeout=30.0, allow_weak_kdf=True)
    while True:
        job = jobs.get()
        if job is None:
            return
        t, code = job
        clock.set(t)
        barrier.wait(30)
        try:
            vault.unlock(name, passphrase, code)
            results.put("ok")
        except GlasskeyError as exc:
            results.put(f"{type(exc).__name__}: {exc}")


def fork_and_kill(target: Callable[..., None], args: tuple[Any, ...], delay: float) -> bytes:
    """Run ``target(*args, ack_fd)`` in a forked child and SIGKILL it ``delay`` seconds
    after its first write to ``ack_fd``; return everything it wrote there.

    The child never returns into pytest (``os._exit``). Waiting for the first
    write makes every trial kill a child that is really in its loop, however
    loaded the machine is.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.close(r)
            target(*args, w)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        first = os.read(r, 65536)
        time.sleep(delay)
    finally:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    chunks = [first]
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    if not os.WIFSIGNALED(status):
        raise AssertionError(f"the child ended on its own (status {status})")
    return b"".join(chunks)


def file_store(vault: Vault) -> FileStore:
    """The vault's store as the file backend, for tests of file-level behaviour (the log
    file, fault injection); fails loudly if the vault runs on another backend."""
    store = vault.store
    assert isinstance(store, FileStore), type(store)
    return store
