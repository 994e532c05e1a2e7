"""The file backend's layout: vault.json's shape, the shard manifest, validation.

``vault.json`` holds the small tables and the manifest naming the current
content-addressed file of every shard of the large tables (docs/storage.md).
Everything read from it is validated here first: any problem is an
IntegrityError (exit 3), never a half-understood state.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from glasskey.core import canonical
from glasskey.core.errors import IntegrityError

SCHEMA_VERSION = 7
FORMAT = "glasskey-vault"
SHARDS = 64
#: Tables every vault.json has had since schema 1 (parse_state insists on them).
REQUIRED_TABLES = ("meta", "operators", "active", "manifest")
#: Schema 2 added the review queue and the emergency kits; schema 4 the index of
#: credentials that need attention (ROTATION-FAILED, APPLY-PENDING), so alerts
#: never scan 10,000 credentials.
SMALL_TABLES = (*REQUIRED_TABLES, "reviews", "kits", "flags")
SHARDED_TABLES = ("credentials", "sealed", "requests")
GROUPS_KEY = "groups"
#: Schema 7: the table files the previous commit replaced. The generation before
#: still names them, so they stay until the next commit deletes exactly these
#: (garbage collection without listing ``tables/``).
RETIRED_KEY = "retired"
#: Every this many commits (and on a store's first), garbage collection also lists
#: ``tables/``: files a crash left between a write and its commit are named by no
#: generation and retired by no commit, so only a listing finds them.
SWEEP_EVERY = 64
STATE_FILE = "vault.json"
BACKUP_FILE = "vault.json.bak"
LOCK_FILE = ".lock"
TABLES_DIR = "tables"


@dataclass(frozen=True)
class TableLayout:
    """How one large table is split: ``shards`` content-addressed files, named by a
    manifest that is flat in vault.json (``group`` 0) or split into group files of
    ``group`` shard digests each (vault.json names only the groups)."""

    shards: int
    group: int = 0

    @property
    def groups(self) -> int:
        return -(-self.shards // self.group) if self.group else 0

    def group_of(self, index: int) -> int:
        return index // self.group


Layout = dict[str, TableLayout]

#: Schema 7. What an operation pays beyond a small vault is mostly the size of the
#: shard files it reads, re-serialises and hashes (BENCHMARKS.md, "analysis"):
#: with 170,000 closed requests, 10,000 credentials and 250,000 sealed shares,
#: these counts keep every shard near 10-35 kB, and every manifest in small group
#: files (vault.json names 96 group digests).
LAYOUT: Layout = {
    "credentials": TableLayout(256, 16),
    "sealed": TableLayout(1024, 64),
    "requests": TableLayout(8192, 128),
}
#: The legacy layouts, for reading (and migrating) older vaults: schema 3 gave
#: requests 1,024 shards (e9eda24), schema 6 moved their manifest to group files.
_LEGACY_FLAT = TableLayout(SHARDS)


def layout_for(schema: int) -> Layout:
    """The layout a vault of ``schema`` has on disk."""
    if schema >= 7:
        return LAYOUT
    requests = TableLayout(SHARDS) if schema <= 2 else TableLayout(1024, 32 if schema >= 6 else 0)
    return {"credentials": _LEGACY_FLAT, "sealed": _LEGACY_FLAT, "requests": requests}


def state_layout(state: dict[str, Any]) -> Layout:
    meta = state.get("meta", {}).get("vault")
    schema = meta.get("schema") if isinstance(meta, dict) else None
    return layout_for(schema if isinstance(schema, int) else SCHEMA_VERSION)


#: Kept for callers that only need the current shard counts.
TABLE_SHARDS = {name: table.shards for name, table in LAYOUT.items()}

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX2 = re.compile(r"[0-9a-f]{2}")
_TABLE_FILE = re.compile(r"(credentials|sealed|requests)\.g?[0-9a-f]{2,4}\.[0-9a-f]{64}\.json")


@functools.cache
def shard_keys(shards: int) -> frozenset[str]:
    return frozenset(f"{i:02x}" for i in range(shards))


def shard_of(key: str, shards: int = SHARDS) -> int:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    if shards <= 256:
        return digest[0] % shards
    return int.from_bytes(digest[:2], "big") % shards


def shard_file(name: str, index: int, digest: str) -> str:
    return f"{name}.{index:02x}.{digest}.json"


def group_file(name: str, group: int, digest: str) -> str:
    return f"{name}.g{group:02x}.{digest}.json"


def group_digests(state: dict[str, Any], name: str) -> dict[str, str]:
    groups = state.get(GROUPS_KEY, {}).get(name)
    return groups if isinstance(groups, dict) else {}


def check_group(name: str, group: int, doc: Any, fname: str,
                layout: TableLayout) -> dict[str, str]:
    """A parsed group file's shard digests (IntegrityError if malformed)."""
    if (not isinstance(doc, dict) or doc.get("table") != name or doc.get("group") != group
            or not isinstance(doc.get("shards"), dict) or not layout.group):
        raise IntegrityError(f"table file {fname} is malformed")
    shards: dict[str, str] = doc["shards"]
    keys = shard_keys(layout.shards)
    for idx, digest in shards.items():
        if (idx not in keys or layout.group_of(int(idx, 16)) != group
                or not isinstance(digest, str) or not _HEX64.fullmatch(digest)):
            raise IntegrityError(f"table file {fname} is malformed")
    return shards


