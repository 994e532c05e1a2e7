"""C6 (primitive part): Ed25519 signatures (core.crypto.sign).

Wycheproof's ``ed25519_test.json`` pins verification (valid signatures
verify, malleated / non-canonical / truncated ones do not); RFC 8032 §7.1
TEST 1 pins signing byte-exactly, which is what golden audit lines rely on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from glasskey.core.crypto import sign
from glasskey.core.errors import IntegrityError

VECTORS = Path(__file__).parent / "vectors" / "wycheproof" / "ed25519_test.json"


def _cases() -> list[Any]:
    data = json.loads(VECTORS.read_text())
    out = []
    for group in data["testGroups"]:
        pk = group["publicKey"]["pk"]
        for t in group["tests"]:
            out.append(pytest.param(pk, t, id=f"tc{t['tcId']}-{t['result']}"))
    return out


CASES = _cases()


def test_vector_count() -> None:
    assert len(CASES) == 151


@pytest.mark.parametrize(("pk", "t"), CASES)
def test_wycheproof(pk: str, t: dict[str, Any]) -> None:
    ok = sign.verify(bytes.fromhex(pk), bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"]))
    assert ok is (t["result"] == "valid")


# RFC 8032 §7.1 TEST 1 (empty message).
RFC_SK = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PK = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_test1_known_answer() -> None:
    assert sign.public_from_private(RFC_SK) == RFC_PK
    assert sign.sign(RFC_SK, b"") == RFC_SIG
    assert sign.verify(RFC_PK, b"", RFC_SIG)


def test_round_trip_and_tampered_message() -> None:
    priv = sign.generate_private()
    pub = sign.public_from_private(priv)
    msg = b'{"seq":1,"event":"checkout.approved","cred":"db-root"}'
    sig = sign.sign(priv, msg)
    assert len(sig) == 64 and sig == sign.sign(priv, msg)  # deterministic
    assert sign.verify(pub, msg, sig)
    assert not sign.verify(pub, msg + b" ", sig)
    assert not sign.verify(pub, msg.replace(b"1", b"2"), sig)
    for i in range(len(msg) * 8):
        bad = bytearray(msg)
        bad[i // 8] ^= 1 << (i % 8)
        assert not sign.verify(pub, bytes(bad), sig)


def test_tampered_signature_and_wrong_key_fail() -> None:
    priv = sign.generate_private()
    pub = sign.public_from_private(priv)
    sig = sign.sign(priv, b"line")
    for i in range(64 * 8):
        bad = bytearray(sig)
        bad[i // 8] ^= 1 << (i % 8)
        assert not sign.verify(pub, b"line", bytes(bad))
    other = sign.public_from_private(sign.generate_private())
    assert not sign.verify(other, b"line", sig)


@pytest.mark.parametrize(
    ("pub", "msg", "sig"),
    [
        (b"", b"m", bytes(64)),
        (bytes(31), b"m", bytes(64)),
        (RFC_PK, b"", RFC_SIG[:63]),
        (RFC_PK, b"", RFC_SIG + b"\x00"),
        (None, b"", RFC_SIG),
        (RFC_PK.hex(), b"", RFC_SIG),
        (RFC_PK, "", RFC_SIG),
        (RFC_PK, None, RFC_SIG),
        (RFC_PK, b"", None),
        (bytearray(RFC_PK), b"", RFC_SIG),
        (b"\xff" * 32, b"", RFC_SIG),  # not a valid point encoding
    ],
    ids=[
        "empty-pub",
        "short-pub",
        "short-sig",
        "long-sig",
        "none-pub",
        "str-pub",
        "str-msg",
        "none-msg",
        "none-sig",
        "bytearray-pub",
        "bad-point",
    ],
)
def test_verify_never_raises(pub: Any, msg: Any, sig: Any) -> None:
    assert sign.verify(pub, msg, sig) is False


def test_bad_private_key_length() -> None:
    with pytest.raises(IntegrityError):
        sign.sign(b"\x01" * 31, b"m")
    with pytest.raises(IntegrityError):
        sign.public_from_private(b"")


def test_public_keys_are_cached() -> None:
    sign._load_public.cache_clear()
    for _ in range(1000):
        assert sign.verify(RFC_PK, b"", RFC_SIG)
    info = sign._load_public.cache_info()
    assert info.misses == 1 and info.hits == 999
