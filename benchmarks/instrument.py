"""Per-component timing of the core's storage and crypto calls (benchmark-only patches).

``Probe`` wraps a fixed list of core functions with timers that add their
inclusive wall time to a per-name total, so a slow operation can be split into
"reading shards", "fsync", "HPKE" and so on. Nothing in core/ is edited: the
wrappers are installed on the live modules and removed by ``close``.

Components nest (``state.replace`` contains ``fs.atomic_write``), so the
report lists them as they are, inclusive; ``commit.cpu`` is derived as the
commit's time minus the I/O calls inside it (serialising and hashing shards
and vault.json).
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

#: (module path, attribute path, component name)
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("glasskey.core.store", "Store._read_state", "state.read"),
    ("glasskey.core.store", "Store._check_witness", "witness.check"),
    ("glasskey.core.store", "Store._verify_to_head", "chain.catch-up+roster"),
    ("glasskey.core.lookups", "verify_seal", "share-set.verify"),
    ("glasskey.core.lookups", "sign_seal", "share-set.sign"),
    ("glasskey.core.lookups", "verify_config", "config.verify"),
    ("glasskey.core.rotation", "verify_config", "config.verify"),
    ("glasskey.core.store", "Store._recover_audit", "audit.recover"),
    ("glasskey.core.store", "Store._read_shard", "shard.read+parse"),
    ("glasskey.core.store", "Store._write_shard", "shard.write+fsync"),
    ("glasskey.core.store", "Store._replace_state", "state.replace"),
    ("glasskey.core.store", "Store._collect_garbage", "state.gc"),
    ("glasskey.core.store", "Transaction._commit", "commit"),
    ("glasskey.core.store", "fsync_dir", "fs.fsync_dir"),
    ("glasskey.core.store", "build_entry", "audit.sign"),
    ("glasskey.core.audit.AuditLog", "append", "audit.append+fsync"),
    ("glasskey.core.crypto.hpke", "seal", "hpke.seal"),
    ("glasskey.core.crypto.hpke", "open_", "hpke.open"),
    ("glasskey.core.crypto.shamir", "split", "shamir.split"),
    ("glasskey.core.crypto.shamir", "combine_checked", "shamir.combine"),
    ("glasskey.core.crypto.shamir", "evaluate_at", "shamir.evaluate"),
    ("glasskey.core.crypto.kdf", "derive_key", "argon2id"),
    ("glasskey.core.connectors.registry", "load", "connector.lookup"),
    ("glasskey.core.witness", "save", "witness.save"),
    ("os", "fsync", "os.fsync"),
    ("glasskey.core.fsutil", "atomic_write", "fs.atomic_write"),
)


def _resolve(module: str, attr: str) -> tuple[Any, str]:
    import importlib

    parts = module.split(".")
    # "glasskey.core.audit.AuditLog" names a class inside a module.
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        break
    else:
        raise ImportError(module)
    *owners, last = attr.split(".")
    for name in owners:
        obj = getattr(obj, name)
    return obj, last


class Probe:
    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[tuple[Any, str, Any]] = []
        # core.audit.build_entry is imported by name into core.store and by
        # fsutil's atomic_write into several modules: patch every alias.
        for module, attr, comp in TARGETS:
            try:
                owner, name = _resolve(module, attr)
            except (ImportError, AttributeError):
                continue
            original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(
                owner, name, None)
            if original is None:
                continue
            self._patch(owner, name, original, comp)
        self._alias("glasskey.core.fsutil", "atomic_write", "fs.atomic_write",
                    ("glasskey.core.store", "glasskey.core.witness"))

    def _wrap(self, fn: Callable[..., Any], comp: str) -> Callable[..., Any]:
        totals, calls = self.totals, self.calls

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[comp] += time.perf_counter() - start
                calls[comp] += 1

        return wrapper

    def _patch(self, owner: Any, name: str, original: Any, comp: str) -> None:
        if isinstance(original, staticmethod | classmethod):
            return
        setattr(owner, name, self._wrap(original, comp))
        self._undo.append((owner, name, original))

    def _alias(self, module: str, name: str, comp: str, users: tuple[str, ...]) -> None:
        import importlib

        original = getattr(importlib.import_module(module), name)
        original = getattr(original, "__wrapped__", original)
        for user in users:
            mod = importlib.import_module(user)
            if getattr(mod, name, None) is not None and not hasattr(
                    getattr(mod, name), "__wrapped__"):
                setattr(mod, name, self._wrap(original, comp))
                self._undo.append((mod, name, original))

    def reset(self) -> None:
        self.totals.clear()
        self.calls.clear()

    def snapshot(self) -> dict[str, float]:
        out = dict(self.totals)
        out["fsync.count"] = float(self.calls.get("os.fsync", 0))
        if "commit" in out:
            io = sum(out.get(k, 0.0) for k in (
                "audit.append+fsync", "shard.write+fsync", "state.replace", "fs.fsync_dir"))
            out["commit.cpu"] = max(0.0, out["commit"] - io)
        return out

    def close(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()