def retired_files(state: dict[str, Any]) -> list[str]:
    """The table files the commit that wrote ``state`` replaced (IntegrityError if
    malformed: these names are deleted, so each must be a table file name)."""
    names = state.get(RETIRED_KEY, [])
    if not isinstance(names, list) or not all(
            isinstance(n, str) and _TABLE_FILE.fullmatch(n) for n in names):
        raise IntegrityError("vault.json's list of retired table files is malformed")
    return names


def refuse_constant(name: str) -> Any:
    raise ValueError(name)


def parse_state(raw: bytes) -> dict[str, Any]:
    """Validate vault.json's shape; any problem is an IntegrityError (exit 3)."""
    if not raw:
        raise IntegrityError("vault.json is empty; refusing to treat it as a new vault")
    if raw.strip(b"\x00") == b"":
        raise IntegrityError("vault.json is all NUL bytes (a torn write?)")
    state = canonical.loads(raw)
    if not isinstance(state, dict):
        raise IntegrityError("vault.json is not a glasskey vault")
    for name in REQUIRED_TABLES:
        if not isinstance(state.get(name), dict):
            raise IntegrityError("vault.json is not a glasskey vault (missing tables)")
    for name in SMALL_TABLES:
        if name in state and not isinstance(state[name], dict):
            raise IntegrityError(f"vault.json's {name} table is malformed")
    meta = state["meta"].get("vault")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IntegrityError("vault.json is not a glasskey vault")
    schema = meta.get("schema")
    if not isinstance(schema, int) or schema < 1:
        raise IntegrityError("vault.json has an invalid schema version")
    if schema > SCHEMA_VERSION:
        raise IntegrityError(
            f"vault.json is schema {schema}, newer than this glasskey ({SCHEMA_VERSION})"
        )
    if not isinstance(meta.get("vault_id"), str) or not _is_count(meta.get("seq", 0)):
        raise IntegrityError("vault.json has malformed vault metadata")
    if meta.get("audit") is not None and not _is_head(meta["audit"]):
        raise IntegrityError("vault.json records a malformed audit head")
    manifest_files(state)
    retired_files(state)
    return state


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_head(doc: Any) -> bool:
    actors = doc.get("actors", {}) if isinstance(doc, dict) else None
    return (
        isinstance(doc, dict) and _is_count(doc.get("seq")) and _is_count(doc.get("offset"))
        and isinstance(doc.get("hash"), str) and isinstance(actors, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in actors.items())
    )


def manifest_files(state: dict[str, Any]) -> set[str]:
    """The table files the state names itself: flat shard manifests and group files
    (IntegrityError if malformed). The shards inside group files are not included."""
    layout = state_layout(state)
    files: set[str] = set()
    for name, shards in state.get("manifest", {}).items():
        table = layout.get(name)
        if table is None or table.group or not isinstance(shards, dict):
            raise IntegrityError("vault.json manifest is malformed")
        keys = shard_keys(table.shards)
        for idx, digest in shards.items():
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest) or idx not in keys:
                raise IntegrityError("vault.json manifest is malformed")
            files.add(f"{name}.{idx}.{digest}.json")
    groups = state.get(GROUPS_KEY, {})
    if not isinstance(groups, dict):
        raise IntegrityError("vault.json group manifest is malformed")
    for name, digests in groups.items():
        table = layout.get(name)
        if table is None or not table.group or not isinstance(digests, dict):
            raise IntegrityError("vault.json group manifest is malformed")
        for key, digest in digests.items():
            if (not isinstance(digest, str) or not _HEX64.fullmatch(digest)
                    or not isinstance(key, str) or not _HEX2.fullmatch(key)
                    or int(key, 16) >= table.groups):
                raise IntegrityError("vault.json group manifest is malformed")
            files.add(group_file(name, int(key, 16), digest))
    return files


def manifest_entry(state: dict[str, Any], name: str, index: int) -> str | None:
    """The digest of shard ``index`` of ``name``, None for an empty shard."""
    entry = state.get("manifest", {}).get(name)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise IntegrityError("vault.json manifest is malformed")
    value = entry.get(f"{index:02x}")
    if value is not None and not isinstance(value, str):
        raise IntegrityError("vault.json manifest is malformed")
    return value


def table_version(state: dict[str, Any], name: str) -> str:
    """The manifest's digests of ``name``: they change exactly when its contents do."""
    if name in SHARDED_TABLES:
        shards = group_digests(state, name) if state_layout(state)[name].group \
            else state.get("manifest", {}).get(name) or {}
        return ",".join(f"{k}={v}" for k, v in sorted(shards.items()))
    table = state.get(name) or {}
    return hashlib.sha256(canonical.dumps(table)).hexdigest()
