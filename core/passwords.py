"""Generating values that satisfy a credential's password policy."""

from __future__ import annotations

import secrets
import string

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


def generate(policy: Policy) -> SecretValue:
    """A uniformly random value with at least one character of every class."""
    classes = alphabet_for(policy)
    if policy.length < max(len(classes), 8):
        raise UsageError("the password policy's length is too short (minimum 8)")
    pool = "".join(classes.values())
    while True:
        value = "".join(secrets.choice(pool) for _ in range(policy.length))
        if all(any(c in chars for c in value) for chars in classes.values()):
            return SecretValue(value)
