"""Shared pieces: scales, statistics, operator fixtures, memory."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "benchmarks" / ".cache"
PYTHON = REPO / ".venv" / "bin" / "python"
GLASSKEY = REPO / ".venv" / "bin" / "glasskey"

T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    """How big the "large" vault is and how many repetitions each figure gets."""

    name: str
    credentials: int
    operators: int
    audit_entries: int
    runs: int  # repetitions of each per-operation figure (>= 7)
    verify_runs: int
    fast_kdf: bool  # quick mode: tiny Argon2id so that the run stays short

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Scale:
        return cls(**doc)


FULL = Scale("full", 10_000, 25, 1_000_000, runs=9, verify_runs=3, fast_kdf=False)
QUICK = Scale("quick", 1_000, 25, 100_000, runs=7, verify_runs=3, fast_kdf=True)
SMALL_CREDENTIALS = 10

#: KDF for quick runs (needs GLASSKEY_INSECURE_FAST_KDF=1); never a real vault.
FAST_KDF = {"memory_kib": 1024, "iterations": 1, "lanes": 1}
#: The vault's defaults: Argon2id with 64 MiB and 2 lanes, passes calibrated to 0.5 s
#: (core.operators.OperatorService.kdf_target_seconds, core.crypto.kdf.calibrate).
KDF_TARGET_SECONDS = 0.5
ALPHABET_DEFAULT = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-_.+"


# -- statistics -------------------------------------------------------------------------------
@dataclass
class Stats:
    n: int
    median: float
    min: float
    max: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        vals = sorted(values)
        if not vals:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
        if len(vals) >= 4:
            q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
        else:
            q1, q3 = vals[0], vals[-1]
        return cls(len(vals), statistics.median(vals), vals[0], vals[-1], q1, q3)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def repeat(fn: Callable[[], object], runs: int, warmup: int = 0) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def peak_rss_mib() -> float:
    """This process's peak resident set since its exec (VmHWM).

    Not ``ru_maxrss``: Linux carries that across fork+exec, so a child started by
    a large parent would report the parent's size.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:
        return float("nan")


# -- operators ----------------------------------------------------------------------------------
def op_name(i: int) -> str:
    return f"op{i:02d}"


def op_seed(name: str) -> str:
    """A fixed base32 TOTP seed per benchmark operator (160 bits)."""
    raw = hashlib.sha256(f"glasskey-bench-totp/{name}".encode()).digest()[:20]
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def op_passphrase(name: str) -> str:
    return f"{name} benchmark passphrase, long enough"


def op_roles(i: int) -> tuple[str, ...]:
    """op00/op01 are admins (enrolment needs two); everyone requests and approves."""
    if i < 2:
        return ("requester", "approver", "admin")
    return ("requester", "approver")


def cred_name(i: int) -> str:
    kinds = ("db", "ldap", "root", "svc", "api")
    return f"{kinds[i % len(kinds)]}-{i:05d}.prod"


# -- files --------------------------------------------------------------------------------------
def dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def fingerprint() -> str:
    """Hash of the core code that shapes the on-disk data (informational: see cache_key)."""
    h = hashlib.sha256()
    for path in sorted((REPO / "core").rglob("*.py")):
        h.update(path.relative_to(REPO).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_key() -> str:
    """What a cached vault must match to be reused: the schema and the builder.

    The core changes often; a cache built by an older core whose schema is the
    same still opens (migrations run on the copy). --rebuild forces a new one;
    the report says when the core differs from the one that built the cache.
    """
    from glasskey.core.store import SCHEMA_VERSION

    h = hashlib.sha256((REPO / "benchmarks" / "world.py").read_bytes())
    return f"schema{SCHEMA_VERSION}-{h.hexdigest()[:12]}"


def shard_manifest(root: Path) -> dict[str, dict[str, str]]:
    """{table: {shard index: digest}} of a vault directory, read through the group
    files of tables with a two-level manifest (schema 6)."""
    state = json.loads((root / "vault.json").read_bytes())
    out = {table: dict(shards) for table, shards in state.get("manifest", {}).items()}
    for table, groups in state.get("groups", {}).items():
        shards = out.setdefault(table, {})
        for key, digest in groups.items():
            group = json.loads((root / "tables" / f"{table}.g{key}.{digest}.json").read_bytes())
            shards.update(group["shards"])
    return out
