"""Team mode (issue 13): the PostgreSQL backend beside the file backend, in one run.

``python -m benchmarks.run --only team`` (part of ``make bench``). The run
process starts a real PostgreSQL (tests/servers.py, the launcher the tests use:
127.0.0.1, scram-sha-256, passwords from a pgpass file) and keeps it for the
group; every measurement is a worker process (``benchmarks.worker team`` with
a ``part``), as the other groups are:

* ``move``   the large vault (10,000 x 25 x 1,000,000 with history) moved in
  with ``glasskey migrate --to URL`` (copy + full verification in the
  database), then a new client's first full verification against it;
* ``ops``    the ops step (benchmarks/steps.py) on the database, and on a copy
  of the same directory vault, unlock (Argon2id) timed apart;
* ``notify`` machine B's approval committed -> visible on machine A (two
  processes, LISTEN/NOTIFY; benchmarks/team_clients.py);
* ``memory`` peak memory of a ``glasskey reveal`` process on either backend;
* ``load``   20 client processes doing random checkouts for 60 s on a modest
  vault (weak KDF), then the audit log checked for lost updates and double
  redemptions.

The launcher runs the server with ``fsync = off`` (and ``synchronous_commit``
and ``full_page_writes`` off): the ops are measured that way once, then the
server is switched to durable settings (all three on) for everything after
the move. Statement logging (on in the launcher, for the leak tests) is off.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, REPO, Scale, Stats, op_passphrase, op_seed, timed
from benchmarks.world import cache_dir, fresh_client_state, log, work_copy

Result = dict[str, Any]
Worker = Callable[[str, dict[str, Any], Scale], Result]
#: Clients of the concurrent run, its length, and the modest vault it uses.
#: op00 imports; client i is requester op(2i+2) and approver op(2i+3) (one TOTP use each).
CLIENTS, LOAD_SECONDS, LOAD_CREDENTIALS, LOAD_OPERATORS = 20, 60, 1000, 42
NOTIFY_TRIALS = 100
LAUNCHED = {"log_statement": "'none'", "log_connections": "off",
            "max_connections": "100", "shared_buffers": "'128MB'"}
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
SHOWN = ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
         "max_connections", "server_version")


# -- the server (run process) --------------------------------------------------------------
def _servers() -> Any:
    sys.path.insert(0, str(REPO / "tests"))
    import servers

    return servers


def _configure(pg: Any, settings: dict[str, str], restart: bool) -> dict[str, str]:
    for name, value in settings.items():
        pg.execute(f"ALTER SYSTEM SET {name} = {value}")
    if restart:
        cmd = [str(pg.bin_dir / "pg_ctl"), "restart", "-D", str(pg.data_dir), "-m", "fast",
               "-w", "-l", str(pg.log_file)]
        if pg.owner:
            cmd = ["runuser", "-u", pg.owner, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    else:
        pg.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
    pg.execute("CHECKPOINT")
    import psycopg

    with psycopg.connect(pg.admin_conninfo) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in SHOWN}


@contextmanager
def _server(base: Path) -> Iterator[Any]:
    with _servers().postgres_server() as pg:
        passfile = base / "pgpass"
        passfile.write_text(f"{pg.host}:{pg.port}:*:{pg.admin_user}:{pg.admin_password}\n")
        passfile.chmod(0o600)
        old = os.environ.get("PGPASSFILE")
        os.environ["PGPASSFILE"] = str(passfile)  # the workers inherit it
        try:
            yield pg
        finally:
            os.environ.pop("PGPASSFILE", None) if old is None else \
                os.environ.__setitem__("PGPASSFILE", old)


def measure(worker: Worker, scale: Scale, meta: Result, large: Path, scratch: Path) -> Result:
    """The whole group, from the run process (the server lives as long as this call)."""
    base = Path(tempfile.mkdtemp(prefix="glasskey-team-", dir=scratch))
    full = scale.name == "full"  # --quick: fewer trials, a shorter concurrent run
    out: Result = {"clients": CLIENTS, "load_seconds": LOAD_SECONDS if full else 20,
                   "scale": scale.to_doc()}
    with _server(base) as pg:
        def url(db: str) -> str:
            return f"postgresql://{pg.admin_user}@{pg.host}:{pg.port}/{db}"

        for db in ("team_large", "team_load"):
            pg.execute(f"CREATE DATABASE {db}")
        out["server_launched"] = _configure(pg, LAUNCHED, restart=True)
        log(f"team: PostgreSQL {out['server_launched']['server_version']} on "
            f"{pg.host}:{pg.port}, fsync={out['server_launched']['fsync']} (as launched)")
        # A client that has verified the cached large vault: kept beside the cache (which
        # never changes; a rebuild removes client-state/), so only the first run pays.
        template = str(cache_dir(scale) / "client-state" / "team-verified")
        common = {"scratch": str(scratch), "url": url("team_large"), "client_state": template}
        out["move"] = worker("team", dict(common, part="move", src=str(large)), scale)
        ops = dict(common, runs=scale.runs, variant="history",
                   requests=meta["build"]["history"]["requests"])
        out["ops_pg_nofsync"] = worker("ops", dict(ops, clock=meta["clock_end"]), scale)
        out["server"] = _configure(pg, DURABLE, restart=False)
        log(f"team: durable settings now: fsync={out['server']['fsync']}, "
            f"synchronous_commit={out['server']['synchronous_commit']}")
        out["ops_pg"] = worker("ops", dict(ops, clock=meta["clock_end"] + 2 * 86400), scale)
        out["ops_file"] = worker("ops", dict(ops, url=None, src=str(large),
                                             clock=meta["clock_end"]), scale)
        out["notify"] = worker("team", dict(common, part="notify", base=str(base),
                                            trials=NOTIFY_TRIALS if full else 30), scale)
        out["memory"] = worker("team", dict(common, part="memory", src=str(large)), scale)
        out["load"] = worker("team", dict(common, part="load", url=url("team_load"),
                                          base=str(base), seconds=out["load_seconds"]), scale)
    shutil.rmtree(base, ignore_errors=True)
    return out


# -- worker parts ---------------------------------------------------------------------------
def step(args: Result) -> Result:
    return {"move": _move, "notify": _notify, "memory": _memory, "load": _load}[args["part"]](
        args)


def _move(args: Result) -> Result:
    """``glasskey migrate`` of a copy of the large vault, then a new client's first read."""
    from glasskey.core.storage.files import FileStore
    from glasskey.core.storage.postgres import PostgresStore

    from benchmarks.steps import _run_cli

    scratch = Path(args["scratch"])
    root = work_copy(Path(args["src"]), scratch / "team-move")
    template = Path(args["client_state"])
    t_src = None
    if not template.exists():  # the first run on this cache: verify the directory vault
        state = fresh_client_state(scratch)

        def source_read() -> None:
            with FileStore(root).read():
                pass

        t_src, _ = timed(source_read)
        log(f"team: a client's first verification of the directory vault {t_src:.1f} s")
        shutil.copytree(state, template)
    # The mover has used the directory vault before (its checkpoint is at the head).
    state = fresh_client_state(scratch)
    shutil.copytree(template, state, dirs_exist_ok=True)
    t_move, rc, stdout, rss = _run_cli(["migrate", "--to", args["url"], "--yes", "--json",
                                        "--vault", str(root)],
                                       env=dict(os.environ, GLASSKEY_STATE_DIR=str(state)))
    if rc != 0:
        raise SystemExit(f"glasskey migrate failed ({rc})")
    moved = json.loads(stdout)
    log(f"team: moved {moved['entries']:,} entries in {t_move:.1f} s (copy + verify)")
    shutil.rmtree(root)
    fresh_client_state(scratch)  # a new client: no checkpoint at all

    def first_read() -> int:
        store = PostgresStore(args["url"])
        with store.read() as txn:
            seq = txn.head.seq
        store.close()
        return seq

    t_first, seq = timed(first_read)
    log(f"team: a new client's first full verification {t_first:.1f} s ({seq:,} entries)")
    import psycopg

    with psycopg.connect(args["url"]) as conn:
        size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
    return {"move_s": t_move, "move_peak_rss_mib": rss, "entries": moved["entries"],
            "documents": moved["documents"], "source_verify_s": t_src,
            "first_verify_s": t_first, "verified_entries": seq, "db_bytes": size}


