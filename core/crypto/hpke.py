"""HPKE (RFC 9180) base mode: seal a Shamir share to one operator's X25519 key.

Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, named by
:data:`SUITE_ID` so stored shares can say which suite sealed them.
Not (yet) the hybrid ML-KEM-768+X25519 KEM the same module offers:
its public keys (~1.2 KB) and encapsulations (~1.1 KB) are ~35x larger than
X25519's 32 bytes, multiplied by up to 250,000 sealed shares per vault;
it can be added later as a second suite id beside this one, no re-design.

RFC 9180 mixes the suite identifiers into the key schedule, so a blob sealed
under one suite never opens under another even if a file lies about its suite.

Why ``validate_public``: X25519 happily "encrypts" to a low-order point, and
the shared secret is then the all-zero string that anyone can compute. A
tampered vault file could swap an operator's public key for such a point and
make every future share sealed to it readable by everybody, so sealing refuses
those keys with ``IntegrityError`` first.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke as _hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from glasskey.core.clock import Random
from glasskey.core.crypto.aead import aad_for
from glasskey.core.errors import DecryptError, IntegrityError, UsageError

SUITE_ID = "x25519-hkdfsha256-aes256gcm"
"""Identifier of the only suite this version seals with (stored beside shares)."""

KEY_LEN = 32
ENC_LEN = 32
"""Bytes of the KEM encapsulation at the front of every sealed blob."""
OVERHEAD = ENC_LEN + 16
"""Sealed blob length minus plaintext length (encapsulation + GCM tag)."""

_SUITE = _hpke.Suite(_hpke.KEM.X25519, _hpke.KDF.HKDF_SHA256, _hpke.AEAD.AES_256_GCM)
_INFO_LABEL = "glasskey/hpke-info/v1"

# A fixed, public scalar used only to probe a public key: X25519 clamps every
# scalar to a multiple of the cofactor 8, so a point whose shared secret with
# this key is all-zero has an all-zero shared secret with *every* key.
_PROBE = X25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"glasskey/x25519-low-order-probe").digest()
)


def generate_private(rng: Random | None = None) -> bytes:
    """A fresh X25519 private key as 32 raw bytes: from ``rng`` (the vault's injected
    randomness) when given, else from the OS CSPRNG. Any 32 bytes are a key (RFC 7748
    clamps them when used)."""
    if rng is None:
        return X25519PrivateKey.generate().private_bytes_raw()
    return X25519PrivateKey.from_private_bytes(rng.bytes(KEY_LEN)).private_bytes_raw()


def public_from_private(priv: bytes) -> bytes:
    """The 32-byte raw public key for ``priv``; wrong length raises ``IntegrityError``."""
    if not isinstance(priv, bytes) or len(priv) != KEY_LEN:
        raise IntegrityError("An X25519 private key must be exactly 32 bytes.")
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes_raw()


def validate_public(pub: bytes) -> None:
    """Refuse keys that would make a sealed share readable by anyone.

    Raises ``IntegrityError`` for a wrong length, the all-zero key, or any
    low-order point (including non-canonical encodings of one): exactly those
    whose X25519 shared secret with any private key is all-zero, detected by
    exchanging with a fixed probe key (``cryptography`` raises ``ValueError``
    on an all-zero result).
    """
    if not isinstance(pub, bytes) or len(pub) != KEY_LEN:
        raise IntegrityError("An X25519 public key must be exactly 32 bytes.")
    if pub == bytes(KEY_LEN):
        raise IntegrityError("The X25519 public key is all zeros and cannot be used.")
    try:
        _PROBE.exchange(X25519PublicKey.from_public_bytes(pub))
    except ValueError:
        raise IntegrityError(
            "The X25519 public key is a low-order point and cannot be used."
        ) from None


def seal(pub: bytes, plaintext: bytes, info: bytes) -> bytes:
    """Seal ``plaintext`` to ``pub`` bound to ``info``; returns ``enc || ciphertext || tag``.

    The public key is validated first (see :func:`validate_public`). Each call
    uses a fresh ephemeral key, so sealing the same share twice gives
    unlinkable blobs.
    """
    validate_public(pub)
    if not isinstance(info, bytes):
        raise UsageError("HPKE info must be bytes (see info_for).")
    return _SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(pub), info)


def open_(priv: bytes, blob: bytes, info: bytes) -> bytes:
    """Open a blob sealed by :func:`seal`; any failure is ``DecryptError("cannot decrypt")``.

    A wrong private key, wrong ``info``, truncated blob, flipped bit or a
    malicious low-order encapsulation all look identical to the caller.
    """
    if (
        isinstance(priv, bytes)
        and len(priv) == KEY_LEN
        and isinstance(blob, bytes)
        and len(blob) >= OVERHEAD
        and isinstance(info, bytes)
    ):
        try:
            return _SUITE.decrypt(blob, X25519PrivateKey.from_private_bytes(priv), info)
        except (InvalidTag, ValueError, TypeError):
            pass
    # Raised outside the ``except`` so no exception chain hints at the cause.
    raise DecryptError("cannot decrypt")


def info_for(*parts: str | int) -> bytes:
    """HPKE ``info`` for labelled parts: :func:`aead.aad_for` under an HPKE-specific label.

    The extra leading label keeps an ``info`` string from ever being equal to
    an AEAD AAD built from the same parts (domain separation), e.g.
    ``info_for("glasskey/share/v1", vault_id, cred_id, version, operator_id)``.
    """
    return aad_for(_INFO_LABEL, *parts)
