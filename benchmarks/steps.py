"""The measurements. Each runs in its own process (benchmarks.worker): args in, JSON out."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from glasskey.core import totp
from glasskey.core.clock import FakeClock

from benchmarks.common import (
    CACHE,
    GLASSKEY,
    PYTHON,
    REPO,
    SMALL_CREDENTIALS,
    Scale,
    Stats,
    cache_key,
    current_rss_mib,
    dir_size,
    fingerprint,
    op_name,
    op_passphrase,
    op_seed,
    peak_rss_mib,
    repeat,
    timed,
    write_json,
)
from benchmarks.instrument import Probe
from benchmarks.world import (
    cache_dir,
    choose_kdf,
    credential_specs,
    drop_requests,
    fill_history,
    found,
    fresh_client_state,
    kdf_params,
    log,
    open_world,
    start_clock,
    work_copy,
)

Result = dict[str, Any]


def _progress(label: str, every: int) -> Any:
    calls = {"n": 0, "last": 0.0}

    def show(done: int, total: int) -> None:
        calls["n"] += 1
        now = time.monotonic()
        if done >= total or (done % every == 0 and now - calls["last"] > 2):
            calls["last"] = now
            log(f"{label}: {done}/{total}")

    show.calls = calls  # type: ignore[attr-defined]
    return show


def _median_breakdown(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for s in samples for k in s})
    return {k: statistics.median([s.get(k, 0.0) for s in samples]) for k in keys}


# -- floors -------------------------------------------------------------------------------------
def floors(args: Result) -> Result:
    from glasskey.core.crypto import hpke, kdf, sign
    from glasskey.core.fsutil import atomic_write

    out: Result = {}
    params_doc = args.get("kdf") or choose_kdf(Scale.from_doc(args["scale"]))
    out["kdf"] = params_doc
    tmp = Path(tempfile.mkdtemp(dir=CACHE))
    try:
        target = tmp / "small.json"
        data = os.urandom(2048)
        out["atomic_write_s"] = Stats.of(repeat(lambda: atomic_write(target, data), 30,
                                                warmup=3)).to_doc()
    finally:
        shutil.rmtree(tmp)

    priv = hpke.generate_private()
    pub = hpke.public_from_private(priv)
    share = os.urandom(33)
    info = hpke.info_for("bench", "v", "c", 1, "o")
    blob = hpke.seal(pub, share, info)
    out["hpke_seal_s"] = Stats.of(repeat(lambda: hpke.seal(pub, share, info), 500, 20)).to_doc()
    out["hpke_open_s"] = Stats.of(repeat(lambda: hpke.open_(priv, blob, info), 500, 20)).to_doc()

    params = kdf_params(params_doc, os.urandom(16))
    allow_weak = bool(Scale.from_doc(args["scale"]).fast_kdf)
    out["argon2id_s"] = Stats.of(repeat(
        lambda: kdf.derive_key("a benchmark passphrase", params, allow_weak=allow_weak),
        5, 1)).to_doc()

    buf = os.urandom(64 << 20)
    sha_runs = repeat(lambda: hashlib.sha256(buf).digest(), 5, 1)
    out["sha256_MBps"] = Stats.of([64 / t * (1 << 20) / 1e6 for t in sha_runs]).to_doc()
    # JSON: audit-like lines (many small documents) and one shard-like document.
    sample = _audit_sample(args.get("audit_path"))
    total = sum(len(x) + 1 for x in sample)
    parse_runs = repeat(lambda: _each(json.loads, sample), 5, 1)
    out["json_lines_MBps"] = Stats.of([total / t / 1e6 for t in parse_runs]).to_doc()
    from glasskey.core import canonical

    canon_runs = repeat(lambda: _each(canonical.loads, sample), 3, 1)
    out["canonical_lines_MBps"] = Stats.of([total / t / 1e6 for t in canon_runs]).to_doc()
    big = b"[" + b",".join(sample) + b"]"
    big_runs = repeat(lambda: json.loads(big), 5, 1)
    out["json_doc_MBps"] = Stats.of([len(big) / t / 1e6 for t in big_runs]).to_doc()

    skey = sign.generate_private()
    spub = sign.public_from_private(skey)
    msg = os.urandom(32)
    sig = sign.sign(skey, msg)
    out["ed25519_sign_s"] = Stats.of(repeat(lambda: sign.sign(skey, msg), 2000, 50)).to_doc()
    out["ed25519_verify_s"] = Stats.of(repeat(lambda: sign.verify(spub, msg, sig), 2000,
                                              50)).to_doc()
    # The audit chain verifies with libsodium (core/chain.py): its floor, same key reuse.
    from nacl.signing import VerifyKey

    vkey = VerifyKey(spub)
    out["ed25519_verify_nacl_s"] = Stats.of(repeat(lambda: vkey.verify(msg, sig), 2000,
                                                   50)).to_doc()
    out["cores"] = os.cpu_count() or 1
    return out


def _audit_sample(path: str | None, target_bytes: int = 16 << 20) -> list[bytes]:
    """~16 MB of audit lines: from the cached log if there is one, else built here."""
    lines: list[bytes] = []
    size = 0
    if path and Path(path).exists():
        with open(path, "rb") as fh:
            for raw in fh:
                lines.append(raw.rstrip(b"\n"))
                size += len(raw)
                if size >= target_bytes:
                    return lines
    from glasskey.core.audit import Head, Signer, build_entry
    from glasskey.core.crypto import sign

    signer = Signer("op00", sign.generate_private())
    head = Head()
    while size < target_bytes:
        line, head = build_entry(head, signer, "checkout.requested", "rabcdefghjk", {
            "credential": "db-00001.prod", "reason": "outage", "ticket": "INC-12345",
            "duration": 1800, "version": 3}, 1.75e9 + head.seq)
        lines.append(line)
        size += len(line) + 1
    return lines


def startup(args: Result) -> Result:
    """Interpreter and import floors, and a Textual hello-world (run from the orchestrator)."""
    runs = int(args.get("runs", 5))
    out: Result = {}
    out["python_s"] = Stats.of(_spawn_times([str(PYTHON), "-c", "pass"], runs)).to_doc()
    out["import_cli_s"] = Stats.of(_spawn_times(
        [str(PYTHON), "-c", "import glasskey.tui.cli"], runs)).to_doc()
    try:
        import textual  # noqa: F401

        code = ("from textual.app import App\n"
                "class Hello(App):\n"
                "    def compose(self):\n"
                "        from textual.widgets import Static\n"
                "        yield Static('hello')\n"
                "    def on_mount(self):\n"
                "        self.exit()\n"
                "Hello().run(headless=True)\n")
        out["textual_hello_s"] = Stats.of(_spawn_times([str(PYTHON), "-c", code], runs)).to_doc()
    except ImportError as exc:
        out["textual_hello_s"] = None
        out["textual_error"] = str(exc)
    return out


def _spawn_times(cmd: list[str], runs: int) -> list[float]:
    out = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        if i:  # the first run warms the page cache
            out.append(time.perf_counter() - start)
    return out


# -- import / building the cache ------------------------------------------------------------------
def build(args: Result) -> Result:
    """Found a vault with all operators and import the credentials (timed).

    With ``keep`` the result becomes the cache: the audit log is filled with
    history and a small (10-credential) vault is made beside it.
    """
    scale = Scale.from_doc(args["scale"])
    keep = bool(args.get("keep"))
    params = args["kdf"]
    base = cache_dir(scale)
    base.mkdir(parents=True, exist_ok=True)
    staging = base / ("staging" if keep else f"import-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    fresh_client_state(staging)
    out: Result = {"kdf": params}
    clock = FakeClock(start_clock())
    t_found, world = timed(lambda: found(staging / "large", scale.operators, params, clock))
    out["found_s"] = t_found
    admin = world.s("op00")
    specs = credential_specs(scale.credentials, random.Random(1))
    progress = _progress("import", 1000)
    probe = Probe()
    rss_before = current_rss_mib()
    t_import, creds = timed(lambda: world.vault.import_credentials(admin, specs, progress))
    out["import_breakdown"] = probe.snapshot()
    probe.close()
    out["import_s"] = t_import
    out["imported"] = len(creds)
    out["progress_calls"] = progress.calls["n"]
    out["import_peak_rss_mib"] = peak_rss_mib()
    out["import_rss_before_mib"] = rss_before
    out["large_size_after_import"] = dir_size(world.root)
    log(f"imported {len(creds)} credentials in {t_import:.1f} s")
    if not keep:
        shutil.rmtree(staging)
        return out
    creds = []
    specs = []
    hist_progress = _progress("audit history", 100_000)
    t_hist, hist = timed(lambda: fill_history(world, scale.audit_entries, hist_progress))
    out["history_s"] = t_hist
    out["history"] = hist
    t_ver, res = timed(world.vault.verify_audit)
    if not res.ok or res.entries != scale.audit_entries:
        raise SystemExit(f"the built audit log does not verify: {res.reason} ({res.entries})")
    out["build_verify_s"] = t_ver
    clock_end = world.clock.now()
    # The small vault: same operators and parameters, 10 credentials.
    small = found(staging / "small", scale.operators, params, FakeClock(start_clock()))
    small.vault.import_credentials(small.s("op00"), credential_specs(SMALL_CREDENTIALS,
                                                                     random.Random(2)))
    out["small_clock_end"] = small.clock.now()
    out["clock_end"] = clock_end
    out["large_bytes"] = dir_size(staging / "large")
    out["audit_bytes"] = (staging / "large" / "audit.jsonl").stat().st_size
    out["vault_json_bytes"] = (staging / "large" / "vault.json").stat().st_size
    out["tables_bytes"] = dir_size(staging / "large" / "tables")
    for name in ("large", "small"):
        if (base / name).exists():
            shutil.rmtree(base / name)
        os.replace(staging / name, base / name)
    shutil.rmtree(staging)
    meta = {"key": cache_key(), "fingerprint": fingerprint(), "scale": scale.to_doc(), "kdf": params,
            "clock_end": clock_end, "small_clock_end": out["small_clock_end"],
            "built": time.strftime("%Y-%m-%d %H:%M:%S"), "build": out}
    write_json(base / "meta.json", meta)
    return out


# -- read-only figures on the cached vault ------------------------------------------------------
def verify(args: Result) -> Result:
    from glasskey.core.vault import Vault

    root = Path(args["root"])
    fresh_client_state(Path(args["scratch"]))
    runs = int(args.get("runs", 3))
    times = []
    result = None
    for _ in range(runs):
        vault = Vault(root, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
        t, result = timed(vault.verify_audit)
        times.append(t)
        log(f"verify: {t:.2f} s ({result.entries} entries, ok={result.ok})")
    assert result is not None
    out: Result = {"verify_s": Stats.of(times).to_doc(), "ok": result.ok,
                   "entries": result.entries, "mode": result.mode,
                   "peak_rss_mib": peak_rss_mib()}
    out["signatures"] = result.signatures
    out["components"] = _verify_components(root / "audit.jsonl")
    out.update(_incremental_verify(root, 10_000))
    return out


def _incremental_verify(root: Path, new: int) -> Result:
    """A client whose checkpoint is ``new`` entries behind the head catches up."""
    from glasskey.core.audit import Head, line_hash
    from glasskey.core.chain import Checkpoint, verify_log
    from glasskey.core.store import Store

    store = Store(root)
    full = verify_log(store.audit)
    stop = full.entries - new
    head = Head()
    with open(root / "audit.jsonl", "rb") as fh:
        for raw in fh:
            if head.seq == stop:
                break
            line = raw[:-1]
            entry = json.loads(line)
            actors = dict(head.actors) if head.seq % 50_000 == 0 else head.actors
            actors[entry["actor"]] = line_hash(line)
            head = Head(head.seq + 1, line_hash(line), head.offset + len(raw), actors)
    start = Checkpoint(Head(head.seq, head.hash, head.offset, dict(head.actors)), full.roster)
    times = []
    for _ in range(3):
        t, res = timed(lambda: verify_log(store.audit, start=start))
        assert res.ok, res.reason
        times.append(t)
    return {"incremental_entries": new, "incremental_s": Stats.of(times).to_doc()}


def _verify_components(path: Path) -> Result:
    """What verifying costs at the floor: read, SHA-256 per line, JSON per line."""
    from glasskey.core import canonical

    out: Result = {}
    t, lines = timed(lambda: path.read_bytes().split(b"\n"))
    out["read_split_s"] = t
    out["bytes"] = sum(len(x) + 1 for x in lines)
    out["lines"] = len(lines) - 1
    out["sha256_lines_s"] = timed(lambda: _each(hashlib.sha256, lines))[0]
    sub = [x for x in lines[: min(len(lines), 200_000)] if x]
    scale_up = (len(lines) - 1) / max(len(sub), 1)
    out["json_loads_lines_s"] = timed(lambda: _each(json.loads, sub))[0] * scale_up
    out["canonical_loads_lines_s"] = timed(lambda: _each(canonical.loads, sub))[0] * scale_up
    return out


def _each(fn: Any, items: list[bytes]) -> None:
    """Apply ``fn`` to every item, keeping nothing (no garbage-collector churn)."""
    for x in items:
        fn(x)


def listing(args: Result) -> Result:
    """vault.credentials() in-process (a new Vault each run: nothing cached)."""
    from glasskey.core.vault import Vault

    root = Path(args["root"])
    fresh_client_state(Path(args["scratch"]))
    runs = int(args.get("runs", 7))
    times, count = [], 0
    probe = Probe()
    samples = []
    for i in range(runs + 1):
        probe.reset()
        vault = Vault(root, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
        t, creds = timed(vault.credentials)
        if i:
            times.append(t)
            samples.append(probe.snapshot())
        count = len(creds)
    probe.close()
    t_co, _ = timed(lambda: Vault(root, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1").checkouts(open_only=True))
    return {"credentials_s": Stats.of(times).to_doc(), "count": count,
            "breakdown": _median_breakdown(samples), "open_checkouts_s": t_co,
            "peak_rss_mib": peak_rss_mib()}


# -- per-operation costs ------------------------------------------------------------------------
def ops(args: Result) -> Result:
    """request / approve / reveal / check-in with sessions already unlocked.

    Every timed call starts with the store's parsed-shard cache empty, as in a
    fresh ``glasskey`` process: the figure is the core call, cold, minus nothing
    (no Argon2id runs inside these calls). Unlock is measured separately.
    """
    scratch = Path(args["scratch"])
    runs = int(args["runs"])
    # ``url``: a PostgreSQL vault (benchmarks/team.py), measured in place; else a copy.
    url = args.get("url")
    root: Any = url or work_copy(Path(args["src"]), scratch / f"ops-{os.getpid()}")
    state = fresh_client_state(scratch)
    if args.get("client_state"):  # a client that has verified this vault before
        shutil.copytree(args["client_state"], state, dirs_exist_ok=True)
    world = open_world(root, float(args["clock"]) + 3600)
    if args.get("drop_requests"):
        drop_requests(world)
    n_creds = len(world.vault.credentials())
    out: Result = {"credentials": n_creds, "variant": args.get("variant")}
    # (counted by the builder: loading every requests shard here would inflate peak memory)
    out["requests_in_table"] = int(args.get("requests", 0))
    out["audit_entries"] = world.vault.meta()["audit"]["seq"]
    # Unlock, split into its Argon2id and the rest (the probe times derive_key inside it).
    unlock_times, unlock_kdf, unlock_fsyncs = [], [], []
    probe = Probe()
    for name in ("op02", "op03", "op04", "op05", "op06"):
        probe.reset()
        t, _ = timed(lambda name=name: world.unlock(name))
        unlock_times.append(t)
        snap = probe.snapshot()
        unlock_kdf.append(snap.get("argon2id", 0.0))
        unlock_fsyncs.append(snap.get("fsync.count", 0.0))
    probe.close()
    out["unlock_fsyncs"] = statistics.median(unlock_fsyncs)
    out["unlock_s"] = Stats.of(unlock_times).to_doc()
    out["argon2id_s"] = Stats.of(unlock_kdf).to_doc()
    out["unlock_beyond_kdf_s"] = Stats.of(
        [t - k for t, k in zip(unlock_times, unlock_kdf)]).to_doc()
    requester, approver = world.sessions["op02"], world.sessions["op03"]
    rng = random.Random(99)
    names = [c.name for c in world.vault.credentials()]
    picks = rng.sample(names, min(len(names), runs + 1))
    while len(picks) < runs + 1:
        picks.append(rng.choice(names))
    store = world.vault.store
    # The work copy just wrote a 535 MB audit log: flush it now, or its writeback
    # lands in the fsync calls timed below (and only in the large vault's).
    os.sync()
    probe = Probe()
    times: dict[str, list[float]] = {k: [] for k in ("request", "approve", "reveal", "checkin")}
    breakdown: dict[str, list[dict[str, float]]] = {k: [] for k in times}

    def step(name: str, fn: Any, record: bool) -> Any:
        if hasattr(store, "_shard_cache"):  # the file backend's parsed-shard cache
            store._shard_cache.clear()
        probe.reset()
        world.clock.advance(1)
        t, value = timed(fn)
        if record:
            times[name].append(t)
            breakdown[name].append(probe.snapshot())
        return value

    for i, cname in enumerate(picks):
        record = i > 0  # the first cycle warms imports and the page cache
        req = step("request", lambda c=cname: world.vault.request(
            requester, c, "benchmark", "INC-1", 1800), record)
        step("approve", lambda r=req.id: world.vault.approve(approver, r), record)
        secret = step("reveal", lambda r=req.id: world.vault.reveal(requester, r), record)
        assert len(secret) > 0
        result = step("checkin", lambda r=req.id: world.vault.checkin(requester, r), record)
        assert result.outcome == "committed", result
    probe.close()
    out["times"] = {k: Stats.of(v).to_doc() for k, v in times.items()}
    out["breakdown"] = {k: _median_breakdown(v) for k, v in breakdown.items()}
    if url:
        out["backend"] = "postgres"
        out["peak_rss_mib"] = peak_rss_mib()
        return out
    out["shard_bytes"] = _shard_sizes(root)
    out["peak_rss_mib"] = peak_rss_mib()
    shutil.rmtree(root)
    return out


def _shard_sizes(root: Path) -> Result:
    from glasskey.core.vault import Vault

    from benchmarks.common import shard_manifest

    Vault(root).vault_id  # noqa: B018 - opens (and verifies) the vault first
    manifest = shard_manifest(root)
    out: Result = {}
    for table, shards in manifest.items():
        sizes = []
        for idx, digest in shards.items():
            p = root / "tables" / f"{table}.{idx}.{digest}.json"
            if p.exists():
                sizes.append(p.stat().st_size)
        if sizes:
            out[table] = {"shards": len(sizes), "total": sum(sizes),
                          "median": statistics.median(sizes), "max": max(sizes)}
    out["vault.json"] = (root / "vault.json").stat().st_size
    return out


def add_operator(args: Result) -> Result:
    """Enrol one more operator: every credential gets a share for them (one transaction)."""
    from glasskey.core.operators import OperatorSpec

    world, root = _operator_world(args, "addop")
    a, b = world.unlock("op00"), world.unlock("op01")
    n_ops = len(world.vault.operators())
    new = op_name(n_ops)
    progress = _progress("add_operator", 1000)
    probe = Probe()
    rss0 = current_rss_mib()
    t, enrolment = timed(lambda: world.vault.add_operator(
        [a, b], OperatorSpec(new, ("requester", "approver"), op_passphrase(new), op_seed(new)),
        progress))
    out: Result = {"seconds": t, "operators_before": n_ops, "status": enrolment.status,
                   "progress_calls": progress.calls["n"], "breakdown": probe.snapshot(),
                   "rss_before_mib": rss0, "peak_rss_mib": peak_rss_mib(),
                   "credentials": len(world.vault.credentials())}
    probe.close()
    shutil.rmtree(root)
    return out


def remove_operator(args: Result) -> Result:
    """Remove an operator: every data key re-split among the others (core.offboarding)."""
    world, root = _operator_world(args, "rmop")
    if not hasattr(world.vault, "remove_operator"):
        shutil.rmtree(root)
        return {"present": False, "why": "core has no remove_operator"}
    a, b = world.unlock("op00"), world.unlock("op01")
    names = world.operator_names()
    leaver = names[-1]
    progress = _progress("remove_operator", 1000)
    probe = Probe()
    rss0 = current_rss_mib()
    t, reachable = timed(lambda: world.vault.remove_operator([a, b], leaver, progress))
    out: Result = {"present": True, "seconds": t, "operators_before": len(names),
                   "reachable": len(reachable), "progress_calls": progress.calls["n"],
                   "breakdown": probe.snapshot(), "rss_before_mib": rss0,
                   "peak_rss_mib": peak_rss_mib(),
                   "credentials": len(world.vault.credentials())}
    probe.close()
    shutil.rmtree(root)
    return out


def _operator_world(args: Result, tag: str) -> tuple[Any, Path]:
    src = Path(args["src"])
    scratch = Path(args["scratch"])
    root = work_copy(src, scratch / f"{tag}-{os.getpid()}")
    fresh_client_state(scratch)
    return open_world(root, float(args["clock"]) + 3600), root


# -- CLI end to end -----------------------------------------------------------------------------
#: Runs the glasskey console script and, at exit, writes this process's VmHWM to the
#: file named by GLASSKEY_BENCH_HWM (the child's own peak, see common.peak_rss_mib).
CLI_BOOT = (
    "import atexit, os, runpy, sys\n"
    "def _hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            open(os.environ['GLASSKEY_BENCH_HWM'], 'w').write(line.split()[1])\n"
    "atexit.register(_hwm)\n"
    "sys.argv = [sys.argv[1], *sys.argv[2:]]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _run_cli(argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None
             ) -> tuple[float, int, bytes, float]:
    """Run glasskey; (seconds, exit code, stdout, peak RSS MiB of that process)."""
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as in_f, \
            tempfile.TemporaryFile() as err_f, tempfile.NamedTemporaryFile() as hwm:
        in_f.write(stdin)
        in_f.seek(0)
        child_env = dict(env or os.environ, GLASSKEY_BENCH_HWM=hwm.name)
        start = time.perf_counter()
        proc = subprocess.run([str(PYTHON), "-c", CLI_BOOT, str(GLASSKEY), *argv], stdin=in_f,
                              stdout=out_f, stderr=err_f, env=child_env, cwd=REPO)
        elapsed = time.perf_counter() - start
        code = proc.returncode
        out_f.seek(0)
        if code != 0:
            err_f.seek(0)
            log(f"glasskey {argv[0]} exited {code}: {err_f.read().decode(errors='replace')}")
        try:
            rss = int(Path(hwm.name).read_text() or 0) / 1024.0
        except (OSError, ValueError):
            rss = float("nan")
        return elapsed, code, out_f.read(), rss


def cli(args: Result) -> Result:
    """`glasskey cred list --json` and `glasskey reveal` as a person runs them (real clock)."""
    from glasskey.core.vault import Vault

    src = Path(args["src"])
    scratch = Path(args["scratch"])
    runs = int(args["runs"])
    root = work_copy(src, scratch / f"cli-{os.getpid()}")
    state = fresh_client_state(scratch)
    env = dict(os.environ, GLASSKEY_STATE_DIR=str(state))
    out: Result = {}
    list_times, list_rss, rows = [], [], 0
    for i in range(runs + 1):
        t, rc, stdout, rss = _run_cli(["cred", "list", "--json", "--vault", str(root)], env=env)
        if rc != 0:
            raise SystemExit(f"glasskey cred list failed ({rc})")
        if i:
            list_times.append(t)
            list_rss.append(rss)
        rows = len(json.loads(stdout))
    out["cred_list_s"] = Stats.of(list_times).to_doc()
    out["cred_list_rows"] = rows
    out["cred_list_peak_rss_mib"] = max(list_rss)
    # reveal: a different requester/approver pair each time, so every unlock uses a fresh
    # TOTP step of the real clock (in-process: previous step; the CLI: the current one).
    vault = Vault(root, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
    names = sorted(o.name for o in vault.operators())
    cred_names = [c.name for c in vault.credentials()]
    rng = random.Random(5)
    reveal_times, reveal_rss = [], []
    pairs = [(names[(2 * i) % len(names)], names[(2 * i + 1) % len(names)])
             for i in range(runs + 1)]
    targets = rng.sample(cred_names, min(len(cred_names), len(pairs)))
    for i, (req_name, appr_name) in enumerate(pairs):
        # Codes are computed just before each unlock (an unlock spends ~0.5 s in Argon2id,
        # so a code computed earlier may fall out of the accepted window): in-process the
        # current step, for the CLI the next one (accepted, and later than the last used).
        rs = vault.unlock(req_name, op_passphrase(req_name),
                          totp.code_at(op_seed(req_name), time.time()))
        ap = vault.unlock(appr_name, op_passphrase(appr_name),
                          totp.code_at(op_seed(appr_name), time.time()))
        req = vault.request(rs, targets[i % len(targets)], "benchmark", "INC-2", 1800)
        vault.approve(ap, req.id)
        code = totp.code_at(op_seed(req_name), time.time() + 30)
        t, rc, stdout, rss = _run_cli(
            ["reveal", req.id, "--vault", str(root), "--as", req_name, "--totp", code,
             "--passphrase-file", "-"], stdin=(op_passphrase(req_name) + "\n").encode(),
            env=env)
        if rc != 0 or not stdout.strip():
            raise SystemExit(f"glasskey reveal failed ({rc})")
        vault.checkin(rs, req.id)  # keep the open checkouts few, as in real use
        if i:
            reveal_times.append(t)
            reveal_rss.append(rss)
    out["reveal_s"] = Stats.of(reveal_times).to_doc()
    out["reveal_peak_rss_mib"] = max(reveal_rss)
    if args.get("verify"):
        t, rc, stdout, rss = _run_cli(["audit", "verify", "--json", "--vault", str(root)],
                                      env=env)
        out["audit_verify_cli_s"] = t
        out["audit_verify_cli_rc"] = rc
        out["audit_verify_cli_peak_rss_mib"] = rss
    shutil.rmtree(root)
    return out


# -- TUI ------------------------------------------------------------------------------------------
def tui(args: Result) -> Result:
    """GlasskeyApp on the large vault: time to the first screen, and to the dashboard.

    First screen: from constructing the app to its first screen mounted
    (``App.run_test``), a new Vault object each run. Dashboard: from handing the
    app an already unlocked session (so no Argon2id) to the dashboard of every
    credential mounted and settled.
    """
    try:
        from glasskey.tui import app as tui_app
    except Exception as exc:  # not written yet, or broken: say so
        return {"present": False, "why": f"glasskey.tui.app does not import ({type(exc).__name__}: "
                f"{exc})"[:200]}
    cls = getattr(tui_app, "GlasskeyApp", None)
    if cls is None:
        return {"present": False, "why": "tui/app.py has no GlasskeyApp"}
    from glasskey.core.vault import Vault

    src = Path(args["src"])
    scratch = Path(args["scratch"])
    root = work_copy(src, scratch / f"tui-{os.getpid()}")
    fresh_client_state(scratch)
    runs = int(args.get("runs", 5))
    world = open_world(root, float(args["clock"]) + 3600)
    session = world.unlock("op02")
    n_creds = len(world.vault.credentials())
    first: list[float] = []
    dash: list[float] = []
    filters: list[float] = []
    screens: list[str] = []
    errors: list[str] = []

    def make_app() -> Any:
        vault = Vault(root, world.clock, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
        params = list(inspect.signature(cls).parameters)
        if params and params[0] == "vault":
            return cls(vault)
        for kw in ("root", "vault_root", "vault_dir", "path"):
            if kw in params:
                return cls(**{kw: root})
        return cls(vault)

    async def _time_filters(app: Any, pilot: Any) -> None:
        """Set the dashboard filter and wait until the table has repainted."""
        try:
            box = app.screen.query_one("#dash-filter")
        except Exception as exc:  # the dashboard changed shape: say so, don't fail
            errors.append(f"filter: {type(exc).__name__}")
            return
        for text in ("c0", "cred-01", "cred-0123", "batch", "zzz-none", ""):
            t0 = time.perf_counter()
            box.value = text
            await pilot.pause()
            filters.append(time.perf_counter() - t0)

    async def once() -> tuple[float, float | None]:
        start = time.perf_counter()
        app = make_app()
        t_dash = None
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            t_first = time.perf_counter() - start
            screens.append(type(app.screen).__name__)
            if hasattr(app, "unlocked"):
                t1 = time.perf_counter()
                app.unlocked(session)
                await pilot.pause()
                await pilot.pause()
                t_dash = time.perf_counter() - t1
                screens.append(type(app.screen).__name__)
                await _time_filters(app, pilot)
            app.exit()
        return t_first, t_dash

    cold = _tui_cold(root, runs)
    cold_small = _tui_cold(Path(args["small"]), runs) if args.get("small") else []
    for i in range(runs + 1):
        try:
            t_first, t_dash = asyncio.run(once())
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            break
        if i:
            first.append(t_first)
            if t_dash is not None:
                dash.append(t_dash)
    shutil.rmtree(root, ignore_errors=True)
    if not first:
        return {"present": True, "ok": False, "why": errors[0] if errors else "no run"}
    return {"present": True, "ok": True, "first_screen_s": Stats.of(first).to_doc(),
            "cold_start_s": Stats.of(cold).to_doc() if cold else None,
            "cold_start_small_s": Stats.of(cold_small).to_doc() if cold_small else None,
            "dashboard_s": Stats.of(dash).to_doc() if dash else None,
            "filter_s": Stats.of(filters).to_doc() if filters else None,
            "screen": screens[0] if screens else "",
            "dashboard_screen": screens[1] if len(screens) > 1 else "",
            "credentials": n_creds,
            "errors": errors, "peak_rss_mib": peak_rss_mib()}


def experiments(args: Result) -> Result:
    from benchmarks import experiments as exp

    return exp.run(args)


def peer(args: Result) -> Result:
    from benchmarks import peer as peer_mod

    return peer_mod.run(args)


TUI_COLD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from glasskey.core.vault import Vault
from glasskey.tui import app as tui_app
from glasskey.tui.app import GlasskeyApp
class FirstScreen(GlasskeyApp):
    CSS_PATH = str(Path(tui_app.__file__).parent / GlasskeyApp.CSS_PATH)
    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(self.exit)
FirstScreen(Vault(Path(sys.argv[1]))).run(headless=True)
"""


