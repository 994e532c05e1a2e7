"""The file backend's layout: vault.json's shape, the shard manifest, validation.

``vault.json`` holds the small tables and the manifest naming the current
content-addressed file of every shard of the large tables (docs/storage.md).
Everything read from it is validated here first: any problem is an
IntegrityError (exit 3), never a half-understood state.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from glasskey.core import canonical
from glasskey.core.errors import IntegrityError

SCHEMA_VERSION = 6
FORMAT = "glasskey-vault"
SHARDS = 64
#: Shards per large table. Checkout history grows without bound (about 170,000
#: requests behind 1,000,000 audit entries), so requests get more, smaller
#: shards: a checkout rewrites one ~150 kB shard instead of one of ~2.4 MB
#: (schema 3; BENCHMARKS.md has the before and after).
TABLE_SHARDS = {"credentials": SHARDS, "sealed": SHARDS, "requests": 1024}
#: Tables every vault.json has had since schema 1 (parse_state insists on them).
REQUIRED_TABLES = ("meta", "operators", "active", "manifest")
#: Schema 2 added the review queue and the emergency kits; schema 4 the index of
#: credentials that need attention (ROTATION-FAILED, APPLY-PENDING), so alerts
#: never scan 10,000 credentials.
SMALL_TABLES = (*REQUIRED_TABLES, "reviews", "kits", "flags")
SHARDED_TABLES = ("credentials", "sealed", "requests")
#: Schema 6: a table with more shards than SHARDS keeps its shard manifest in
#: content-addressed *group* files of GROUP_SIZE entries; vault.json's ``groups``
#: names only the groups' digests (32 for requests instead of 1,024 shard
#: digests), so every transaction parses, and every commit writes twice, a
#: small vault.json (BENCHMARKS.md, "analysis", change 1).
GROUP_SIZE = 32
GROUPS_KEY = "groups"
STATE_FILE = "vault.json"
BACKUP_FILE = "vault.json.bak"
LOCK_FILE = ".lock"
TABLES_DIR = "tables"

_SHARD_KEYS = {name: frozenset(f"{i:02x}" for i in range(TABLE_SHARDS.get(name, SHARDS)))
               for name in SHARDED_TABLES}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX2 = re.compile(r"[0-9a-f]{2}")


def shard_of(key: str, shards: int = SHARDS) -> int:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    if shards <= 256:
        return digest[0] % shards
    return int.from_bytes(digest[:2], "big") % shards


def shard_file(name: str, index: int, digest: str) -> str:
    return f"{name}.{index:02x}.{digest}.json"


def group_file(name: str, group: int, digest: str) -> str:
    return f"{name}.g{group:02x}.{digest}.json"


def grouped(state: dict[str, Any], name: str) -> bool:
    """Whether ``name``'s shard manifest lives in group files (schema 6) in ``state``
    (a schema-5 state, not yet migrated, still names its shards in vault.json)."""
    return TABLE_SHARDS.get(name, SHARDS) > SHARDS and name not in state.get("manifest", {})


def group_digests(state: dict[str, Any], name: str) -> dict[str, str]:
    groups = state.get(GROUPS_KEY, {}).get(name)
    return groups if isinstance(groups, dict) else {}


def check_group(name: str, group: int, doc: Any, fname: str) -> dict[str, str]:
    """A parsed group file's shard digests (IntegrityError if malformed)."""
    if (not isinstance(doc, dict) or doc.get("table") != name or doc.get("group") != group
            or not isinstance(doc.get("shards"), dict)):
        raise IntegrityError(f"table file {fname} is malformed")
    shards: dict[str, str] = doc["shards"]
    keys = _SHARD_KEYS.get(name, frozenset())
    for idx, digest in shards.items():
        if (idx not in keys or int(idx, 16) // GROUP_SIZE != group
                or not isinstance(digest, str) or not _HEX64.fullmatch(digest)):
            raise IntegrityError(f"table file {fname} is malformed")
    return shards


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
    """The shard file names the state references (IntegrityError if malformed)."""
    files: set[str] = set()
    for name, shards in state.get("manifest", {}).items():
        if name not in SHARDED_TABLES or not isinstance(shards, dict):
            raise IntegrityError("vault.json manifest is malformed")
        for idx, digest in shards.items():
            if (not isinstance(digest, str) or not _HEX64.fullmatch(digest)
                    or idx not in _SHARD_KEYS[name]):
                raise IntegrityError("vault.json manifest is malformed")
            files.add(f"{name}.{idx}.{digest}.json")
    groups = state.get(GROUPS_KEY, {})
    if not isinstance(groups, dict):
        raise IntegrityError("vault.json group manifest is malformed")
    for name, digests in groups.items():
        if name not in SHARDED_TABLES or not isinstance(digests, dict):
            raise IntegrityError("vault.json group manifest is malformed")
        count = -(-TABLE_SHARDS.get(name, SHARDS) // GROUP_SIZE)
        for key, digest in digests.items():
            if (not isinstance(digest, str) or not _HEX64.fullmatch(digest)
                    or not isinstance(key, str) or not _HEX2.fullmatch(key)
                    or int(key, 16) >= count):
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
        shards = group_digests(state, name) if grouped(state, name) \
            else state.get("manifest", {}).get(name) or {}
        return ",".join(f"{k}={v}" for k, v in sorted(shards.items()))
    table = state.get(name) or {}
    return hashlib.sha256(canonical.dumps(table)).hexdigest()
