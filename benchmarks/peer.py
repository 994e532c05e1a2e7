"""KeePassXC's keepassxc-cli as the peer: open a 10,000-entry database and show one entry."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks import kdbx
from benchmarks.common import ALPHABET_DEFAULT, Stats, cred_name, timed
from benchmarks.world import log

PASSWORD = "keepassxc benchmark passphrase"


def keepassxc_version() -> str | None:
    exe = shutil.which("keepassxc-cli")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or out.stderr.strip() or "unknown"


def install(log_path: Path) -> str:
    """Try Debian's package (keepassxc; bookworm has no keepassxc-minimal)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get"
    with open(log_path, "w") as fh:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], stdout=fh, stderr=fh, env=env)
        rc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends",
                             "keepassxc"], stdout=fh, stderr=fh, env=env).returncode
    return f"apt-get install keepassxc exited {rc}"


def _show(db: Path, title: str) -> tuple[float, str, int]:
    start = time.perf_counter()
    proc = subprocess.run(["keepassxc-cli", "show", "-q", "-s", "-a", "Password", str(db),
                           title], input=PASSWORD + "\n", capture_output=True, text=True)
    return time.perf_counter() - start, proc.stdout.strip(), proc.returncode


def _ls(db: Path) -> tuple[float, int, int]:
    start = time.perf_counter()
    proc = subprocess.run(["keepassxc-cli", "ls", "-q", str(db)], input=PASSWORD + "\n",
                          capture_output=True, text=True)
    return time.perf_counter() - start, len(proc.stdout.splitlines()), proc.returncode


def run(args: dict[str, Any]) -> dict[str, Any]:
    version = keepassxc_version()
    if version is None:
        return {"present": False, "why": "keepassxc-cli is not installed (Debian package "
                "keepassxc; run the benchmark with --install-peer, as root)"}
    params = args["kdf"]
    n = int(args["entries"])
    runs = int(args["runs"])
    work = Path(args["scratch"]) / "peer"
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(3)
    entries = [(cred_name(i), "admin", "".join(rng.choice(ALPHABET_DEFAULT) for _ in range(24)))
               for i in range(n)]
    big, one = work / f"bench-{n}.kdbx", work / "bench-1.kdbx"
    t_write, _ = timed(lambda: kdbx.write(str(big), PASSWORD, entries, **params))
    kdbx.write(str(one), PASSWORD, entries[:1], **params)
    info = subprocess.run(["keepassxc-cli", "db-info", "-q", str(big)], input=PASSWORD + "\n",
                          capture_output=True, text=True).stdout
    kdf_line = next((ln for ln in info.splitlines() if ln.startswith("KDF:")), "KDF: ?")
    log(f"keepassxc: {kdf_line}")
    picks = [entries[rng.randrange(n)] for _ in range(runs + 1)]
    show_big, show_one, ls_big = [], [], []
    for i, (title, _, password) in enumerate(picks):
        t, value, rc = _show(big, title)
        if rc != 0 or value != password:
            return {"present": True, "ok": False, "why": f"keepassxc-cli show failed ({rc})"}
        t1, _, _ = _show(one, entries[0][0])
        tl, count, _ = _ls(big)
        if i:
            show_big.append(t)
            show_one.append(t1)
            ls_big.append(tl)
    return {"present": True, "ok": True, "version": version, "kdf_line": kdf_line,
            "entries": n, "db_bytes": big.stat().st_size, "write_s": t_write,
            "show_s": Stats.of(show_big).to_doc(), "show_one_entry_db_s":
            Stats.of(show_one).to_doc(), "ls_s": Stats.of(ls_big).to_doc(), "ls_count": count}
