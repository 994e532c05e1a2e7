"""`python -m benchmarks.run [--quick|--full] [--only NAME]` — the `make bench` entry.

Runs every measurement in its own worker process, prints a table and writes
BENCHMARKS.md (the full run; --quick and --only write under benchmarks/.cache
unless --output says otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.common import (
    CACHE,
    FULL,
    PYTHON,
    QUICK,
    REPO,
    Scale,
    fingerprint,
    write_json,
)
from benchmarks.peer import install as install_peer
from benchmarks.peer import keepassxc_version
from benchmarks.world import cache_dir, cache_meta

GROUPS = ("floors", "import", "verify", "list", "ops", "operators", "cli", "peer", "tui",
          "experiments", "report", "outage", "team")
NEEDS_CACHE = {"verify", "list", "ops", "operators", "cli", "tui", "experiments", "report",
               "team"}


def worker(step: str, args: dict[str, Any], scale: Scale) -> dict[str, Any]:
    args = dict(args, scale=scale.to_doc(), fast_kdf=scale.fast_kdf)
    env = dict(os.environ)
    # The workers' client state (witness checkpoints, pins) lives beside the cached
    # vaults, never in the user's own state directory; a rebuild starts it afresh.
    env["GLASSKEY_STATE_DIR"] = str(cache_dir(scale) / "client-state")
    if scale.fast_kdf:
        env["GLASSKEY_INSECURE_FAST_KDF"] = "1"
    else:
        env.pop("GLASSKEY_INSECURE_FAST_KDF", None)
    start = time.perf_counter()
    proc = subprocess.run([str(PYTHON), "-m", "benchmarks.worker", step],
                          input=json.dumps(args), stdout=subprocess.PIPE, text=True,
                          cwd=REPO, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step {step} failed (exit {proc.returncode})")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    print(f"  {step}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return result


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M %Z")}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                      if ln.startswith("model name")), "unknown")
        mhz = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                    if ln.startswith("cpu MHz")), "")
        info["cpu"] = model + (f" ({float(mhz):.0f} MHz)" if mhz else "")
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["cores"] = f"{usable} usable ({os.cpu_count()} online)"
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()
        total_kib = int(next(ln for ln in mem if ln.startswith("MemTotal")).split()[1])
        info["ram"] = f"{total_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    info["disk"] = _disk(CACHE)
    info["kernel"] = platform.release()
    info["python"] = sys.version.split()[0]
    try:
        import cryptography
        from cryptography.hazmat.backends.openssl import backend

        info["cryptography"] = cryptography.__version__
        info["openssl"] = backend.openssl_version_text()
    except ImportError:
        pass
    for mod in ("textual", "tinydb"):
        try:
            from importlib.metadata import version

            info[mod] = version(mod)
        except Exception:
            info[mod] = "not installed"
    info["keepassxc"] = keepassxc_version() or "not installed"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=REPO).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "core", "tui"],
                               capture_output=True, text=True, cwd=REPO).stdout.strip()
        info["git"] = head + (" (core/ or tui/ modified in the work tree)" if dirty else "")
    except OSError:
        pass
    return info


def _disk(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run(["df", "-T", "-h", str(path)], capture_output=True,
                             text=True).stdout.splitlines()[-1].split()
        dev, fstype, size = out[0], out[1], out[2]
        desc = f"{dev} ({fstype}, {size})"
        name = Path(dev).name.rstrip("0123456789")
        rot = Path(f"/sys/block/{name}/queue/rotational")
        if rot.exists():
            desc += f", kernel reports rotational={rot.read_text().strip()}"
        model = Path(f"/sys/block/{name}/device/model")
        if model.exists():
            desc += f", {model.read_text().strip()}"
        return desc
    except (OSError, IndexError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small CI-sized run (~2 min)")
    mode.add_argument("--full", action="store_true", help="the full scale (default)")
    ap.add_argument("--only", action="append", choices=GROUPS, metavar="NAME",
                    help=f"run only these groups (repeatable): {', '.join(GROUPS)}")
    ap.add_argument("--output", type=Path, help="where to write the report "
                    "(default: BENCHMARKS.md for a full run of every group)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached vaults")
    ap.add_argument("--install-peer", action="store_true",
                    help="apt-get install keepassxc if keepassxc-cli is missing (root)")
    ap.add_argument("--from-results", action="store_true",
                    help="re-render the report from the last run's results.json (no measuring)")
    ap.add_argument("--splice", action="store_true",
                    help="also put the sections of the groups run (team) into BENCHMARKS.md "
                    "in place of their old text, leaving the rest of it as it is")
    opts = ap.parse_args(argv)
    scale = QUICK if opts.quick else FULL
    if opts.from_results:
        saved = json.loads((cache_dir(scale) / "results.json").read_text())
        if opts.splice and scale is FULL and "team" in saved["results"]:
            from benchmarks.team_report import splice

            splice(REPO / "BENCHMARKS.md", saved["results"], saved["machine"])
            return 0
        return _render(saved["results"], saved["machine"], scale,
                       opts.output or REPO / "BENCHMARKS.md" if scale is FULL
                       else opts.output or cache_dir(scale) / "BENCHMARKS.md")
    only = set(opts.only or GROUPS)
    output = opts.output
    if output is None:
        output = (REPO / "BENCHMARKS.md" if scale is FULL and not opts.only
                  else cache_dir(scale) / "BENCHMARKS.md")
    t0 = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = cache_dir(scale) / "work"
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"glasskey benchmarks, {scale.name}: {scale.credentials:,} credentials x "
          f"{scale.operators} operators x {scale.audit_entries:,} audit entries",
          file=sys.stderr)
    machine = machine_info()
    load_start = os.getloadavg()
    res: dict[str, Any] = {}
    meta = None if opts.rebuild else cache_meta(scale)
    kdf = meta["kdf"] if meta else None
    audit_path = str(cache_dir(scale) / "large" / "audit.jsonl") if meta else None

    if "floors" in only:
        res["floors"] = worker("floors", {"kdf": kdf, "audit_path": audit_path}, scale)
        kdf = kdf or res["floors"]["kdf"]
        res["startup"] = worker("startup", {"runs": 5}, scale)

    need_cache = bool(only & NEEDS_CACHE)
    if meta is None and (need_cache or "import" in only):
        if kdf is None:
            kdf = res.get("floors", {}).get("kdf") or worker("floors", {}, scale)["kdf"]
        print("  building the cached vaults (once per core version)...", file=sys.stderr)
        shutil.rmtree(cache_dir(scale) / "client-state", ignore_errors=True)
        res["import"] = worker("build", {"keep": True, "kdf": kdf}, scale)
        meta = cache_meta(scale)
        if meta is None:
            raise SystemExit("the cache was not written")
    elif "import" in only:
        assert meta is not None
        res["import"] = worker("build", {"keep": False, "kdf": meta["kdf"]}, scale)
    if meta is not None:
        res["cache"] = meta
        kdf = meta["kdf"]
        same = meta.get("fingerprint") == fingerprint()
        machine["cache"] = (f"large and small vaults built {meta['built']} by "
                            + ("this core" if same else "an earlier core with the same schema "
                               "(--rebuild to rebuild)"))
    large = cache_dir(scale) / "large"
    small = cache_dir(scale) / "small"
    common = {"scratch": str(scratch)}

    try:
        if "verify" in only:
            res["verify"] = worker("verify", dict(common, root=str(large),
                                                  runs=scale.verify_runs), scale)
        if "report" in only:
            res["report"] = worker("report", dict(common, root=str(large), runs=scale.runs),
                                   scale)
        if "list" in only:
            res["listing"] = worker("listing", dict(common, root=str(large), runs=scale.runs),
                                    scale)
        if "ops" in only and meta is not None:
            res["ops_small"] = worker("ops", dict(common, src=str(small), runs=scale.runs,
                                                  clock=meta["small_clock_end"],
                                                  variant="small"), scale)
            res["ops_large"] = worker("ops", dict(common, src=str(large), runs=scale.runs,
                                                  clock=meta["clock_end"], drop_requests=True,
                                                  variant="empty-requests"), scale)
            res["ops_large_hist"] = worker("ops", dict(
                common, src=str(large), runs=scale.runs, clock=meta["clock_end"],
                variant="history", requests=meta["build"]["history"]["requests"]), scale)
        if "operators" in only and meta is not None:
            res["add_operator"] = worker("add_operator", dict(common, src=str(large),
                                                              clock=meta["clock_end"]), scale)
            res["remove_operator"] = worker("remove_operator", dict(
                common, src=str(large), clock=meta["clock_end"]), scale)
        if "cli" in only:
            res["cli_large"] = worker("cli", dict(common, src=str(large), runs=scale.runs,
                                                  verify=True), scale)
            res["cli_small"] = worker("cli", dict(common, src=str(small), runs=scale.runs),
                                      scale)
        if "peer" in only:
            if keepassxc_version() is None and opts.install_peer:
                print(f"  {install_peer(cache_dir(scale) / 'apt.log')}", file=sys.stderr)
                machine["keepassxc"] = keepassxc_version() or "not installed"
            res["peer"] = worker("peer", dict(common, kdf=kdf or {}, runs=scale.runs,
                                              entries=scale.credentials), scale)
        if "experiments" in only:
            res["experiments"] = worker("experiments", dict(common, root=str(large),
                                                            small_root=str(small)), scale)
        if "outage" in only:
            res["outage"] = worker("outage", {"trials": 30}, scale)
        if "tui" in only:
            res["tui"] = worker("tui", dict(common, src=str(large), small=str(small), runs=5,
                                           clock=meta["clock_end"] if meta else 0), scale)
        if "team" in only and meta is not None:
            from benchmarks import team

            res["team"] = team.measure(worker, scale, meta, large, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    res["elapsed_s"] = time.perf_counter() - t0
    machine["elapsed"] = f"{res['elapsed_s']:.0f} s"
    load_end = os.getloadavg()
    machine["load"] = (f"1-min load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} "
                       f"at the end (15-min {load_end[2]:.2f}); other work on the machine "
                       "adds noise to every figure")
    write_json(cache_dir(scale) / "results.json", {"machine": machine, "results": res})
    if opts.splice and scale is FULL and "team" in res:
        from benchmarks.team_report import splice

        splice(REPO / "BENCHMARKS.md", res, machine)
    return _render(res, machine, scale, output)


def _render(res: dict[str, Any], machine: dict[str, Any], scale: Scale, output: Path) -> int:
    rows = report.build_rows(res, scale.to_doc())
    print(report.table(rows))
    text = report.markdown(rows, res, machine, scale.to_doc(),
                           REPO / "benchmarks" / "analysis.md" if scale is FULL else None)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"\nwrote {output.relative_to(REPO) if output.is_relative_to(REPO) else output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
