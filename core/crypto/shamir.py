"""Shamir k-of-n secret sharing over GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1 (0x11b).

Bytewise, like HashiCorp Vault's ``shamir`` package: byte ``i`` of the secret
is the constant term of its own random polynomial of degree ``k - 1``, and a
share is the value of every such polynomial at one non-zero ``x``. Any ``k``
shares rebuild the secret by Lagrange interpolation at ``x = 0``; fewer than
``k`` shares are uniformly distributed and say nothing about it.

This is the one piece of hand-written crypto in glasskey, so it is kept small
and table-free: field elements of a whole share are packed into one Python
integer and multiplied by a *public* scalar (an ``x`` coordinate or a Lagrange
coefficient, both derived from public ``x`` values) with shifts, masks and
XORs. Control flow therefore depends only on public values, never on secret
bytes, and no secret-indexed table lookups happen (Python cannot promise true
constant time, but this avoids the obvious cache-timing leak of log/exp
tables).

Interpolation cannot tell a wrong share from a right one: it always returns
*some* bytes. So glasskey stores a :func:`commitment` to the data key, and
:func:`combine_checked` raises instead of returning a wrong key.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from glasskey.core.clock import Random, SystemRandom
from glasskey.core.errors import IntegrityError, UsageError

MAX_SHARES = 255
_POLY_LOW = 0x1B  # x^8 = x^4 + x^3 + x + 1 (mod 0x11b)
_COMMIT_LABEL = b"glasskey/shamir-commitment/v1\x00"
_DEFAULT_RNG = SystemRandom()


@dataclass(frozen=True)
class Share:
    """One share: the evaluation point ``x`` (1..255) and one byte per secret byte.

    ``y`` is secret material, so it is left out of ``repr`` (tracebacks, logs).
    """

    x: int
    y: bytes = field(repr=False)


# --- scalar field arithmetic (public values only) -------------------------


def _gf_mul(a: int, b: int) -> int:
    """Multiply two field elements (Russian-peasant, reduced by 0x11b)."""
    r = 0
    for _ in range(8):
        r ^= -(b & 1) & a
        a = ((a << 1) & 0xFF) ^ (-(a >> 7) & _POLY_LOW)
        b >>= 1
    return r


def _gf_inv(a: int) -> int:
    """Multiplicative inverse as ``a^254`` (Fermat); ``_gf_inv(0)`` is 0 and never used."""
    # 254 = 0b11111110: fixed square-and-multiply chain, same steps for every ``a``.
    r = 1
    sq = a
    for _ in range(7):
        sq = _gf_mul(sq, sq)  # a^2, a^4, ..., a^128
        r = _gf_mul(r, sq)
    return r


def _gf_div(a: int, b: int) -> int:
    """``a / b`` in the field; ``b`` must be non-zero (callers guarantee it)."""
    return _gf_mul(a, _gf_inv(b))


# --- vectorised arithmetic: a whole share as one integer -------------------


class _Lanes:
    """Masks for ``n``-byte vectors packed big-endian into one ``int``."""

    __slots__ = ("high", "low", "ones")

    def __init__(self, n: int) -> None:
        self.ones = int.from_bytes(b"\x01" * n, "big")  # lowest bit of every byte
        self.low = int.from_bytes(b"\xfe" * n, "big")  # bits that survive << 1 inside a byte
        self.high = self.ones << 7  # top bit of every byte

    def xtime(self, v: int) -> int:
        """Multiply every byte of ``v`` by ``x`` (i.e. 2) in GF(2^8)."""
        carry = (v & self.high) >> 7  # 0/1 per byte, so * 0x1b cannot cross bytes
        return ((v << 1) & self.low) ^ (carry * _POLY_LOW)

    def scale(self, v: int, c: int) -> int:
        """Multiply every byte of ``v`` by the public scalar ``c``."""
        r = 0
        for bit in range(8):
            if (c >> bit) & 1:
                r ^= v
            v = self.xtime(v)
        return r


# --- validation -------------------------------------------------------------


def _check_shares(shares: Sequence[Share]) -> int:
    """Validate shares for interpolation; return the common length of ``y``."""
    if len(shares) < 2:
        raise IntegrityError("At least two shares are needed to reconstruct a key.")
    seen: set[int] = set()
    length = -1
    for share in shares:
        if not isinstance(share, Share):
            raise IntegrityError("A share is malformed.")
        x = share.x
        if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= MAX_SHARES:
            raise IntegrityError("A share has an invalid x coordinate (must be 1..255).")
        if x in seen:
            raise IntegrityError("Two shares have the same x coordinate.")
        seen.add(x)
        if not isinstance(share.y, bytes) or not share.y:
            raise IntegrityError("A share is empty or malformed.")
        if length == -1:
            length = len(share.y)
        elif len(share.y) != length:
            raise IntegrityError("Shares have different lengths.")
    return length


def _interpolate(shares: Sequence[Share], at: int) -> bytes:
    """Lagrange-interpolate the shares' polynomials at ``at`` (0 = the secret)."""
    length = _check_shares(shares)
    lanes = _Lanes(length)
    xs = [s.x for s in shares]
    acc = 0
    for i, share in enumerate(shares):
        # l_i(at) = prod_{j != i} (at - x_j) / (x_i - x_j); minus is XOR here.
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = _gf_mul(num, at ^ xj)
                den = _gf_mul(den, xs[i] ^ xj)
        coeff = _gf_div(num, den)
        acc ^= lanes.scale(int.from_bytes(share.y, "big"), coeff)
    return acc.to_bytes(length, "big")


