"""C3: Argon2id, passphrases and key wrapping (core.crypto.kdf).

Only the RFC 9106 vector and the calibration smoke test run real-cost
Argon2id; everything else uses tiny parameters with ``allow_weak=True``.
"""

from __future__ import annotations

import json
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from glasskey.core.crypto import kdf
from glasskey.core.crypto.kdf import CEILING, FLOOR, KdfParams
from glasskey.core.errors import DecryptError, IntegrityError, UsageError

VECTOR = json.loads((Path(__file__).parent / "vectors" / "rfc9106_argon2id.json").read_text())

SALT = b"0123456789abcdef"
WEAK = KdfParams(memory_kib=64, iterations=1, lanes=1, salt=SALT)
PASS = "correct horse battery staple"
AAD = b"operator:alice"


def test_rfc9106_vector() -> None:
    v = VECTOR
    derived = Argon2id(
        salt=bytes.fromhex(v["salt_hex"]),
        length=32,
        iterations=v["iterations"],
        lanes=v["lanes"],
        memory_cost=v["memory_kib"],
        ad=bytes.fromhex(v["ad_hex"]),
        secret=bytes.fromhex(v["secret_hex"]),
    ).derive(bytes.fromhex(v["password_hex"]))
    assert derived.hex() == v["tag_hex"]


def test_derive_key_is_plain_argon2id_of_nfkc_utf8() -> None:
    expected = Argon2id(salt=SALT, length=32, iterations=1, lanes=1, memory_cost=64).derive(
        PASS.encode()
    )
    assert kdf.derive_key(PASS, WEAK, allow_weak=True) == expected


# --- floor / ceiling ------------------------------------------------------------------

OUT_OF_RANGE = [
    pytest.param(KdfParams(FLOOR.memory_kib - 1, 2, 1, SALT), id="memory<floor"),
    pytest.param(KdfParams(FLOOR.memory_kib, 1, 1, SALT), id="iterations<floor"),
    pytest.param(KdfParams(FLOOR.memory_kib, 2, 0, SALT), id="lanes<floor"),
    pytest.param(KdfParams(CEILING.memory_kib + 1, 2, 1, SALT), id="memory>ceiling"),
    pytest.param(KdfParams(2**40, 2, 1, SALT), id="memory-huge"),
    pytest.param(KdfParams(FLOOR.memory_kib, 11, 1, SALT), id="iterations>ceiling"),
    pytest.param(KdfParams(FLOOR.memory_kib, 2**31, 1, SALT), id="iterations-huge"),
    pytest.param(KdfParams(FLOOR.memory_kib, 2, 9, SALT), id="lanes>ceiling"),
    pytest.param(KdfParams(FLOOR.memory_kib, 2, 1, b"short salt"), id="salt<16"),
    pytest.param(KdfParams(FLOOR.memory_kib, 2, 1, b"s" * 65), id="salt>64"),
    pytest.param(KdfParams(FLOOR.memory_kib, True, 1, SALT), id="bool"),
]


