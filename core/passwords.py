"""Generating values that satisfy a credential's password policy."""

from __future__ import annotations

import string
from collections.abc import Iterator

from glasskey.core.clock import Random, SystemRandom
from glasskey.core.errors import UsageError
from glasskey.core.models import Policy
from glasskey.core.secret import SecretValue

CLASSES = {
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "digit": string.digits,
    "symbol": "!#%&()*+,-./:;<=>?@[]^_{|}~",
}


def alphabet_for(policy: Policy) -> dict[str, str]:
    out = {}
    for cls in policy.classes:
        if cls not in CLASSES:
            raise UsageError(f"unknown character class {cls!r}; use {', '.join(CLASSES)}")
        chars = "".join(c for c in CLASSES[cls] if c not in policy.exclude)
        if not chars:
            raise UsageError(f"the policy excludes every character of class {cls!r}")
        out[cls] = chars
    if not out:
        raise UsageError("the password policy names no character class")
    return out


def _picks(rng: Random, size: int) -> Iterator[int]:
    """Uniform indexes into a pool of ``size`` (at most 256) characters, from ``rng``:
    bytes at or above the largest multiple of ``size`` are dropped (no modulo bias)."""
    limit = 256 - 256 % size
    while True:
        for byte in rng.bytes(64):
            if byte < limit:
                yield byte % size


def generate(policy: Policy, rng: Random | None = None) -> SecretValue:
    """A uniformly random value with at least one character of every class, drawn from
    ``rng`` (the vault's injected randomness; the OS CSPRNG when not given)."""
    classes = alphabet_for(policy)
    if policy.length < max(len(classes), 8):
        raise UsageError("the password policy's length is too short (minimum 8)")
    pool = "".join(classes.values())
    if len(pool) > 256:
        raise UsageError("the password policy's alphabet is too large")
    picks = _picks(rng or SystemRandom(), len(pool))
    while True:
        value = "".join(pool[next(picks)] for _ in range(policy.length))
        if all(any(c in chars for c in value) for chars in classes.values()):
            return SecretValue(value)
