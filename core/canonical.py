"""Canonical JSON and strict base64: one byte string per value.

Audit lines are hashed and signed as bytes, so the same entry must always
serialise to the same bytes, and a parser must refuse anything a canonical
writer would not produce (duplicate keys, NaN/Infinity, non-canonical base64,
unknown fields): the age project's malleability lesson. Every refusal is a
typed IntegrityError, never a bare ValueError.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from core.errors import IntegrityError

MAX_DEPTH = 32


def dumps(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in pairs:
        if key in out:
            raise IntegrityError(f"duplicate key {key!r} in a signed or stored document")
        out[key] = val
    return out


def _refuse_constant(name: str) -> Any:
    raise IntegrityError(f"non-finite number {name} in a stored document")


def _depth(value: Any, limit: int = MAX_DEPTH) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, d = stack.pop()
        if d > limit:
            raise IntegrityError("document nested too deeply")
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)


def loads(data: bytes | str, *, check_depth: bool = True) -> Any:
    """Parse strict JSON; every failure is an IntegrityError."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if check_depth and (text.count("[") + text.count("{")) > MAX_DEPTH:
            # Cheap pre-check before the recursive parser sees hostile nesting.
            depth = cur = 0
            for ch in text:
                if ch in "[{":
                    cur += 1
                    depth = max(depth, cur)
                elif ch in "]}":
                    cur -= 1
            if depth > MAX_DEPTH:
                raise IntegrityError("document nested too deeply")
        return json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant
        )
    except IntegrityError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntegrityError(f"not valid JSON ({type(exc).__name__})") from None


def loads_canonical(data: bytes) -> Any:
    """Parse and insist the bytes are exactly what ``dumps`` would write."""
    value = loads(data)
    if dumps(value) != data:
        raise IntegrityError("document is not in canonical form")
    return value


def b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64d(text: str) -> bytes:
    """Strict standard base64: the only accepted spelling is the canonical one."""
    if not isinstance(text, str):
        raise IntegrityError("expected base64 text")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise IntegrityError("invalid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise IntegrityError("non-canonical base64")
    return raw


def require_fields(doc: Mapping[str, Any], required: Iterable[str], what: str,
                   optional: Iterable[str] = ()) -> None:
    """Refuse a signed structure with missing or unknown fields."""
    req = set(required)
    allowed = req | set(optional)
    keys = set(doc)
    missing = req - keys
    unknown = keys - allowed
    if missing:
        raise IntegrityError(f"{what} lacks field(s) {', '.join(sorted(missing))}")
    if unknown:
        raise IntegrityError(f"{what} has unknown field(s) {', '.join(sorted(unknown))}")
