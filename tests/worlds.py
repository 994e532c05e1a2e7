"""One builder for every test vault ("world"): operators with known secrets, a fake clock.

Three test families grew their own factory (helpers.make_vault for storage and
auth, checkout_world.make_world for checkout and rotation, tui_helpers.make_world
for the TUI), each initialising a vault and unlocking operators its own way.
They now share this module: the operator type, the rosters, ``build_world``
and the ``VaultWorld`` base with the TOTP/unlock logic. The three modules keep
their names (``make_vault``, ``make_world``, ``VaultEnv``, ``World`` ...) as thin
wrappers, so no test had to change.

Rosters differ on purpose — the roles are what the tests of each family
assume (checkout's alice is only a requester; the foundation alice is also an
admin) — so they are data here, not one merged list::

    world = build_world(VaultWorld, tmp_path / "vault", CHECKOUT_ROSTER,
                        kdf_params=FAST_KDF)
    alice = world.fresh_session("alice")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from glasskey.core import totp
from glasskey.core.clock import FakeClock, Random
from glasskey.core.crypto import kdf
from glasskey.core.operators import OperatorSpec
from glasskey.core.session import Session
from glasskey.core.vault import Vault

#: Where every world's FakeClock starts (2027-01-15T08:00:00Z; TOTP step 60_000_000).
START = 1_800_000_000.0
STEP = totp.PERIOD
#: Argon2id parameters small enough for tests (needs GLASSKEY_INSECURE_FAST_KDF=1).
FAST_KDF = kdf.KdfParams(1024, 1, 1, b"s" * 16)


@dataclass(frozen=True)
class Operator:
    """A test operator: what ``initialise`` needs and what unlocking needs."""

    name: str
    roles: tuple[str, ...]
    passphrase: str
    seed: str

    def spec(self) -> OperatorSpec:
        return OperatorSpec(self.name, self.roles, self.passphrase, self.seed)

    def as_tuple(self) -> tuple[str, tuple[str, ...], str, str]:
        """(name, roles, passphrase, seed), the shape the TUI's demo uses."""
        return (self.name, self.roles, self.passphrase, self.seed)


#: Storage, audit and auth tests (helpers.make_vault): the first 2 or 3.
FOUNDATION_ROSTER: tuple[Operator, ...] = (
    Operator("alice", ("requester", "admin"), "correct horse battery staple",
             "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
    Operator("bob", ("approver", "admin", "requester"), "bob's long passphrase, really",
             "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"),
    Operator("carol", ("approver", "requester"), "carol keeps the safe key 42",
             "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"),
)


def checkout_passphrase(name: str) -> str:
    return f"{name} has a long passphrase"


#: Checkout, rotation and policy tests (checkout_world.make_world): alice only requests.
CHECKOUT_ROSTER: tuple[Operator, ...] = tuple(
    Operator(name, roles, checkout_passphrase(name), seed) for name, roles, seed in (
        ("alice", ("requester",), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
        ("bob", ("approver", "admin", "requester"), "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"),
        ("carol", ("approver", "requester"), "MFRGGZDFMZTWQ2LKMFRGGZDFMZTWQ2LK"),
        ("dave", ("approver", "admin"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
    ))

#: The TUI's operators (tui_helpers): on-call requests, security approves and
#: administers; the auditor is a second approver for what needs two.
TUI_ONCALL = Operator("oncall", ("requester",), "oncall-test-passphrase",
                      "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
TUI_SECURITY = Operator("security", ("approver", "admin", "requester"),
                        "security-test-passphrase", "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U")
TUI_AUDITOR = Operator("auditor", ("approver", "requester"), "auditor-test-passphrase",
                       "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU")


def roster_map(roster: Sequence[Operator]) -> dict[str, Operator]:
    return {op.name: op for op in roster}


@dataclass
class VaultWorld:
    """A vault on a fake clock whose operators' passphrases and seeds are known."""

    root: Path
    clock: FakeClock
    vault: Vault
    roster: dict[str, Operator] = field(default_factory=dict)
    #: Who founded the vault (the roster may know operators enrolled later).
    founders: tuple[str, ...] = ()
    #: The last session unlocked per operator (the checkout family reuses them).
    sessions: dict[str, Session] = field(default_factory=dict)
    #: The TOTP step each operator last unlocked in (a step can be used once).
    used_step: dict[str, int] = field(default_factory=dict)

    def passphrase(self, name: str) -> str:
        return self.roster[name].passphrase

    def seed(self, name: str) -> str:
        return self.roster[name].seed

    def totp(self, name: str, offset: float = 0.0) -> str:
        """``name``'s TOTP code ``offset`` seconds from now."""
        return totp.code_at(self.seed(name), self.clock.now() + offset)

    def step(self) -> int:
        return int(self.clock.now()) // STEP

    def next_step(self) -> None:
        """Move the clock to the start of the next TOTP step."""
        self.clock.set(float((self.step() + 1) * STEP))

    def fresh_session(self, name: str, vault: Vault | None = None) -> Session:
        """Unlock ``name``, moving the clock to the next TOTP step only when
        this operator already used the current one."""
        if self.used_step.get(name, -1) >= self.step():
            self.next_step()
        return self._unlock(name, vault)

    def _unlock(self, name: str, vault: Vault | None = None) -> Session:
        session = (vault or self.vault).unlock(name, self.passphrase(name), self.totp(name))
        self.used_step[name] = self.step()
        self.sessions[name] = session
        return session

    def reopen(self, clock: FakeClock | None = None, **kw: Any) -> Vault:
        """A second view of the same vault (as another process would have)."""
        return Vault(self.root, clock or self.clock, **kw, allow_weak_kdf=True)


W = TypeVar("W", bound=VaultWorld)


def build_world(cls: type[W], root: Path, roster: Sequence[Operator], *,
                founders: Sequence[str] | None = None,
                kdf_params: kdf.KdfParams = FAST_KDF, start: float = START,
                rng: Random | None = None, label: str | None = None,
                **fields: Any) -> W:
    """Initialise a vault at ``root`` and wrap it in ``cls`` (``fields``: the
    subclass's own). ``founders`` (default: the whole roster) found the vault;
    the world knows every roster operator's secrets, so one enrolled later
    can unlock too."""
    known = roster_map(roster)
    clock = FakeClock(start)
    vault = Vault(root, clock, rng, allow_weak_kdf=True)
    options: dict[str, Any] = {"kdf_params": kdf_params}
    if label is not None:
        options["label"] = label
    names = tuple(known) if founders is None else tuple(founders)
    vault.initialise([known[name].spec() for name in names], **options)
    return cls(root, clock, vault, known, names, **fields)
