"""Prototypes of proposed core changes, measured on the cached large vault.

Nothing here is used by glasskey: each function re-implements one step the
way a proposed core change would do it, so the report can state the gain of
the change as a measured figure instead of a guess. Each is checked to give
the same answer as the core function it shadows.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Stats, repeat, timed

GENESIS = "0" * 64


# -- audit verify: plain json.loads, two processes ---------------------------------------------
def _chunk_pass(args: tuple[str, int, int, int]) -> dict[str, Any]:
    """Check the links inside one byte range of audit.jsonl (whole lines only).

    Returns what the parent needs to stitch chunks: the first line's prev and
    seq, the last line's hash, each actor's first actor_prev and last line hash
    in this chunk, enrolment events (in order) and each actor's last signed
    (seq, hash, sig).
    """
    path, start, end, _ = args
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    sha = hashlib.sha256
    loads = json.loads
    first_prev = None
    first_seq = None
    prev_hash = None
    seq = None
    actor_first: dict[str, str] = {}
    actor_last: dict[str, str] = {}
    last_sig: dict[str, tuple[int, str, Any]] = {}
    enrol: list[tuple[int, str, str, Any, Any]] = []
    bad: tuple[int | None, str] | None = None
    for raw in data.split(b"\n"):
        if not raw:
            continue
        e = loads(raw)
        s = e["seq"]
        if first_seq is None:
            first_seq, first_prev = s, e["prev"]
        elif s != seq + 1 or e["prev"] != prev_hash:  # type: ignore[operator]
            bad = bad or (s, "link")
        a = e["actor"]
        ap = e["actor_prev"]
        if a in actor_last:
            if ap != actor_last[a]:
                bad = bad or (s, "actor link")
        else:
            actor_first[a] = ap
        h = sha(raw).hexdigest()
        actor_last[a] = h
        if e["sig"] is not None:
            last_sig[a] = (s, e["hash"], e["sig"])
        if e["event"] == "operator.enrolled":
            enrol.append((s, a, e["subject"], e["details"].get("sign_pub"),
                          e["details"].get("founder")))
        prev_hash, seq = h, s
    return {"first_seq": first_seq, "first_prev": first_prev, "last_seq": seq,
            "last_hash": prev_hash, "actor_first": actor_first, "actor_last": actor_last,
            "last_sig": last_sig, "enrol": enrol, "bad": bad}


def _split(path: Path, parts: int) -> list[tuple[int, int]]:
    size = path.stat().st_size
    bounds = [0]
    with open(path, "rb") as fh:
        for i in range(1, parts):
            fh.seek(size * i // parts)
            fh.readline()
            bounds.append(fh.tell())
    bounds.append(size)
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def parallel_verify(path: Path, processes: int) -> tuple[bool, int]:
    """The proposed fast pass: chunks in parallel, stitched, last signatures checked."""
    from glasskey.core.canonical import b64d
    from glasskey.core.crypto import sign

    ranges = _split(path, processes * 4)
    jobs = [(str(path), a, b, i) for i, (a, b) in enumerate(ranges)]
    if processes > 1:
        with mp.get_context("fork").Pool(processes) as pool:
            parts = pool.map(_chunk_pass, jobs)
    else:
        parts = [_chunk_pass(j) for j in jobs]
    prev, seq = GENESIS, 0
    actors: dict[str, str] = {}
    last_sig: dict[str, tuple[int, str, Any]] = {}
    keys: dict[str, bytes] = {}
    for p in parts:
        if p["first_seq"] is None:
            continue
        if p["bad"] or p["first_seq"] != seq + 1 or p["first_prev"] != prev:
            return False, seq
        for a, ap in p["actor_first"].items():
            if ap != actors.get(a, GENESIS):
                return False, seq
        actors.update(p["actor_last"])
        last_sig.update(p["last_sig"])
        for _s, _actor, subject, pub, _founder in p["enrol"]:
            if subject not in keys and pub:
                keys[subject] = b64d(pub)
        prev, seq = p["last_hash"], p["last_seq"]
    for actor, (_s, digest, sig) in last_sig.items():
        key = keys.get(actor)
        if key is None or not sign.verify(key, bytes.fromhex(digest), b64d(sig)):
            return False, seq
    return True, seq


def verify_experiment(root: Path) -> dict[str, Any]:
    path = root / "audit.jsonl"
    out: dict[str, Any] = {}
    for procs in (1, 2):
        times, ok, n = [], False, 0
        for _ in range(2):
            t, (ok, n) = timed(lambda p=procs: parallel_verify(path, p))
            times.append(t)
        out[f"json_loads_{procs}proc_s"] = min(times)
        out[f"json_loads_{procs}proc_ok"] = ok
        out["entries"] = n
    return out


# -- shard parsing: strict vs plain -------------------------------------------------------------
def parse_experiment(root: Path) -> dict[str, Any]:
    from glasskey.core import canonical
    from glasskey.core.vault import Vault

    from benchmarks.common import shard_manifest

    Vault(root).vault_id  # noqa: B018 - opens (and verifies) the vault first
    manifest = shard_manifest(root)
    out: dict[str, Any] = {}
    for table in ("requests", "sealed", "credentials"):
        shards = manifest.get(table, {})
        if not shards:
            continue
        idx, digest = sorted(shards.items())[0]
        raw = (root / "tables" / f"{table}.{idx}.{digest}.json").read_bytes()
        strict = Stats.of(repeat(lambda r=raw: canonical.loads(r), 5, 1)).median
        plain = Stats.of(repeat(lambda r=raw: json.loads(r), 5, 1)).median
        doc = json.loads(raw)
        dump = Stats.of(repeat(lambda d=doc: canonical.dumps(d), 5, 1)).median
        sha = Stats.of(repeat(lambda r=raw: hashlib.sha256(r).hexdigest(), 5, 1)).median
        out[table] = {"bytes": len(raw), "docs": len(doc.get("docs", {})),
                      "strict_parse_ms": strict * 1e3, "json_loads_ms": plain * 1e3,
                      "dumps_ms": dump * 1e3, "sha256_ms": sha * 1e3}
    raw = (root / "vault.json").read_bytes()
    out["vault.json"] = {
        "bytes": len(raw),
        "strict_parse_ms": Stats.of(repeat(lambda: canonical.loads(raw), 20, 2)).median * 1e3,
        "json_loads_ms": Stats.of(repeat(lambda: json.loads(raw), 20, 2)).median * 1e3}
    return out


# -- fsync: what each durable write costs, and the cheaper equivalents ----------------------------
def fsync_experiment(scratch: Path) -> dict[str, Any]:
    from glasskey.core.fsutil import atomic_write

    d = Path(tempfile.mkdtemp(dir=scratch))
    data = os.urandom(32 << 10)
    state = d / "vault.json"
    atomic_write(state, data)

    def link_backup() -> None:
        # vault.json.bak as a hard link to the current generation: no data written.
        tmp = d / ".bak.tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.link(state, tmp)
        os.replace(tmp, d / "vault.json.bak")

    def no_fsync_write() -> None:
        tmp = d / ".w.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data[:100])
        os.replace(tmp, d / "witness.json")

    out = {
        "atomic_write_32k_ms": Stats.of(repeat(lambda: atomic_write(state, data), 20, 2)
                                        ).median * 1e3,
        "atomic_write_no_dirsync_ms": Stats.of(repeat(
            lambda: atomic_write(d / "b", data, sync_dir=False), 20, 2)).median * 1e3,
        "link_backup_ms": Stats.of(repeat(link_backup, 20, 2)).median * 1e3,
        "write_rename_no_fsync_ms": Stats.of(repeat(no_fsync_write, 20, 2)).median * 1e3,
    }
    import shutil

    shutil.rmtree(d)
    return out


# -- import: per-seal public key validation and connector lookup ------------------------------------
def seal_experiment() -> dict[str, Any]:
    from glasskey.core.connectors import registry
    from glasskey.core.crypto import hpke

    pub = hpke.public_from_private(hpke.generate_private())
    share, info = os.urandom(33), hpke.info_for("x", "y")
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    key = X25519PublicKey.from_public_bytes(pub)
    suite = hpke._SUITE
    out = {
        "seal_us": Stats.of(repeat(lambda: hpke.seal(pub, share, info), 2000, 50)).median * 1e6,
        "seal_prevalidated_us": Stats.of(repeat(lambda: suite.encrypt(share, key, info), 2000,
                                                50)).median * 1e6,
        "validate_us": Stats.of(repeat(lambda: hpke.validate_public(pub), 2000, 50)
                                ).median * 1e6,
        "connector_lookup_ms": Stats.of(repeat(lambda: registry.load("generated"), 50, 2)
                                        ).median * 1e3,
    }
    return out


# -- reading the state: vault.json size, polling, alerts --------------------------------------------
def state_experiment(roots: dict[str, Path]) -> dict[str, Any]:
    """vault.json read+parse, the TUI's poll (Store.seq), a stat, and vault.alerts()."""
    from glasskey.core.store import Store
    from glasskey.core.vault import Vault

    out: dict[str, Any] = {}
    for label, root in roots.items():
        store = Store(root)
        d: dict[str, Any] = {"vault_json_bytes": (root / "vault.json").stat().st_size}
        d["read_state_ms"] = Stats.of(repeat(store._read_state, 30, 3)).median * 1e3
        d["seq_ms"] = Stats.of(repeat(store.seq, 30, 3)).median * 1e3
        d["stat_us"] = Stats.of(repeat(lambda r=root: os.stat(r / "vault.json"), 200, 5)
                                ).median * 1e6
        alerts = getattr(Vault, "alerts", None)
        if alerts is not None:
            cold = [timed(lambda r=root: Vault(r, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1").alerts())[0] for _ in range(3)]
            d["alerts_cold_ms"] = Stats.of(cold).median * 1e3
        out[label] = d
    return out


def run(args: dict[str, Any]) -> dict[str, Any]:
    root = Path(args["root"])
    scratch = Path(args["scratch"])
    start = time.perf_counter()
    roots = {"large": root}
    if args.get("small_root"):
        roots["small"] = Path(args["small_root"])
    out = {"parse": parse_experiment(root), "fsync": fsync_experiment(scratch),
           "seal": seal_experiment(), "verify": verify_experiment(root),
           "state": state_experiment(roots)}
    out["elapsed_s"] = time.perf_counter() - start
    return out