# --- public API ---------------------------------------------------------------


def split(
    secret: bytes,
    n: int,
    k: int,
    rng: Random | None = None,
    xs: Sequence[int] | None = None,
) -> list[Share]:
    """Split ``secret`` into ``n`` shares, any ``k`` of which rebuild it.

    ``xs`` are the evaluation points (default ``1..n``): distinct, 1..255, one
    per share, in output order; callers may pin them to operators. Randomness:
    one call ``rng.bytes((k - 1) * len(secret))`` whose consecutive
    ``len(secret)``-byte blocks are the coefficient vectors of ``x^1`` ..
    ``x^(k-1)`` (documented so tests can recompute shares independently).
    Coefficients are uniform including zero, as information-theoretic secrecy
    requires. Bad parameters raise ``UsageError``.
    """
    if not isinstance(secret, bytes) or not secret:
        raise UsageError("The secret to split must be non-empty bytes.")
    if (
        isinstance(n, bool)
        or isinstance(k, bool)
        or not isinstance(n, int)
        or not isinstance(k, int)
    ):
        raise UsageError("Share count and threshold must be integers.")
    if not 2 <= k <= n <= MAX_SHARES:
        raise UsageError("Shamir parameters must satisfy 2 <= threshold <= shares <= 255.")
    points = list(range(1, n + 1)) if xs is None else list(xs)
    if len(points) != n:
        raise UsageError("Exactly one x coordinate is needed per share.")
    for x in points:
        if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= MAX_SHARES:
            raise UsageError("Share x coordinates must be integers from 1 to 255.")
    if len(set(points)) != n:
        raise UsageError("Share x coordinates must be distinct.")

    length = len(secret)
    rand = (rng or _DEFAULT_RNG).bytes((k - 1) * length)
    if len(rand) != (k - 1) * length:
        raise UsageError("The random source returned the wrong number of bytes.")
    # coeffs[0] is the secret; coeffs[d] multiplies x^d.
    coeffs = [int.from_bytes(secret, "big")] + [
        int.from_bytes(rand[d * length : (d + 1) * length], "big") for d in range(k - 1)
    ]
    lanes = _Lanes(length)
    shares = []
    for x in points:
        acc = 0
        for c in reversed(coeffs):  # Horner: (((c_{k-1}) x + c_{k-2}) x + ...) x + c_0
            acc = lanes.scale(acc, x) ^ c
        shares.append(Share(x=x, y=acc.to_bytes(length, "big")))
    return shares


def combine(shares: Sequence[Share]) -> bytes:
    """Rebuild the secret from at least ``k`` shares (more is fine, fewer gives garbage).

    Raises ``IntegrityError`` for fewer than two shares, a duplicate or
    out-of-range ``x`` (``x = 0`` would *be* the secret), or shares of
    differing lengths. It cannot detect wrong shares: use
    :func:`combine_checked` whenever a commitment exists.
    """
    return _interpolate(shares, 0)


def evaluate_at(shares: Sequence[Share], x: int) -> Share:
    """A new share at ``x`` computed from ``k`` existing shares, without re-splitting.

    Used to give a newly enrolled operator a share of an existing data key.
    The caller must pass at least ``k`` shares (exactly ``k`` is enough); with
    fewer the result is a valid-looking but wrong share, which a later
    :func:`combine_checked` will reject. ``x`` must be 1..255 and not one of the
    given shares' ``x`` (``UsageError``).
    """
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= MAX_SHARES:
        raise UsageError("A share x coordinate must be an integer from 1 to 255.")
    _check_shares(shares)
    if any(s.x == x for s in shares):
        raise UsageError("The new share's x coordinate is already used by a given share.")
    return Share(x=x, y=_interpolate(shares, x))


def commitment(secret: bytes, context: bytes) -> bytes:
    """SHA-256 over a domain label, the length-prefixed ``context`` and the secret.

    Binding because SHA-256 is collision resistant; hiding *enough* only
    because the secret is a 256-bit random data key (a low-entropy secret could
    be brute-forced from its commitment). ``context`` (e.g. vault id,
    credential id, version) stops a commitment being replayed for another key.
    """
    return _commit(secret, context)


def _commit(secret: bytes, context: bytes) -> bytes:
    if not isinstance(secret, bytes) or not isinstance(context, bytes):
        raise UsageError("Commitment inputs must be bytes.")
    return hashlib.sha256(
        _COMMIT_LABEL + struct.pack(">I", len(context)) + context + secret
    ).digest()


def combine_checked(shares: Sequence[Share], commitment: bytes, context: bytes) -> bytes:
    """:func:`combine`, then compare with the stored commitment in constant time.

    Mismatched, stale or tampered shares raise ``IntegrityError("shares do not
    reconstruct the committed key")``; a wrong key is never returned.
    """
    secret = combine(shares)
    expected = _commit(secret, context)
    if not isinstance(commitment, bytes) or not hmac.compare_digest(expected, commitment):
        raise IntegrityError("shares do not reconstruct the committed key")
    return secret
