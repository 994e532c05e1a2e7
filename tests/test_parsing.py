"""Parsing discipline: canonical encoding (P1) and hostile vault files (P2).

P1: whatever ``canonical.loads`` accepts re-serialises byte-for-byte and
round-trips through ``loads_canonical``; non-canonical base64, duplicate keys,
NaN/Infinity, non-canonical spellings and unknown fields in signed
structures are refused, and only ever with ``IntegrityError``.

P2: a damaged or hostile ``vault.json`` (truncated at every byte offset,
empty, all NUL, trailing garbage, bad UTF-8, deep nesting, duplicate keys,
non-finite numbers, wrong shapes) is refused with ``IntegrityError`` (exit
code 3) within 2 s, and the file is never re-initialised or rewritten.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from glasskey.core import canonical
from glasskey.core.errors import GlasskeyError, IntegrityError
from glasskey.core.store import TABLE_SHARDS, Store, shard_of
from glasskey.core.vault import Vault
from helpers import StoreEnv, VaultEnv, increment, sha256_file, shard_digests, tree_digest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

# -- P1: canonical JSON ---------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


REFUSED = object()


def _only_integrity_errors(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; IntegrityError means REFUSED, any other exception fails the test."""
    try:
        return fn()
    except IntegrityError:
        return REFUSED


@given(json_values)
@example({"reason": "[" * 40 + "{" * 40})  # brackets inside strings are not nesting
@example(["\u00e9", "\U0001f600", "\x00", "\u2028"])
@example(-0.0)
@example(1e308)
def test_p1_canonical_round_trip(value: Any) -> None:
    data = canonical.dumps(value)
    parsed = canonical.loads_canonical(data)
    assert canonical.dumps(parsed) == data
    assert parsed == value
    assert canonical.loads(data) == value


def _mutations(data: bytes, draw: st.DrawFn) -> bytes:
    ops = draw(st.lists(st.tuples(st.sampled_from(["ins", "del", "rep"]),
                                  st.integers(0, max(0, len(data))),
                                  st.sampled_from(list(b'[]{}",:.-+eE0123456789 \\u/x\x00\xff'
                                                       b'tfnaNIy\n'))),
                        min_size=1, max_size=4))
    out = bytearray(data)
    for op, pos, byte in ops:
        pos = min(pos, len(out))
        if op == "ins":
            out.insert(pos, byte)
        elif out and pos < len(out):
            if op == "del":
                del out[pos]
            else:
                out[pos] = byte
    return bytes(out)


@st.composite
def near_json(draw: st.DrawFn) -> bytes:
    """Canonical encodings of random values with a few random edits."""
    return _mutations(canonical.dumps(draw(json_values)), draw)


@given(st.one_of(near_json(), st.binary(max_size=64),
                 st.text(alphabet='[]{}",:.-+eE0123456789 \\ubdfNaIy', max_size=40)
                 .map(lambda s: s.encode())))
@example(b"1e400")
@example(b"-1e999")
@example(b'"\\ud800"')
@example(b'{"a":"\\udfff"}')
@example(b'["\\ud83d"]')
@example(b"1" * 5000)
@example(b"\xef\xbb\xbf{}")
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_p1_whatever_parses_reserialises(data: bytes) -> None:
    value = _only_integrity_errors(lambda: canonical.loads(data))
    strict = _only_integrity_errors(lambda: canonical.loads_canonical(data))
    if value is REFUSED:
        assert strict is REFUSED
        return
    # Parsed: it must serialise canonically and that form must parse back the same.
    again = canonical.dumps(value)
    assert canonical.loads_canonical(again) == value
    if strict is not REFUSED:
        assert canonical.dumps(strict) == data
        assert strict == value


@given(st.text())
def test_p1_text_input_refused_only_with_integrity_error(text: str) -> None:
    value = _only_integrity_errors(lambda: canonical.loads(text))
    if value is not REFUSED:
        assert canonical.loads_canonical(canonical.dumps(value)) == value


@pytest.mark.parametrize("text", [
    '{"a":1,"a":1}', '{"a":{"b":1,"b":2}}', '[{"x":1,"y":2,"x":3}]',
    "NaN", "Infinity", "-Infinity", '{"t":NaN}', "[1e400]", "-1e400", '{"a":1E999}',
    '"\\ud800"', '["ok","\\udbff"]', '{"\\udc00":1}',
])
def test_p1_refused_with_integrity_error(text: str) -> None:
    for data in (text, text.encode()):
        with pytest.raises(IntegrityError):
            canonical.loads(data)
        with pytest.raises(IntegrityError):
            canonical.loads_canonical(data.encode() if isinstance(data, str) else data)


