"""Argon2id passphrase keys, passphrase policy, and wrapping of operator secrets.

Why the limits: parameters are stored in the vault file next to the wrapped
keys, so they are attacker-controlled input. A tampered file must not be able
to *weaken* the KDF (a floor: OWASP's / RFC 9106's second recommendation,
m = 19 MiB, t = 2, p = 1) nor turn an unlock into a denial of service (a
ceiling: 4 GiB, t = 10, p = 8). :func:`check_params` enforces both *before*
anything is allocated or derived.

Why parameters are in the AAD: :func:`wrap` authenticates the canonical JSON
of the parameters together with the caller's AAD, so editing the salt or the
costs in the file makes :func:`unwrap` fail instead of silently deriving with
different settings next time the file is re-written.

Why NFKC: the same passphrase typed on two keyboards (precomposed "é" versus
"e" + combining accent, full-width digits, ...) must unlock the same vault.

Tests need fast derivations; they pass ``allow_weak=True`` (with e.g.
:data:`TEST_PARAMS`). Production code never sets it, and a weak parameter set
read from a file is refused without it, so small test parameters cannot leak
into real vaults.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from glasskey.core.clock import Random, SystemRandom
from glasskey.core.crypto import aead
from glasskey.core.errors import IntegrityError, UsageError

KEY_LEN = 32
SALT_MIN = 16
"""RFC 9106 recommends a 128-bit salt; shorter salts are refused."""
SALT_MAX = 64
MIN_PASSPHRASE_CHARS = 12

_WRAP_LABEL = "glasskey/kdf-wrap/v1"


class Limits(NamedTuple):
    memory_kib: int
    iterations: int
    lanes: int


FLOOR = Limits(memory_kib=19456, iterations=2, lanes=1)
"""OWASP / RFC 9106 second recommendation: 19 MiB, 2 passes, 1 lane."""
CEILING = Limits(memory_kib=4 * 1024 * 1024, iterations=10, lanes=8)
"""4 GiB, 10 passes, 8 lanes: beyond this an unlock is a denial of service."""


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters and salt, as stored in the vault file."""

    memory_kib: int
    iterations: int
    lanes: int
    salt: bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; the salt is standard padded base64."""
        return {
            "memory_kib": self.memory_kib,
            "iterations": self.iterations,
            "lanes": self.lanes,
            "salt": base64.b64encode(self.salt).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, d: object) -> KdfParams:
        """Strict inverse of :meth:`to_dict`: unknown/missing keys or wrong types raise.

        Errors are ``IntegrityError`` because the dict comes from a file that
        may have been tampered with. Ranges are checked by :func:`check_params`.
        """
        expected = {"memory_kib", "iterations", "lanes", "salt"}
        if not isinstance(d, dict) or set(d) != expected:
            raise IntegrityError("The KDF parameters are malformed (unexpected or missing fields).")
        ints = []
        for name in ("memory_kib", "iterations", "lanes"):
            value = d[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise IntegrityError(f"The KDF parameter {name} must be an integer.")
            ints.append(value)
        salt_text = d["salt"]
        if not isinstance(salt_text, str):
            raise IntegrityError("The KDF salt must be base64 text.")
        try:
            salt = base64.b64decode(salt_text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise IntegrityError("The KDF salt is not valid base64.") from None
        if base64.b64encode(salt).decode("ascii") != salt_text:
            raise IntegrityError("The KDF salt is not canonical base64.")
        return cls(memory_kib=ints[0], iterations=ints[1], lanes=ints[2], salt=salt)

    def canonical(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces) authenticated by :func:`wrap`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")


TEST_PARAMS = KdfParams(memory_kib=256, iterations=1, lanes=1, salt=b"glasskey-test-salt")
"""Tiny parameters for tests; only usable together with ``allow_weak=True``."""


def check_params(p: KdfParams, *, allow_weak: bool = False) -> None:
    """Raise ``IntegrityError`` unless ``p`` lies within :data:`FLOOR` .. :data:`CEILING`.

    Runs before any derivation, so a ceiling-busting file never allocates
    memory. ``allow_weak`` (tests only) lowers the floor to Argon2's own
    minimums; the ceiling and salt rules always apply.
    """
    if not isinstance(p, KdfParams):
        raise IntegrityError("The KDF parameters are malformed.")
    for name in ("memory_kib", "iterations", "lanes"):
        value = getattr(p, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise IntegrityError(f"The KDF parameter {name} must be an integer.")
    if not isinstance(p.salt, bytes) or not SALT_MIN <= len(p.salt) <= SALT_MAX:
        raise IntegrityError("The KDF salt must be 16 to 64 bytes.")
    if p.memory_kib > CEILING.memory_kib or p.iterations > CEILING.iterations:
        raise IntegrityError("The KDF parameters exceed the allowed maximum cost.")
    if p.lanes > CEILING.lanes:
        raise IntegrityError("The KDF parameters exceed the allowed maximum cost.")
    floor = Limits(8, 1, 1) if allow_weak else FLOOR
    if p.iterations < floor.iterations or p.lanes < floor.lanes or p.memory_kib < floor.memory_kib:
        raise IntegrityError("The KDF parameters are below the allowed minimum cost.")
    if p.memory_kib < 8 * p.lanes:
        raise IntegrityError("The KDF memory must be at least 8 KiB per lane.")


def normalise_passphrase(p: str) -> bytes:
    """NFKC-normalise then UTF-8 encode; never truncated (Argon2id hashes any length)."""
    if not isinstance(p, str):
        raise UsageError("A passphrase must be text.")
    try:
        return unicodedata.normalize("NFKC", p).encode("utf-8")
    except UnicodeEncodeError:
        # The default message would quote the offending character.
        raise UsageError("The passphrase contains characters that are not valid Unicode.") from None


def check_passphrase_policy(p: str) -> None:
    """Enrolment policy: at least 12 characters (code points after NFKC).

    Checked when a passphrase is *chosen*, not on unlock, so tightening the
    policy later never locks anyone out. The message never echoes the input.
    """
    if not isinstance(p, str):
        raise UsageError("A passphrase must be text.")
    if len(unicodedata.normalize("NFKC", p)) < MIN_PASSPHRASE_CHARS:
        raise UsageError(
            f"The passphrase is too short: use at least {MIN_PASSPHRASE_CHARS} characters."
        )


def derive_key(passphrase: str, params: KdfParams, *, allow_weak: bool = False) -> bytes:
    """The 32-byte Argon2id key for ``passphrase``; parameters are checked first.

    Exposed separately so a caller can derive once and unwrap several items
    with :func:`unwrap_with_key`. ``allow_weak`` is for test code only.
    """
    check_params(params, allow_weak=allow_weak)
    kdf = Argon2id(
        salt=params.salt,
        length=KEY_LEN,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(normalise_passphrase(passphrase))


def _aad(params: KdfParams, aad: bytes) -> bytes:
    # aad_for is self-delimiting (count + length prefixes), so appending the
    # caller's AAD after it is unambiguous.
    if not isinstance(aad, bytes):
        raise UsageError("AAD must be bytes.")
    return aead.aad_for(_WRAP_LABEL, params.canonical().decode("ascii")) + aad


def wrap_with_key(
    key: bytes, secret: bytes, params: KdfParams, aad: bytes, rng: Random | None = None
) -> bytes:
    """AES-256-GCM-encrypt ``secret`` under a key from :func:`derive_key`, binding ``params``."""
    return aead.encrypt(key, secret, _aad(params, aad), rng)


def unwrap_with_key(key: bytes, blob: bytes, params: KdfParams, aad: bytes) -> bytes:
    """Inverse of :func:`wrap_with_key`; any failure is ``DecryptError("cannot decrypt")``."""
    return aead.decrypt(key, blob, _aad(params, aad))


def wrap(
    secret: bytes,
    passphrase: str,
    params: KdfParams,
    aad: bytes,
    *,
    allow_weak: bool = False,
    rng: Random | None = None,
) -> bytes:
    """Encrypt ``secret`` under the passphrase's Argon2id key; parameters go into the AAD."""
    return wrap_with_key(
        derive_key(passphrase, params, allow_weak=allow_weak), secret, params, aad, rng
    )


