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
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from glasskey.core.errors import IntegrityError

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


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _too_deep(text: str) -> bool:
    """Nesting depth of ``text`` above MAX_DEPTH, ignoring brackets inside strings.

    Strings are cut out first (a JSON string literal is unambiguous left to
    right), then only the bracket characters are walked, so the cost stays
    small on large documents.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= MAX_DEPTH:
        return False
    cur = 0
    for ch in brackets:
        if ch in "[{":
            cur += 1
            if cur > MAX_DEPTH:
                return True
        else:
            cur -= 1
    return False


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise IntegrityError("number out of range in a stored document")
    return value


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates (\\ud800 escapes): they cannot be written back as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise IntegrityError(
                    "text with an unpaired surrogate in a stored document") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads(data: bytes | str, *, check_depth: bool = True) -> Any:
    """Parse strict JSON; every failure is an IntegrityError.

    Whatever this accepts, ``dumps`` can write back: non-finite numbers
    (NaN, Infinity, 1e999) and unpaired surrogates are refused here.
    """
    try:
        if isinstance(data, bytes):
            text = data.decode("utf-8")
        else:
            text = data
            text.encode("utf-8")  # a str may carry raw surrogates
        if check_depth and (text.count("[") + text.count("{")) > MAX_DEPTH and _too_deep(text):
            # Checked before the recursive parser sees hostile nesting.
            raise IntegrityError("document nested too deeply")
        value = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
        if _SURROGATE_ESCAPE.search(text):
            _check_strings(value)
        return value
    except IntegrityError:
        raise
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise IntegrityError(f"not valid JSON ({type(exc).__name__})") from None


def loads_canonical(data: bytes) -> Any:
    """Parse and insist the bytes are exactly what ``dumps`` would write."""
    value = loads(data)
    try:
        again = dumps(value)
    except (ValueError, UnicodeError):
        raise IntegrityError("document cannot be written canonically") from None
    if again != data:
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