@pytest.mark.parametrize("data", [
    b'{"b":1,"a":2}', b'{"a": 1}', b' {"a":1}', b'{"a":1}\n', b'{"a":1.0E2}', b'{"a":-0}',
    b'{"a":"\\u00e9"}', b'{"a":"\\/"}', b'[1.50]', b'{"a":true }',
])
def test_p1_non_canonical_spellings_refused(data: bytes) -> None:
    canonical.loads(data)  # valid JSON ...
    with pytest.raises(IntegrityError):
        canonical.loads_canonical(data)  # ... but not the one canonical spelling


@given(st.binary(min_size=1, max_size=48))
def test_p1_base64_only_canonical_spelling(raw: bytes) -> None:
    good = base64.b64encode(raw).decode()
    assert canonical.b64d(good) == raw
    variants = {
        good.rstrip("="),                          # padding dropped
        good + "=",                                # extra padding
        good + "====",
        good[:2] + "\n" + good[2:],                # whitespace inside
        " " + good,
        good + "\n",
        good.replace("+", "-").replace("/", "_"),  # url-safe alphabet
        good + "A",                                # not a multiple of 4
        good[:-1],
    }
    if good.endswith("="):
        # Set the unused low bits of the last data character (same bytes, other text).
        stripped = good.rstrip("=")
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = alphabet.index(stripped[-1])
        pad = len(good) - len(stripped)
        for bit in range(2 if pad == 1 else 4):
            variants.add(stripped[:-1] + alphabet[last | (1 << bit)] + "=" * pad)
    variants.discard(good)
    for text in variants:
        with pytest.raises(IntegrityError):
            canonical.b64d(text)


@pytest.mark.parametrize("value", [None, 12, b"QUJD", ["QUJD"], "QUJD\u00e9", "Q\x00JD"])
def test_p1_base64_wrong_types_refused(value: Any) -> None:
    with pytest.raises(IntegrityError):
        canonical.b64d(value)


def test_p1_unknown_and_missing_fields_refused() -> None:
    canonical.require_fields({"a": 1, "b": 2}, ("a",), "thing", optional=("b",))
    with pytest.raises(IntegrityError, match="unknown field"):
        canonical.require_fields({"a": 1, "evil": 2}, ("a",), "thing")
    with pytest.raises(IntegrityError, match="lacks field"):
        canonical.require_fields({"b": 2}, ("a",), "thing", optional=("b",))


# -- P2: hostile vault.json ----------------------------------------------------------------

BOUND = 2.0  # seconds; a loose bound, not a benchmark


def _refused(root: Path) -> None:
    """Every way of opening the vault refuses with exit code 3, quickly, without writing."""
    state = root / "vault.json"
    before = sha256_file(state)
    others = tree_digest(root, skip=("vault.json",))
    for attempt in (_open_read, _open_write):
        start = time.monotonic()
        with pytest.raises(IntegrityError) as info:
            attempt(root)
        assert time.monotonic() - start < BOUND
        assert info.value.exit_code == 3
    assert sha256_file(state) == before
    assert tree_digest(root, skip=("vault.json",)) == others


def _open_read(root: Path) -> None:
    with Store(root).read() as txn:
        list(txn.table("requests").values())


def _open_write(root: Path) -> None:
    with Store(root).transaction() as txn:
        list(txn.table("requests").values())
        txn.table("meta").put("touched", {"x": 1})


@pytest.fixture
def small_vault(store_env: StoreEnv) -> StoreEnv:
    for _ in range(3):
        increment(store_env.store, store_env.signer)
    return store_env


def test_p2_truncation_at_every_byte_offset(small_vault: StoreEnv) -> None:
    root = small_vault.root
    state = root / "vault.json"
    original = state.read_bytes()
    assert len(original) > 300
    others = tree_digest(root, skip=("vault.json",))
    slowest = 0.0
    for cut in range(len(original)):
        state.write_bytes(original[:cut])
        for attempt in (_open_read, _open_write):
            start = time.monotonic()
            with pytest.raises(IntegrityError):
                attempt(root)
            slowest = max(slowest, time.monotonic() - start)
        assert state.read_bytes() == original[:cut], f"rewritten after truncation at {cut}"
    assert slowest < BOUND
    assert tree_digest(root, skip=("vault.json",)) == others
    state.write_bytes(original)
    _open_write(root)  # the intact file still works