@pytest.fixture
def no_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any derivation an immediate test failure: refusal must come first."""

    def boom(**_: Any) -> None:
        raise AssertionError("Argon2id was called for parameters that should be refused")

    monkeypatch.setattr(kdf, "Argon2id", boom)


@pytest.mark.usefixtures("no_argon2")
@pytest.mark.parametrize("params", OUT_OF_RANGE)
def test_out_of_range_refused_before_deriving(params: KdfParams) -> None:
    start = time.perf_counter()
    with pytest.raises(IntegrityError) as info:
        kdf.derive_key(PASS, params)
    assert not isinstance(info.value, DecryptError)
    with pytest.raises(IntegrityError):
        kdf.unwrap(b"\x00" * 40, PASS, params, AAD)
    with pytest.raises(IntegrityError):
        kdf.wrap(b"secret", PASS, params, AAD)
    assert time.perf_counter() - start < 0.5


@pytest.mark.usefixtures("no_argon2")
@pytest.mark.parametrize(
    "params",
    [
        KdfParams(CEILING.memory_kib + 1, 1, 1, SALT),
        KdfParams(64, 11, 1, SALT),
        KdfParams(64, 1, 9, SALT),
        KdfParams(64, 1, 1, b"short"),
        KdfParams(16, 1, 4, SALT),  # Argon2 needs 8 KiB per lane
    ],
    ids=["memory", "iterations", "lanes", "salt", "memory-per-lane"],
)
def test_allow_weak_never_lifts_the_ceiling(params: KdfParams) -> None:
    with pytest.raises(IntegrityError):
        kdf.derive_key(PASS, params, allow_weak=True)


def test_limits_themselves_are_allowed() -> None:
    kdf.check_params(KdfParams(FLOOR.memory_kib, FLOOR.iterations, FLOOR.lanes, SALT))
    kdf.check_params(KdfParams(CEILING.memory_kib, CEILING.iterations, CEILING.lanes, SALT))
    assert FLOOR == (19456, 2, 1)
    assert CEILING == (4194304, 10, 8)


@pytest.mark.usefixtures("no_argon2")
def test_weak_params_need_allow_weak() -> None:
    for params in (WEAK, kdf.TEST_PARAMS):
        with pytest.raises(IntegrityError):
            kdf.derive_key(PASS, params)
        with pytest.raises(IntegrityError):
            kdf.unwrap(b"\x00" * 40, PASS, params, AAD)


# --- params serialisation -------------------------------------------------------------


def test_params_dict_round_trip() -> None:
    p = KdfParams(65536, 3, 2, SALT)
    d = p.to_dict()
    assert d == {
        "memory_kib": 65536,
        "iterations": 3,
        "lanes": 2,
        "salt": "MDEyMzQ1Njc4OWFiY2RlZg==",
    }
    assert KdfParams.from_dict(json.loads(json.dumps(d))) == p


GOOD = {"memory_kib": 65536, "iterations": 3, "lanes": 2, "salt": "MDEyMzQ1Njc4OWFiY2RlZg=="}


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD, "extra": 1},
        {k: v for k, v in GOOD.items() if k != "lanes"},
        {**GOOD, "iterations": "3"},
        {**GOOD, "iterations": 3.0},
        {**GOOD, "lanes": True},
        {**GOOD, "memory_kib": None},
        {**GOOD, "salt": b"0123456789abcdef"},
        {**GOOD, "salt": "not base64!"},
        {**GOOD, "salt": "MDEyMzQ1Njc4OWFiY2RlZg"},  # padding stripped
        {**GOOD, "salt": "MDEyMzQ1Njc4OWFiY2RlZh=="},  # non-canonical trailing bits
        {**GOOD, "salt": "MDEyMzQ1Njc4OWFi\nY2RlZg=="},
        {**GOOD, "salt": "MDEyMzQ1Njc4OWFiY2RlZg==é"},
        [("memory_kib", 1)],
        None,
    ],
    ids=[
        "extra",
        "missing",
        "str",
        "float",
        "bool",
        "none",
        "bytes-salt",
        "bad-b64",
        "unpadded",
        "noncanonical",
        "newline",
        "non-ascii",
        "list",
        "null",
    ],
)
def test_from_dict_is_strict(bad: Any) -> None:
    with pytest.raises(IntegrityError):
        KdfParams.from_dict(bad)


# --- wrap / unwrap ------------------------------------------------------------------------


def test_wrap_round_trip() -> None:
    for secret in (b"", b"\x01" * 32, b"x" * 1000):
        blob = kdf.wrap(secret, PASS, WEAK, AAD, allow_weak=True)
        assert kdf.unwrap(blob, PASS, WEAK, AAD, allow_weak=True) == secret


def test_derive_once_unwrap_many() -> None:
    key = kdf.derive_key(PASS, WEAK, allow_weak=True)
    blobs = {
        name: kdf.wrap_with_key(key, name.encode(), WEAK, name.encode())
        for name in ("hpke", "sign", "totp")
    }
    for name, blob in blobs.items():
        assert kdf.unwrap_with_key(key, blob, WEAK, name.encode()) == name.encode()
    # and a blob from wrap() opens with the derived key
    blob = kdf.wrap(b"s", PASS, WEAK, AAD, allow_weak=True)
    assert kdf.unwrap_with_key(key, blob, WEAK, AAD) == b"s"


@pytest.mark.parametrize(
    "edited",
    [
        KdfParams(64, 1, 1, b"0123456789abcdeF"),
        KdfParams(64, 2, 1, SALT),
        KdfParams(72, 1, 1, SALT),
        KdfParams(64, 1, 2, SALT),
    ],
    ids=["salt", "iterations", "memory", "lanes"],
)
def test_edited_params_fail(edited: KdfParams) -> None:
    blob = kdf.wrap(b"private key", PASS, WEAK, AAD, allow_weak=True)
    with pytest.raises(DecryptError):
        kdf.unwrap(blob, PASS, edited, AAD, allow_weak=True)


def test_params_are_in_the_aad_even_with_the_same_key() -> None:
    # Same derived key, different recorded params: still refused, so the
    # params in the file are authenticated, not just an input to derivation.
    key = kdf.derive_key(PASS, WEAK, allow_weak=True)
    blob = kdf.wrap_with_key(key, b"private key", WEAK, AAD)
    with pytest.raises(DecryptError):
        kdf.unwrap_with_key(key, blob, KdfParams(64, 2, 1, SALT), AAD)


def test_wrong_aad_fails() -> None:
    blob = kdf.wrap(b"private key", PASS, WEAK, AAD, allow_weak=True)
    with pytest.raises(DecryptError):
        kdf.unwrap(blob, PASS, WEAK, b"operator:bob", allow_weak=True)


def test_wrong_passphrase_and_corrupt_blob_look_identical() -> None:
    blob = kdf.wrap(b"private key", PASS, WEAK, AAD, allow_weak=True)
    with pytest.raises(DecryptError) as wrong_pass:
        kdf.unwrap(blob, PASS + "!", WEAK, AAD, allow_weak=True)
    corrupt = blob[:-1] + bytes([blob[-1] ^ 0x40])
    with pytest.raises(DecryptError) as wrong_blob:
        kdf.unwrap(corrupt, PASS, WEAK, AAD, allow_weak=True)
    assert type(wrong_pass.value) is type(wrong_blob.value) is DecryptError
    assert str(wrong_pass.value) == str(wrong_blob.value) == "cannot decrypt"
    assert PASS not in str(wrong_pass.value)


# --- passphrases ----------------------------------------------------------------------------


def test_nfc_and_nfd_spellings_both_unlock() -> None:
    nfc = unicodedata.normalize("NFC", "Grüße aus Köln, Ærø & Ñandú")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    blob = kdf.wrap(b"k", nfc, WEAK, AAD, allow_weak=True)
    assert kdf.unwrap(blob, nfd, WEAK, AAD, allow_weak=True) == b"k"


def test_compatibility_forms_unlock() -> None:
    # NFKC: full-width digits and the "ﬁ" ligature type the same passphrase.
    blob = kdf.wrap(b"k", "fine passphrase 2024", WEAK, AAD, allow_weak=True)
    assert kdf.unwrap(blob, "ﬁne passphrase ２０２４", WEAK, AAD, allow_weak=True) == b"k"


def test_long_passphrase_is_not_truncated() -> None:
    long = "".join(chr(0x41 + i % 26) for i in range(1200))
    assert len(kdf.normalise_passphrase(long)) == 1200
    key = kdf.derive_key(long, WEAK, allow_weak=True)
    assert key != kdf.derive_key(long[:1000], WEAK, allow_weak=True)
    assert key != kdf.derive_key(long[:-1], WEAK, allow_weak=True)


def test_normalise_passphrase() -> None:
    assert kdf.normalise_passphrase("e\u0301") == "é".encode()
    assert kdf.normalise_passphrase("Ａ") == b"A"
    with pytest.raises(UsageError) as info:
        kdf.normalise_passphrase("abc\ud800def")
    assert "abc" not in str(info.value)


@pytest.mark.parametrize(
    "p",
    ["", "pw-1234", "elevenchars", "e\u0301" * 11, "ﬁ" * 5],
    ids=["empty", "short", "11", "nfd-11", "ligature-10"],
)
def test_policy_refuses_short(p: str) -> None:
    with pytest.raises(UsageError) as info:
        kdf.check_passphrase_policy(p)
    message = str(info.value)
    assert "12 characters" in message
    if p:
        assert p not in message


@pytest.mark.parametrize(
    "p", ["twelve chars", "é" * 12, "ﬁ" * 6, PASS], ids=["12", "nfc-12", "ligature-12", "long"]
)
def test_policy_accepts(p: str) -> None:
    kdf.check_passphrase_policy(p)


# --- calibration --------------------------------------------------------------------------


def test_calibrate_returns_valid_floor_params() -> None:
    params = kdf.calibrate(target_seconds=0.001, memory_kib=FLOOR.memory_kib, lanes=1)
    kdf.check_params(params)
    assert (params.memory_kib, params.iterations, params.lanes) == (FLOOR.memory_kib, 2, 1)
    assert len(params.salt) == 16
    assert params.salt != kdf.calibrate(0.001, FLOOR.memory_kib, 1).salt


@pytest.mark.usefixtures("no_argon2")
@pytest.mark.parametrize(("memory", "lanes"), [(1024, 1), (CEILING.memory_kib * 2, 1), (65536, 16)])
def test_calibrate_refuses_out_of_range_inputs(memory: int, lanes: int) -> None:
    with pytest.raises(UsageError):
        kdf.calibrate(0.5, memory, lanes)