def _client_env(base: Path, tag: str, template: str | None) -> dict[str, str]:
    """Its own HOME and state dir: another machine, as far as glasskey can tell."""
    home = base / "machines" / tag
    state = home / "state"
    if template:
        shutil.copytree(template, state)
    else:
        state.mkdir(parents=True)
    return dict(os.environ, HOME=str(home), GLASSKEY_STATE_DIR=str(state))


def _spawn(role: str, cfg: Result, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(PYTHON), "-m", "benchmarks.team_clients", role],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env=env)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(cfg) + "\n")
    proc.stdin.flush()
    return proc


def _talk(proc: subprocess.Popen[str], msg: Result | None = None) -> Result:
    assert proc.stdin is not None and proc.stdout is not None
    if msg is not None:
        proc.stdin.write(json.dumps(msg) + "\n")
        proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"a team client exited ({proc.wait()})")
    doc: Result = json.loads(line)
    return doc


def _notify(args: Result) -> Result:
    """Commit on B -> visible on A, ``trials`` times (different credentials each)."""
    import random

    from glasskey.core.vault import Vault

    base = Path(args["base"])
    fresh_client_state(Path(args["scratch"]))
    shutil.copytree(args["client_state"], os.environ["GLASSKEY_STATE_DIR"], dirs_exist_ok=True)
    names = [c.name for c in Vault(args["url"]).credentials()]
    picks = random.Random(13).sample(names, int(args["trials"]))
    a = _spawn("watch", {"url": args["url"], "requester": "op10"},
               _client_env(base, "A", args["client_state"]))
    b = _spawn("approve", {"url": args["url"], "approver": "op11"},
               _client_env(base, "B", args["client_state"]))
    _talk(a), _talk(b)
    delays, wakeups, missed = [], [], 0
    for i, cred in enumerate(picks):
        rid = _talk(a, {"credential": cred})["rid"]
        committed = _talk(b, {"rid": rid})["commit"]
        seen = _talk(a)
        if seen["visible"] is None or committed is None:
            missed += 1
        else:
            delays.append(seen["visible"] - committed)
            wakeups.append(seen["wakeups"])
        if (i + 1) % 25 == 0:
            log(f"team: notify {i + 1}/{len(picks)}")
    rss = [_talk(p, {"stop": True}).get("peak_rss_mib") for p in (a, b)]
    a.wait(), b.wait()
    delays.sort()
    return {"trials": len(picks), "missed": missed, "delay_s": Stats.of(delays).to_doc(),
            "p95_s": delays[max(0, int(0.95 * len(delays)) - 1)] if delays else None,
            "wakeups_median": statistics.median(wakeups) if wakeups else None,
            "peak_rss_mib": rss}