def test_p2_real_vault_truncations(vault2: VaultEnv) -> None:
    """A real vault with operators: a sample of cuts through its larger vault.json."""
    state = vault2.root / "vault.json"
    original = state.read_bytes()
    for cut in sorted({0, 1, len(original) // 2, len(original) - 1,
                       *range(0, len(original), max(1, len(original) // 97))}):
        state.write_bytes(original[:cut])
        _refused(vault2.root)
        with pytest.raises(IntegrityError):
            Vault(vault2.root, vault2.clock, allow_weak_kdf=True).operators()
        with pytest.raises(IntegrityError):
            Vault(vault2.root, vault2.clock, allow_weak_kdf=True).unlock("alice", vault2.passphrases["alice"],
                                                    vault2.code("alice"))


def _vid(raw: bytes) -> bytes:
    """The quoted vault id in a vault.json (a digest of the founding, so it varies)."""
    i = raw.index(b'"vault_id":"') + len(b'"vault_id":')
    return raw[i:raw.index(b'"', i + 1) + 1]


def _replace_first(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert old in raw, old
    return raw.replace(old, new, 1)


def _schema(raw: bytes, new: bytes) -> bytes:
    """Replace the schema number (whatever the current one is) with ``new``."""
    out, n = re.subn(rb'"schema":\d+', lambda _: new, raw, count=1)
    assert n == 1
    return out


HOSTILE: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda raw: b"",
    "all-nul": lambda raw: b"\x00" * len(raw),
    "one-nul": lambda raw: b"\x00",
    "nul-tail": lambda raw: raw[: len(raw) // 2] + b"\x00" * (len(raw) - len(raw) // 2),
    "trailing-garbage": lambda raw: raw + b"garbage",
    "trailing-object": lambda raw: raw + b"{}",
    "trailing-nul": lambda raw: raw + b"\x00",
    "two-documents": lambda raw: raw + b"\n" + raw,
    "bom": lambda raw: b"\xef\xbb\xbf" + raw,
    "bad-utf8": lambda raw: _replace_first(raw, _vid(raw), b'"vt\xffst"'),
    "overlong-utf8": lambda raw: _replace_first(raw, _vid(raw), b'"vt\xc0\xafst"'),
    "utf8-surrogate": lambda raw: _replace_first(raw, _vid(raw), b'"vt\xed\xa0\x80st"'),
    "latin1": lambda raw: raw.decode().replace(_vid(raw).decode()[1:-1], "vt\u00e9st").encode("latin-1"),
    "escaped-lone-surrogate": lambda raw: _replace_first(raw, _vid(raw), b'"vt\\ud800st"'),
    "deep-nesting-open": lambda raw: b"[" * 100_000,
    "deep-nesting-balanced": lambda raw: b"[" * 100_000 + b"]" * 100_000,
    "deep-object": lambda raw: b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep-inside": lambda raw: _replace_first(raw, b'"active":{}',
                                              b'"active":{"x":' + b"[" * 5000 + b"]" * 5000
                                              + b"}"),
    "duplicate-top-key": lambda raw: _replace_first(raw, b"{", b'{"meta":{},'),
    "duplicate-inner-key": lambda raw: _replace_first(raw, b'"format":', b'"schema":1,"format":'),
    "nan": lambda raw: _schema(raw, b'"schema":NaN'),
    "infinity": lambda raw: _schema(raw, b'"schema":Infinity'),
    "huge-float": lambda raw: _schema(raw, b'"schema":1e999'),
    "huge-int": lambda raw: _schema(raw, b'"schema":' + b"9" * 5000),
    "json-array": lambda raw: b"[]",
    "json-null": lambda raw: b"null",
    "json-string": lambda raw: b'"glasskey-vault"',
    "empty-object": lambda raw: b"{}",
    "tinydb-default": lambda raw: b'{"_default": {}}',
    "foreign-format": lambda raw: _replace_first(raw, b'"glasskey-vault"', b'"other"'),
    "future-schema": lambda raw: _schema(raw, b'"schema":99'),
    "schema-string": lambda raw: _schema(raw, b'"schema":"1"'),
    "no-vault-id": lambda raw: _replace_first(raw, b'"vault_id":' + _vid(raw), b'"vault_idx":"v"'),
    "vault-id-number": lambda raw: _replace_first(raw, b'"vault_id":' + _vid(raw), b'"vault_id":7'),
    "seq-string": lambda raw: _edit(raw, lambda s: s["meta"]["vault"].update(seq="x")),
    "audit-head-string": lambda raw: _edit(raw, lambda s: s["meta"]["vault"].update(audit="x")),
    "audit-head-bad-seq": lambda raw: _edit(
        raw, lambda s: s["meta"]["vault"]["audit"].update(seq="a")),
    "audit-head-bad-actors": lambda raw: _edit(
        raw, lambda s: s["meta"]["vault"]["audit"].update(actors=[1])),
    "audit-head-negative-offset": lambda raw: _edit(
        raw, lambda s: s["meta"]["vault"]["audit"].update(offset=-5)),
    "tables-missing": lambda raw: _edit(raw, lambda s: s.pop("operators")),
    "table-is-list": lambda raw: _edit(raw, lambda s: s.update(active=[])),
    "manifest-list": lambda raw: _edit(raw, lambda s: s["manifest"].update(requests=[])),
    "manifest-path": lambda raw: _edit(raw, lambda s: s["manifest"].update(
        requests={f"{shard_of('counter', TABLE_SHARDS['requests']):02x}": "../../../etc/passwd"})),
    "manifest-number": lambda raw: _edit(raw, lambda s: s["manifest"].update(
        requests={f"{shard_of('counter', TABLE_SHARDS['requests']):02x}": 5})),
    "manifest-bad-index": lambda raw: _edit(raw, lambda s: s["manifest"].update(
        requests={"zz": "0" * 64})),
    "manifest-missing-shard": lambda raw: _edit(raw, lambda s: s["manifest"].update(
        requests={f"{shard_of('counter', TABLE_SHARDS['requests']):02x}": "ab" * 32})),
    "groups-list": lambda raw: _edit(raw, lambda s: s.update(groups=[])),
    "groups-path": lambda raw: _edit(raw, lambda s: s.update(
        groups={"requests": {"00": "../../../etc/passwd"}})),
    "groups-bad-index": lambda raw: _edit(raw, lambda s: s.update(
        groups={"requests": {"zz": "0" * 64}})),
    "groups-out-of-range": lambda raw: _edit(raw, lambda s: s.update(
        groups={"requests": {"20": "0" * 64}})),
    "groups-missing-file": lambda raw: _edit(raw, lambda s: s.update(
        groups={"requests": {"00": "ab" * 32}})),
}


def _edit(raw: bytes, change: Callable[[dict[str, Any]], Any]) -> bytes:
    state = json.loads(raw)
    change(state)
    return canonical.dumps(state)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_p2_hostile_vault_json(small_vault: StoreEnv, name: str) -> None:
    state = small_vault.root / "vault.json"
    state.write_bytes(HOSTILE[name](state.read_bytes()))
    _refused(small_vault.root)


def test_p2_pretty_printed_is_not_damage(small_vault: StoreEnv) -> None:
    """Control: an equivalent but reformatted file is still a vault (the checks
    above refuse damage, not formatting)."""
    state = small_vault.root / "vault.json"
    state.write_bytes(json.dumps(json.loads(state.read_bytes()), indent=2).encode())
    _open_read(small_vault.root)
    _open_write(small_vault.root)


def _current_shard(root: Path, table: str, key: str) -> Path:
    """The shard file the current vault.json names for ``key``."""
    index = shard_of(key, TABLE_SHARDS[table])
    digest = shard_digests(root, table)[f"{index:02x}"]
    return root / "tables" / f"{table}.{index:02x}.{digest}.json"


def test_p2_tampered_shard_refused(small_vault: StoreEnv) -> None:
    shard = _current_shard(small_vault.root, "requests", "counter")
    original = shard.read_bytes()
    tampered = original.replace(b'"n":3', b'"n":9')
    assert tampered != original
    for content in (tampered, original + b" ", original[:-1], b"", b"\x00" * len(original)):
        shard.write_bytes(content)
        before = tree_digest(small_vault.root)
        for attempt in (_open_read, _open_write):
            with pytest.raises(IntegrityError, match="does not match its recorded hash"):
                attempt(small_vault.root)
        assert tree_digest(small_vault.root) == before
    shard.write_bytes(original)
    _open_write(small_vault.root)


def test_p2_missing_shard_is_an_integrity_error(small_vault: StoreEnv) -> None:
    _current_shard(small_vault.root, "requests", "counter").unlink()
    before = tree_digest(small_vault.root)
    for attempt in (_open_read, _open_write):
        with pytest.raises(IntegrityError, match="missing"):
            attempt(small_vault.root)
    assert tree_digest(small_vault.root) == before


def test_p2_reader_outpaced_by_two_commits_gets_a_typed_error(small_vault: StoreEnv) -> None:
    """A lock-free reader whose generation was collected under it gets a typed
    'try again' error, never a crash (RuntimeError from the context manager)."""
    store = small_vault.store
    with pytest.raises(GlasskeyError) as info, Store(small_vault.root).read() as txn:
        increment(store, small_vault.signer)
        increment(store, small_vault.signer)
        txn.table("requests").get("counter")
    assert not isinstance(info.value, IntegrityError)
    assert "try again" in str(info.value)
