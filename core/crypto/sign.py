"""Ed25519 signatures for the audit log.

Why Ed25519: deterministic (no per-signature randomness to get wrong), small
(32-byte keys, 64-byte signatures, so 10^6 audit lines stay compact) and fast
to verify. :func:`verify` returns ``False`` for *any* bad input instead of
raising, so an audit checker can count bad lines without try/except around
each one.

Verification of a whole audit log checks up to 10^6 signatures from a handful
of operators, so loaded public-key objects are cached by their bytes. Private
keys are deliberately *not* cached: a cache would keep them alive in memory
after the caller has dropped them.
"""

from __future__ import annotations

import functools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from glasskey.core.clock import Random
from glasskey.core.errors import IntegrityError

KEY_LEN = 32
SIG_LEN = 64


def generate_private(rng: Random | None = None) -> bytes:
    """A fresh Ed25519 private key (the 32-byte seed, RFC 8032): from ``rng`` (the
    vault's injected randomness) when given, else from the OS CSPRNG."""
    if rng is None:
        return Ed25519PrivateKey.generate().private_bytes_raw()
    return Ed25519PrivateKey.from_private_bytes(rng.bytes(KEY_LEN)).private_bytes_raw()


def _load_private(priv: bytes) -> Ed25519PrivateKey:
    if not isinstance(priv, bytes) or len(priv) != KEY_LEN:
        raise IntegrityError("An Ed25519 private key must be exactly 32 bytes.")
    return Ed25519PrivateKey.from_private_bytes(priv)


def public_from_private(priv: bytes) -> bytes:
    """The 32-byte public key for ``priv``; wrong length raises ``IntegrityError``."""
    return _load_private(priv).public_key().public_bytes_raw()


def sign(priv: bytes, msg: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``msg`` (RFC 8032, deterministic)."""
    return _load_private(priv).sign(msg)


@functools.lru_cache(maxsize=256)
def _load_public(pub: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(pub)


def verify(pub: bytes, msg: bytes, sig: bytes) -> bool:
    """``True`` only for a valid signature; ``False`` for anything else, never raises."""
    if (
        not isinstance(pub, bytes)
        or len(pub) != KEY_LEN
        or not isinstance(sig, bytes)
        or len(sig) != SIG_LEN
        or not isinstance(msg, (bytes, bytearray, memoryview))
    ):
        return False
    try:
        _load_public(pub).verify(sig, msg)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
