"""AES-256-GCM envelope: ``nonce || ciphertext || tag``.

Why this shape: every credential version gets its own random 256-bit data key
(DEK), so a random 96-bit nonce is far inside GCM's safe bound (NIST SP 800-38D
allows 2^32 random nonces per key; a DEK encrypts one secret, a passphrase key
a handful of private keys). Storing the nonce in front of the ciphertext keeps
the blob self-contained, and the AAD built by :func:`aad_for` binds the blob to
where it lives (vault id, credential id, version), so a ciphertext copied to
another credential or version does not decrypt.

Every failure of :func:`decrypt` is the same ``DecryptError("cannot
decrypt")``: a caller (or an attacker probing files) never learns whether the
key, the AAD or the bytes were wrong.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from glasskey.core.clock import Random, SystemRandom
from glasskey.core.errors import DecryptError, UsageError

KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16

_DEFAULT_RNG = SystemRandom()


def encrypt(key: bytes, plaintext: bytes, aad: bytes, rng: Random | None = None) -> bytes:
    """Encrypt ``plaintext`` under ``key`` bound to ``aad``; return ``nonce || ct || tag``.

    The nonce is 12 fresh bytes from ``rng`` (the system CSPRNG by default;
    tests inject a counting or fixed source). A wrong key length is a
    programming error, so it raises ``UsageError`` rather than producing a blob
    nobody can open.
    """
    if not isinstance(key, bytes) or len(key) != KEY_LEN:
        raise UsageError("An AES-256-GCM key must be exactly 32 bytes.")
    nonce = (rng or _DEFAULT_RNG).bytes(NONCE_LEN)
    if len(nonce) != NONCE_LEN:
        raise UsageError("The random source returned the wrong number of bytes for a nonce.")
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Return the plaintext of ``blob``, or raise ``DecryptError("cannot decrypt")``.

    Short blobs, wrong key length, wrong key, wrong AAD and any flipped bit all
    raise the identical error (no ``from`` chain that would reveal which).
    """
    if (
        isinstance(key, bytes)
        and len(key) == KEY_LEN
        and isinstance(blob, bytes)
        and len(blob) >= NONCE_LEN + TAG_LEN
    ):
        try:
            return AESGCM(key).decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], aad)
        except (InvalidTag, ValueError, TypeError):
            pass
    # Raised outside the ``except`` so no exception chain hints at the cause.
    raise DecryptError("cannot decrypt")


def aad_for(*parts: str | int) -> bytes:
    """Encode labelled parts unambiguously for use as AAD (or HPKE ``info``).

    Layout: ``u32 count`` then, per part, a type byte (``s`` for text, ``i``
    for an integer), a ``u32`` big-endian length and the payload (UTF-8 text or
    the integer in decimal ASCII). Because every part is length-prefixed and
    typed, ``("ab", "c")`` and ``("a", "bc")`` differ, and so do ``1`` and
    ``"1"``; because the count comes first, a trailing suffix can be appended
    after an ``aad_for`` value without ambiguity. Convention: the first part is
    a versioned label such as ``"glasskey/secret/v1"``.
    """
    out = [struct.pack(">I", len(parts))]
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (str, int)):
            raise UsageError("AAD parts must be text or integers.")
        if isinstance(part, str):
            try:
                tag, payload = b"s", part.encode("utf-8")
            except UnicodeEncodeError:
                raise UsageError("AAD text parts must be valid Unicode.") from None
        else:
            tag, payload = b"i", str(part).encode("ascii")
        out.append(tag + struct.pack(">I", len(payload)) + payload)
    return b"".join(out)