def unwrap(
    blob: bytes, passphrase: str, params: KdfParams, aad: bytes, *, allow_weak: bool = False
) -> bytes:
    """Decrypt a :func:`wrap` blob.

    A wrong passphrase, a corrupted blob and edited (in-range) parameters all
    raise the same ``DecryptError("cannot decrypt")``; out-of-range parameters
    raise ``IntegrityError`` before any work is done.
    """
    return unwrap_with_key(derive_key(passphrase, params, allow_weak=allow_weak), blob, params, aad)


def calibrate(
    target_seconds: float = 0.5,
    memory_kib: int = 65536,
    lanes: int = 2,
    *,
    rng: Random | None = None,
) -> KdfParams:
    """Choose ``iterations`` so one derivation takes about ``target_seconds`` here.

    Memory and lanes are fixed by the caller (memory is the main defence
    against GPUs, so it is never lowered to meet the target). Argon2 time is
    roughly ``fixed + passes * per_pass``, where the fixed part (allocating and
    first touching the memory) is large enough to matter, so two timings are
    taken: one at the floor's pass count and one at a first estimate; the line
    through them gives the pass count for the target, clamped to the floor and
    ceiling. If even the ceiling's 10 passes are faster than the target, the
    result is capped there: pass more ``memory_kib`` to spend the extra time.
    Returns fresh parameters with a new random 16-byte salt.
    """
    salt = (rng or SystemRandom()).bytes(SALT_MIN)

    def params(iterations: int) -> KdfParams:
        return KdfParams(memory_kib=memory_kib, iterations=iterations, lanes=lanes, salt=salt)

    def clamp(iterations: float) -> int:
        return max(FLOOR.iterations, min(CEILING.iterations, round(iterations)))

    def seconds(iterations: int) -> float:
        start = time.perf_counter()
        derive_key("calibration passphrase", params(iterations))
        return time.perf_counter() - start

    try:
        check_params(params(FLOOR.iterations))
    except IntegrityError:
        raise UsageError(
            "Calibration memory and lanes must lie within the allowed KDF limits."
        ) from None
    t_floor = seconds(FLOOR.iterations)
    guess = (
        clamp(target_seconds * FLOOR.iterations / t_floor) if t_floor > 0 else CEILING.iterations
    )
    if guess == FLOOR.iterations:
        return params(guess)
    per_pass = (seconds(guess) - t_floor) / (guess - FLOOR.iterations)
    if per_pass <= 0:  # timer noise; keep the first estimate
        return params(guess)
    fixed = max(0.0, t_floor - FLOOR.iterations * per_pass)
    return params(clamp((target_seconds - fixed) / per_pass))
