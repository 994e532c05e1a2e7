"""TOTP (RFC 6238) checking with replay refusal and failure limiting.

In an offline vault TOTP is a *policy* control: the seed is wrapped under the
same passphrase as the operator's keys, so someone holding both the files and
the passphrase can compute codes. It still stops a passphrase alone (shoulder
surfing, a reused password) and it paces guessing. SECURITY.md says so.

Rules (after NIST SP 800-63B): the previous, current and next 30-second
step are accepted; a step is accepted at most once per operator and only if
later than the last accepted one (persisted under the vault lock, so two
processes with the same code cannot both succeed, and setting the clock back
re-enables nothing); failures are counted durably *before* the answer.
"""

from __future__ import annotations

import hmac

import pyotp

PERIOD = 30
DIGITS = 6
MAX_FAILURES = 5
BASE_LOCKOUT = 30.0
MAX_LOCKOUT = 3600.0


def new_seed(raw: bytes) -> str:
    """Base32 seed text from 20 random bytes (what authenticator apps expect)."""
    import base64

    return base64.b32encode(raw).decode("ascii").rstrip("=")


def provisioning_uri(seed: str, name: str, vault_label: str) -> str:
    return pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=name, issuer_name=f"glasskey {vault_label}"
    )


def code_at(seed: str, t: float) -> str:
    return str(pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD).at(int(t)))


def matching_step(seed: str, code: str, now: float) -> int | None:
    """The step (-1/0/+1 around now) whose code equals ``code``, else None."""
    code = (code or "").strip().replace(" ", "")
    if not code.isdigit() or len(code) != DIGITS:
        return None
    totp = pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD)
    current = int(now) // PERIOD
    found = None
    for step in (current - 1, current, current + 1):
        # compare every candidate: no early exit that times which step matched
        if hmac.compare_digest(str(totp.generate_otp(step)), code):
            found = step
    return found


def lockout_seconds(failures: int) -> float:
    """Back-off after MAX_FAILURES: 30 s, doubling, capped at an hour."""
    if failures < MAX_FAILURES:
        return 0.0
    return float(min(MAX_LOCKOUT, BASE_LOCKOUT * 2.0 ** (failures - MAX_FAILURES)))