def _tui_cold(root: Path, runs: int) -> list[float]:
    """A new process: interpreter, imports, vault, app, first screen painted, exit."""
    out = []
    script = root.parent / "tui_first_screen.py"
    script.write_text(TUI_COLD)
    for i in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run([str(PYTHON), str(script), str(root), str(REPO)], cwd=REPO,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=120)
        if proc.returncode != 0:
            log(f"TUI cold start failed: {proc.stderr[-300:]}")
            return []
        if i:
            out.append(time.perf_counter() - start)
    return out


# -- custody report cost ----------------------------------------------------------------------
def report_world(args: Result) -> Result:
    """A vault whose log holds ``entries`` synthetic entries (for ``report`` without a cache)."""
    from benchmarks.common import FAST_KDF

    root = Path(args["root"])
    clock = FakeClock(start_clock())
    world = found(root, int(args.get("operators", 6)), dict(FAST_KDF), clock)
    admin = world.s(op_name(0))
    world.vault.import_credentials(admin, credential_specs(int(args.get("credentials", 50)),
                                                           random.Random(7)))
    hist = fill_history(world, int(args["entries"]))
    return {"history": hist, "clock_end": world.clock.now()}


def report(args: Result) -> Result:
    """A one-day custody report (build + Markdown) of the large log: time and peak memory.

    The day is the last whole day of the log, so the report streams the
    whole file and keeps only that day's items (issue 15: < 5 s, < 300 MB at
    1,000,000 entries). Without ``root`` it first builds a vault of
    ``entries`` entries in a child process, so that building does not count
    toward this process's peak memory.
    """
    from glasskey.core import report as rp
    from glasskey.core.vault import Vault

    scratch = Path(args["scratch"])
    fresh_client_state(scratch)
    root = Path(args["root"]) if args.get("root") else scratch / "report-vault"
    if not args.get("root") and not (root / "vault.json").exists():
        out = subprocess.run([str(PYTHON), "-m", "benchmarks.worker", "report_world"],
                             input=json.dumps({"root": str(root),
                                               "entries": int(args.get("entries", 1_000_000)),
                                               "fast_kdf": True}),
                             stdout=subprocess.PIPE, text=True, cwd=REPO, check=True)
        log(f"report: built {out.stdout.strip().splitlines()[-1][:200]}")
    last = b""
    with open(root / "audit.jsonl", "rb") as fh:
        fh.seek(max(0, (root / "audit.jsonl").stat().st_size - 65536))
        last = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    end = rp._ts(json.loads(last)["time"]) or time.time()
    until = (end // 86400) * 86400 - 1
    since = until - 86399
    # A reviewer's client has read this vault before: its checkpoint exists. The
    # first full verification (every signature) runs in a child process, timed
    # apart, so that this process's peak memory is the report's own.
    t_first, first = timed(lambda: subprocess.run(
        [str(PYTHON), "-c", "import sys; from glasskey.core.vault import Vault; "
         "sys.exit(0 if Vault(sys.argv[1]).verify_audit().ok else 1)", str(root)],
        cwd=REPO, check=False))
    if first.returncode != 0:
        raise SystemExit("report: the log does not verify")
    log(f"report: first full verify by this client {t_first:.2f} s (child process)")
    base_rss = current_rss_mib()
    runs = int(args.get("runs", 3))
    times, md_times = [], []
    built = None
    for _ in range(runs):
        fresh = Vault(root, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
        t, built = timed(lambda v=fresh: rp.build_custody_report(v, since, until))  # type: ignore[misc]
        t_md, _ = timed(lambda b=built: rp.render_markdown(b))  # type: ignore[misc]
        times.append(t)
        md_times.append(t_md)
        log(f"report: {t:.2f} s build + {t_md:.2f} s md ({built.audit.entries} entries, "
            f"{len(built.checkouts)} checkouts in the day)")
    assert built is not None
    # The two passes it makes, measured apart: the audit verify, then the stream.
    vault = Vault(root, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
    t_verify, _ = timed(lambda: vault.verify_audit(incremental=True))
    t_stream, feeder = timed(lambda: rp._read_log(vault, rp._Collector(), since, until, None))
    log(f"report: verify {t_verify:.2f} s, stream {t_stream:.2f} s "
        f"({feeder.parsed:,} of {feeder.read:,} lines parsed)")
    return {"report_s": Stats.of([a + b for a, b in zip(times, md_times)]).to_doc(),
            "verify_s": t_verify, "stream_s": t_stream, "parsed": feeder.parsed,
            "build_s": Stats.of(times).to_doc(), "markdown_s": Stats.of(md_times).to_doc(),
            "entries": built.audit.entries, "checkouts": len(built.checkouts),
            "ok": built.audit.ok, "base_rss_mib": base_rss, "peak_rss_mib": peak_rss_mib(),
            "first_verify_s": t_first}


STEPS = {
    "peer": peer,
    "floors": floors,
    "startup": startup,
    "build": build,
    "verify": verify,
    "listing": listing,
    "ops": ops,
    "add_operator": add_operator,
    "remove_operator": remove_operator,
    "experiments": experiments,
    "cli": cli,
    "tui": tui,
    "report": report,
    "report_world": report_world,
    "outage": lambda args: _outage(args),
    "team": lambda args: _team(args),
}


def _team(args: Result) -> Result:
    from benchmarks.team import step

    return step(args)


def _outage(args: Result) -> Result:
    from benchmarks.outage import time_to_credential

    return time_to_credential(args)


def main(name: str, args: Result) -> Result:
    if args.get("fast_kdf"):
        os.environ["GLASSKEY_INSECURE_FAST_KDF"] = "1"
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    return STEPS[name](args)
