"""C1: HPKE base mode (core.crypto.hpke).

Besides behaviour (round trip, ``info`` binding, tampering, low-order keys from
Wycheproof), a small independent RFC 9180 receiver/sender written here with
only ``hmac``/``hashlib`` plus raw X25519 and AES-GCM checks that the library
suite really is DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM base
mode. The reference is itself pinned to RFC 9180 Appendix A.1.1 (the same KEM
and KDF, with AES-128-GCM, which is the closest published vector).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from glasskey.core.crypto import hpke
from glasskey.core.errors import DecryptError, IntegrityError

VECTORS = Path(__file__).parent / "vectors" / "wycheproof" / "x25519_test.json"
BAD_FLAGS = {"ZeroSharedSecret", "LowOrderPublic"}


def _x25519_cases(flagged: bool) -> list[Any]:
    data = json.loads(VECTORS.read_text())
    out = []
    for group in data["testGroups"]:
        for t in group["tests"]:
            if bool(BAD_FLAGS & set(t["flags"])) == flagged:
                out.append(pytest.param(bytes.fromhex(t["public"]), id=f"tc{t['tcId']}"))
    return out


LOW_ORDER = _x25519_cases(flagged=True)
ORDINARY = _x25519_cases(flagged=False)

PRIV = bytes.fromhex(
    "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8"
)  # RFC 9180 skRm
PUB = hpke.public_from_private(PRIV)
INFO = hpke.info_for("glasskey/share/v1", "vault-1", "cred-a", 3, "op-alice")


# --- independent RFC 9180 reference (base mode, single shot, seq 0) ---------


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()  # empty salt == HashLen zeros


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _hkdf_extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, n: int) -> bytes:
    return _hkdf_expand(prk, struct.pack(">H", n) + b"HPKE-v1" + suite + label + info, n)


def _key_and_nonce(
    dh: bytes, enc: bytes, pk_rm: bytes, info: bytes, aead_id: int, nk: int
) -> tuple[bytes, bytes]:
    kem_suite = b"KEM" + struct.pack(">H", 0x0020)
    eae_prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared = _labeled_expand(kem_suite, eae_prk, b"shared_secret", enc + pk_rm, 32)
    suite = b"HPKE" + struct.pack(">HHH", 0x0020, 0x0001, aead_id)
    psk_id_hash = _labeled_extract(suite, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(suite, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(suite, shared, b"secret", b"")
    key = _labeled_expand(suite, secret, b"key", context, nk)
    nonce = _labeled_expand(suite, secret, b"base_nonce", context, 12)
    return key, nonce


def _ref_open(
    sk_rm: bytes, blob: bytes, info: bytes, aad: bytes = b"", aead_id: int = 2, nk: int = 32
) -> bytes:
    enc, ct = blob[:32], blob[32:]
    sk = X25519PrivateKey.from_private_bytes(sk_rm)
    dh = sk.exchange(X25519PublicKey.from_public_bytes(enc))
    pk_rm = sk.public_key().public_bytes_raw()
    key, nonce = _key_and_nonce(dh, enc, pk_rm, info, aead_id, nk)
    return AESGCM(key).decrypt(nonce, ct, aad)


def _ref_seal(pk_rm: bytes, sk_em: bytes, pt: bytes, info: bytes) -> bytes:
    sk_e = X25519PrivateKey.from_private_bytes(sk_em)
    enc = sk_e.public_key().public_bytes_raw()
    dh = sk_e.exchange(X25519PublicKey.from_public_bytes(pk_rm))
    key, nonce = _key_and_nonce(dh, enc, pk_rm, info, 2, 32)
    return enc + AESGCM(key).encrypt(nonce, pt, b"")


def test_reference_matches_rfc9180_a_1_1() -> None:
    # RFC 9180 A.1.1 / A.1.1.1 sequence 0: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM.
    enc = bytes.fromhex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
    ct = bytes.fromhex(
        "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a"
    )
    info = bytes.fromhex("4f6465206f6e2061204772656369616e2055726e")  # "Ode on a Grecian Urn"
    pt = _ref_open(PRIV, enc + ct, info, aad=b"Count-0", aead_id=1, nk=16)
    assert pt == b"Beauty is truth, truth beauty"
    assert PUB.hex() == "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d"


def test_library_seal_opens_with_reference() -> None:
    blob = hpke.seal(PUB, b"share bytes", INFO)
    assert _ref_open(PRIV, blob, INFO) == b"share bytes"


def test_reference_seal_opens_with_library() -> None:
    sk_em = bytes.fromhex(
        "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736"
    )  # RFC skEm
    blob = _ref_seal(PUB, sk_em, b"share bytes", INFO)
    assert hpke.open_(PRIV, blob, INFO) == b"share bytes"


# --- behaviour ---------------------------------------------------------------


def test_suite_id_constant() -> None:
    assert hpke.SUITE_ID == "x25519-hkdfsha256-aes256gcm"


def test_round_trip_with_generated_keys() -> None:
    priv = hpke.generate_private()
    pub = hpke.public_from_private(priv)
    assert len(priv) == 32 and len(pub) == 32
    for pt in (b"", b"\x00" * 32, bytes(range(256))):
        blob = hpke.seal(pub, pt, INFO)
        assert len(blob) == len(pt) + hpke.OVERHEAD
        assert hpke.open_(priv, blob, INFO) == pt


def test_generated_keys_differ() -> None:
    assert len({hpke.generate_private() for _ in range(50)}) == 50


def test_sealing_twice_gives_different_blobs() -> None:
    assert hpke.seal(PUB, b"x", INFO) != hpke.seal(PUB, b"x", INFO)


@pytest.mark.parametrize(
    "other",
    [
        hpke.info_for("glasskey/share/v1", "vault-1", "cred-a", 3, "op-bob"),
        hpke.info_for("glasskey/share/v1", "vault-1", "cred-a", 4, "op-alice"),
        hpke.info_for("glasskey/share/v1", "vault-1", "cred-b", 3, "op-alice"),
        b"",
    ],
    ids=["operator", "version", "credential", "empty"],
)
def test_wrong_info_fails(other: bytes) -> None:
    blob = hpke.seal(PUB, b"share", INFO)
    with pytest.raises(DecryptError):
        hpke.open_(PRIV, blob, other)


def test_info_for_is_domain_separated_from_aad() -> None:
    from glasskey.core.crypto.aead import aad_for

    assert hpke.info_for("a", 1) != aad_for("a", 1)
    assert hpke.info_for("a", 1) != hpke.info_for("a", "1")


def test_wrong_private_key_fails() -> None:
    blob = hpke.seal(PUB, b"share", INFO)
    with pytest.raises(DecryptError):
        hpke.open_(hpke.generate_private(), blob, INFO)


def test_every_flipped_bit_fails() -> None:
    blob = hpke.seal(PUB, b"sixteen byte shr", INFO)
    for i in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(DecryptError):
            hpke.open_(PRIV, bytes(bad), INFO)


def test_truncated_blobs_and_bad_private_keys_fail_opaquely() -> None:
    blob = hpke.seal(PUB, b"share", INFO)
    messages = set()
    for n in range(len(blob)):
        with pytest.raises(DecryptError) as info:
            hpke.open_(PRIV, blob[:n], INFO)
        messages.add(str(info.value))
    for priv in (b"", PRIV[:31], PRIV + b"\x00"):
        with pytest.raises(DecryptError) as info:
            hpke.open_(priv, blob, INFO)
        messages.add(str(info.value))
    assert messages == {"cannot decrypt"}


@pytest.mark.parametrize("pub", LOW_ORDER[:1], ids=["first"])
def test_low_order_encapsulation_fails_on_open(pub: bytes) -> None:
    # A forged blob whose "ephemeral key" is a low-order point must not open.
    with pytest.raises(DecryptError):
        hpke.open_(PRIV, pub + bytes(32), INFO)


def test_wycheproof_low_order_subset_is_present() -> None:
    assert len(LOW_ORDER) == 31 and len(ORDINARY) == 487


@pytest.mark.parametrize("pub", LOW_ORDER)
def test_wycheproof_low_order_public_refused(pub: bytes) -> None:
    with pytest.raises(IntegrityError):
        hpke.validate_public(pub)
    with pytest.raises(IntegrityError):
        hpke.seal(pub, b"share", INFO)


@pytest.mark.parametrize("pub", ORDINARY)
def test_wycheproof_ordinary_public_accepted(pub: bytes) -> None:
    hpke.validate_public(
        pub
    )  # no false positives: twist and non-canonical points are not zero-secret


@pytest.mark.parametrize(
    "pub", [b"", bytes(31), bytes(33), bytes(32)], ids=["0", "31", "33", "zero"]
)
def test_bad_lengths_and_zero_key_refused(pub: bytes) -> None:
    with pytest.raises(IntegrityError):
        hpke.validate_public(pub)
    with pytest.raises(IntegrityError):
        hpke.seal(pub, b"share", INFO)


def test_public_from_private_rejects_bad_length() -> None:
    with pytest.raises(IntegrityError):
        hpke.public_from_private(b"\x01" * 31)