def _memory(args: Result) -> Result:
    """``glasskey reveal`` as its own process on each backend: wall time and peak RSS."""
    from glasskey.core import totp
    from glasskey.core.vault import Vault

    from benchmarks.steps import _run_cli

    scratch = Path(args["scratch"])
    root = work_copy(Path(args["src"]), scratch / "team-mem")
    out: Result = {}
    for label, where in (("file", str(root)), ("postgres", args["url"])):
        state = fresh_client_state(scratch)
        shutil.copytree(args["client_state"], state, dirs_exist_ok=True)
        vault = Vault(where, allow_weak_kdf=os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1")
        names = [c.name for c in vault.credentials()]
        times, rss = [], []
        for i, (req_name, appr_name) in enumerate((("op12", "op13"), ("op14", "op15"),
                                                   ("op16", "op17"))):
            rs = vault.unlock(req_name, op_passphrase(req_name),
                              totp.code_at(op_seed(req_name), time.time()))
            ap = vault.unlock(appr_name, op_passphrase(appr_name),
                              totp.code_at(op_seed(appr_name), time.time()))
            req = vault.request(rs, names[100 + i], "memory benchmark", "INC-13", 900)
            vault.approve(ap, req.id)
            code = totp.code_at(op_seed(req_name), time.time() + 30)
            t, rc, stdout, peak = _run_cli(
                ["reveal", req.id, "--vault", where, "--as", req_name, "--totp", code,
                 "--passphrase-file", "-"], stdin=(op_passphrase(req_name) + "\n").encode(),
                env=dict(os.environ, GLASSKEY_STATE_DIR=str(state)))
            if rc != 0 or not stdout.strip():
                raise SystemExit(f"glasskey reveal on the {label} vault failed ({rc})")
            vault.checkin(rs, req.id)
            times.append(t)
            rss.append(peak)
        out[label] = {"reveal_cli_s": Stats.of(times).to_doc(), "peak_rss_mib": max(rss)}
        log(f"team: reveal process on the {label} vault: {statistics.median(times):.2f} s, "
            f"peak {max(rss):.0f} MiB")
    shutil.rmtree(root)
    return out


def _load(args: Result) -> Result:
    """20 clients, random checkouts, 60 s; then the log verified and checked."""
    import random

    from glasskey.core.operators import OperatorSpec
    from glasskey.core.vault import Vault

    from benchmarks.common import FAST_KDF, op_name, op_roles
    from benchmarks.team_clients import OPS, check_log
    from benchmarks.world import credential_specs, kdf_params

    base, url = Path(args["base"]), args["url"]
    fresh_client_state(Path(args["scratch"]))
    os.environ["GLASSKEY_INSECURE_FAST_KDF"] = "1"
    vault = Vault(url, allow_weak_kdf=True)
    specs = [OperatorSpec(op_name(i), op_roles(i), op_passphrase(op_name(i)),
                          op_seed(op_name(i))) for i in range(LOAD_OPERATORS)]
    t_found, _ = timed(lambda: vault.initialise(specs, label="load", kdf_params=kdf_params(
        FAST_KDF)))
    admin = vault.unlock("op00", op_passphrase("op00"), totp_now("op00"))
    t_import, creds = timed(lambda: vault.import_credentials(
        admin, credential_specs(LOAD_CREDENTIALS, random.Random(3))))
    names = [c.name for c in creds]
    log(f"team: load vault founded ({t_found:.1f} s) and {len(names)} credentials imported "
        f"({t_import:.1f} s); starting {CLIENTS} clients")
    procs = [_spawn("checkout", {"url": url, "seed": i, "credentials": names,
                                 "requester": op_name(2 * i + 2), "approver": op_name(2 * i + 3)},
                    dict(_client_env(base, f"load-{i}", None), GLASSKEY_INSECURE_FAST_KDF="1"))
             for i in range(CLIENTS)]
    t_ready, _ = timed(lambda: [_talk(p) for p in procs])  # each opened, verified, unlocked
    seq0 = vault.store.seq()
    start = time.time() + 1.0
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(json.dumps({"start": start, "until": start + float(args["seconds"])})
                      + "\n")
        p.stdin.flush()
    results = [_talk(p) for p in procs]
    elapsed = time.time() - start
    for p in procs:
        p.wait()
    seq1 = vault.store.seq()
    t_verify, verified = timed(lambda: vault.verify_audit())
    lines = list(vault.store.audit_lines())
    done = [d for r in results for d in r["done"]]
    checks = check_log(lines, done)
    refused: dict[str, int] = {}
    for r in results:
        for k, v in r["refused"].items():
            refused[k] = refused.get(k, 0) + v
    completed = sum(r["completed"] for r in results)
    per_op = {op: sorted(t for r in results for t in r["times"][op]) for op in OPS}
    rss = [r["peak_rss_mib"] for r in results]
    log(f"team: load {completed} checkouts in {elapsed:.0f} s, {seq1 - seq0} commits, "
        f"refused {sum(refused.values())}, lost {checks['lost_updates']}, log ok={verified.ok}")
    return {"clients": CLIENTS, "seconds": elapsed, "window_s": float(args["seconds"]),
            "ready_s": t_ready,
            "credentials": len(names), "operators": LOAD_OPERATORS,
            "completed": completed, "checkouts_per_s": completed / elapsed,
            "commits": seq1 - seq0, "commits_per_s": (seq1 - seq0) / elapsed,
            "refused": refused, "refusals": sum(refused.values()),
            "p50_s": {op: _q(v, 0.5) for op, v in per_op.items()},
            "p95_s": {op: _q(v, 0.95) for op, v in per_op.items()},
            "log_ok": verified.ok, "log_entries": verified.entries, "verify_s": t_verify,
            "client_peak_rss_mib": {"max": max(rss), "median": statistics.median(rss)},
            **checks}


def totp_now(name: str) -> str:
    from glasskey.core import totp

    return totp.code_at(op_seed(name), time.time())


def _q(values: list[float], q: float) -> float | None:
    return values[max(0, int(q * len(values)) - 1)] if values else None
