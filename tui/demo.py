"""A throwaway demo vault a newcomer can complete a checkout in within a minute.

Three demo operators (an on-call requester, a security officer who approves,
and a standby approver, so that an emergency use can get the two
reviews it needs),
real Argon2id parameters at the RFC 9106 floor (fast, but a real derivation),
fixed TOTP seeds so the app's DEMO panel can show live codes, and a few
generated credentials, and an emergency kit whose recovery code the
Emergency screen shows in its DEMO box. Nothing here is fit for real secrets:
the passphrases, seeds and the recovery code are printed on the screen by
design.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from glasskey.core.api import Clock, CredentialSpec, OperatorSpec, Policy, Vault, kdf, totp
from glasskey.tui.environment import ClientSettings

#: The demo's operators: (name, roles, passphrase, base32 TOTP seed).
DEMO_OPERATORS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("oncall", ("requester",), "oncall-demo-pass",
     "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
    ("security", ("approver", "admin", "requester"), "security-demo-pass",
     "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"),
    ("standby", ("approver", "requester"), "standby-demo-pass",
     "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"),
)

#: (name, kind, maximum lease in seconds)
DEMO_CREDENTIALS: tuple[tuple[str, str, int], ...] = (
    ("aws-root", "break-glass", 3600),
    ("batch-provisioner", "batch", 8 * 3600),
    ("prod-db-root", "break-glass", 2 * 3600),
)


@dataclass(frozen=True)
class DemoInfo:
    """What the DEMO panel shows: the vault and its demo operators' credentials."""

    root: Path
    operators: list[tuple[str, tuple[str, ...], str, str]] = field(default_factory=list)
    #: The demo kit's recovery code ('' when the demo has no kit).
    kit_code: str = ""

    def passphrase_of(self, name: str) -> str:
        for op_name, _roles, passphrase, _seed in self.operators:
            if op_name == name:
                return passphrase
        raise KeyError(name)

    def seed_of(self, name: str) -> str:
        for op_name, _roles, _passphrase, seed in self.operators:
            if op_name == name:
                return seed
        raise KeyError(name)

    def second_terminal(self) -> str:
        """The command that opens a second app on this demo vault (another operator)."""
        return f"glasskey --vault {self.root}"

    def __repr__(self) -> str:
        return f"DemoInfo({str(self.root)!r}, operators={[o[0] for o in self.operators]!r})"


def make_demo_vault(root: Path, clock: Clock | None = None) -> DemoInfo:
    """Create the demo vault in ``root`` (a fresh directory) and describe it."""
    settings = ClientSettings.from_env()
    clock = clock or settings.clock()
    vault = Vault(Path(root), clock, allow_weak_kdf=settings.allow_weak_kdf,
                  state_dir=settings.state_dir)
    founders = [OperatorSpec(name, roles, passphrase, seed)
                for name, roles, passphrase, seed in DEMO_OPERATORS]
    params = kdf.KdfParams(kdf.FLOOR.memory_kib, kdf.FLOOR.iterations, kdf.FLOOR.lanes,
                           os.urandom(kdf.SALT_MIN))
    vault.initialise(founders, label="demo", kdf_params=params)
    # The admin unlocks with the *previous* 30-second step's code (accepted by
    # the ±1 window): the current code shown in the DEMO panel stays unused, so
    # a newcomer can unlock as this operator straight away.
    name, _roles, passphrase, seed = DEMO_OPERATORS[1]
    admin = vault.unlock(name, passphrase, totp.code_at(seed, clock.now() - totp.PERIOD))
    for cred_name, kind, max_seconds in DEMO_CREDENTIALS:
        vault.add_credential(admin, CredentialSpec(
            cred_name, kind=kind, connector="generated",
            policy=Policy(max_duration=max_seconds)))
    # The kit needs a second operator: oncall, with its previous step's code too.
    name, _roles, passphrase, seed = DEMO_OPERATORS[0]
    oncall = vault.unlock(name, passphrase, totp.code_at(seed, clock.now() - totp.PERIOD))
    vault.issue_kit([admin, oncall])
    # A real kit's two parts go to two people; the demo shows both so a newcomer
    # can try an emergency use.
    kit_code = " ".join(vault.kit_part(s) for s in (admin, oncall))
    return DemoInfo(Path(root), [(n, r, p, s) for n, r, p, s in DEMO_OPERATORS],
                    kit_code=kit_code)
