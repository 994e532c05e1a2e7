"""C2: AES-256-GCM envelope (core.crypto.aead).

Known answers come from Wycheproof (keySize 256, ivSize 96, tagSize 128, the
only shape glasskey uses); the rest checks the envelope's own promises: one
opaque error, AAD binding, and no repeated nonces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from glasskey.core.crypto import aead
from glasskey.core.errors import DecryptError, UsageError
from hypothesis import given
from hypothesis import strategies as st

VECTORS = Path(__file__).parent / "vectors" / "wycheproof" / "aes_gcm_test.json"


def _cases() -> list[Any]:
    data = json.loads(VECTORS.read_text())
    out = []
    for group in data["testGroups"]:
        if (group["keySize"], group["ivSize"], group["tagSize"]) != (256, 96, 128):
            continue
        for t in group["tests"]:
            out.append(pytest.param(t, id=f"tc{t['tcId']}-{t['result']}"))
    return out


CASES = _cases()


class FixedRandom:
    """Hands out predetermined bytes, so encryption becomes a known answer."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def bytes(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out


def test_vector_subset_is_present() -> None:
    assert len(CASES) == 66  # 39 valid + 27 invalid in the pinned Wycheproof file


@pytest.mark.parametrize("t", CASES)
def test_wycheproof(t: dict[str, Any]) -> None:
    key = bytes.fromhex(t["key"])
    blob = bytes.fromhex(t["iv"] + t["ct"] + t["tag"])
    aad = bytes.fromhex(t["aad"])
    if t["result"] == "valid":
        assert aead.decrypt(key, blob, aad) == bytes.fromhex(t["msg"])
        # Encryption with the vector's IV as "random" nonce is the same known answer.
        iv = bytes.fromhex(t["iv"])
        assert aead.encrypt(key, bytes.fromhex(t["msg"]), aad, FixedRandom(iv)) == blob
    else:
        with pytest.raises(DecryptError):
            aead.decrypt(key, blob, aad)


KEY = bytes(range(32))
AAD = aead.aad_for("glasskey/secret/v1", "vault-1", "cred-a", 1)


def test_round_trip_and_empty_plaintext() -> None:
    for pt in (b"", b"x", b"hunter2" * 100):
        assert aead.decrypt(KEY, aead.encrypt(KEY, pt, AAD), AAD) == pt


def test_blob_layout() -> None:
    blob = aead.encrypt(KEY, b"abc", AAD)
    assert len(blob) == aead.NONCE_LEN + 3 + aead.TAG_LEN


def test_every_flipped_bit_raises() -> None:
    blob = aead.encrypt(KEY, b"correct horse battery", AAD)
    for i in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(DecryptError):
            aead.decrypt(KEY, bytes(bad), AAD)


def test_truncated_and_extended_blobs_raise() -> None:
    blob = aead.encrypt(KEY, b"secret", AAD)
    for n in range(len(blob)):
        with pytest.raises(DecryptError):
            aead.decrypt(KEY, blob[:n], AAD)
    with pytest.raises(DecryptError):
        aead.decrypt(KEY, blob + b"\x00", AAD)


@pytest.mark.parametrize(
    "other",
    [
        ("glasskey/secret/v1", "vault-1", "cred-b", 1),  # another credential
        ("glasskey/secret/v1", "vault-1", "cred-a", 2),  # another version
        ("glasskey/secret/v1", "vault-2", "cred-a", 1),  # another vault
        ("glasskey/secret/v2", "vault-1", "cred-a", 1),  # another format label
    ],
    ids=["credential", "version", "vault", "label"],
)
def test_blob_moved_to_other_aad_fails(other: tuple[str | int, ...]) -> None:
    blob = aead.encrypt(KEY, b"secret", AAD)
    with pytest.raises(DecryptError):
        aead.decrypt(KEY, blob, aead.aad_for(*other))


def test_wrong_key_and_bad_key_length_are_the_same_opaque_error() -> None:
    blob = aead.encrypt(KEY, b"secret", AAD)
    errors = []
    for key in (bytes(32), KEY[:16], KEY + b"\x00", b""):
        with pytest.raises(DecryptError) as info:
            aead.decrypt(key, blob, AAD)
        errors.append(info.value)
    assert {str(e) for e in errors} == {"cannot decrypt"}
    # Nothing chained that would tell a caller *why* it failed.
    assert all(e.__cause__ is None and e.__context__ is None for e in errors)


def test_encrypt_refuses_bad_key_and_bad_rng() -> None:
    with pytest.raises(UsageError):
        aead.encrypt(KEY[:16], b"x", AAD)
    with pytest.raises(UsageError):
        aead.encrypt(KEY, b"x", AAD, FixedRandom(b"short"))


def test_nonces_come_from_injected_rng() -> None:
    blob = aead.encrypt(KEY, b"x", AAD, FixedRandom(b"\xab" * 12))
    assert blob[:12] == b"\xab" * 12


def test_100000_encryptions_repeat_no_nonce() -> None:
    seen = {aead.encrypt(KEY, b"", AAD)[:12] for _ in range(100_000)}
    assert len(seen) == 100_000


# --- aad_for ---------------------------------------------------------------


def test_aad_for_is_unambiguous() -> None:
    assert aead.aad_for("ab", "c") != aead.aad_for("a", "bc")
    assert aead.aad_for(1) != aead.aad_for("1")
    assert aead.aad_for("a") != aead.aad_for("a", "")
    assert aead.aad_for() != aead.aad_for("")
    assert aead.aad_for(12, 3) != aead.aad_for(1, 23)


def test_aad_for_known_encoding() -> None:
    # count=2 | 's' len=1 "a" | 'i' len=2 "-5"
    assert aead.aad_for("a", -5) == (
        b"\x00\x00\x00\x02" + b"s\x00\x00\x00\x01a" + b"i\x00\x00\x00\x02-5"
    )


@pytest.mark.parametrize("bad", [True, 1.5, b"bytes", None, "\ud800"])
def test_aad_for_rejects_other_types(bad: Any) -> None:
    with pytest.raises(UsageError):
        aead.aad_for("label", bad)


_part = st.one_of(st.text(max_size=6), st.integers(min_value=-(10**6), max_value=10**6))


@given(st.lists(_part, max_size=4), st.lists(_part, max_size=4))
def test_aad_for_is_injective(a: list[str | int], b: list[str | int]) -> None:
    same_parts = [(type(x), x) for x in a] == [(type(y), y) for y in b]
    assert (aead.aad_for(*a) == aead.aad_for(*b)) == same_parts
