"""A small vault world for checkout tests: operators with known seeds and a fake clock.

Sessions are unlocked once per operator (each unlock consumes a TOTP step, so
the clock moves 30 s per unlock); tests then act through those sessions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import worlds
from glasskey.core.credentials import CredentialSpec
from glasskey.core.models import Policy
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session

FAST_KDF = worlds.FAST_KDF
SEEDS = {op.name: op.seed for op in worlds.CHECKOUT_ROSTER}
ROLES = {op.name: op.roles for op in worlds.CHECKOUT_ROSTER}
passphrase = worlds.checkout_passphrase


@dataclass
class World(worlds.VaultWorld):
    """The checkout family's world (tests/worlds.py): every ``unlock`` moves the
    clock 30 s, and ``s(name)`` reuses the operator's last session."""

    roster: dict[str, worlds.Operator] = field(
        default_factory=lambda: worlds.roster_map(worlds.CHECKOUT_ROSTER))

    def code(self, name: str, offset: float = 0) -> str:
        return self.totp(name, offset)

    def unlock(self, name: str) -> Session:
        self.clock.advance(30)
        return self._unlock(name)

    def s(self, name: str) -> Session:
        return self.sessions.get(name) or self.unlock(name)

    def add(self, name: str, value: str | None = None, **policy: int) -> None:
        self.vault.add_credential(self.s("bob"), CredentialSpec(
            name, secret=SecretValue(value) if value is not None else None,
            policy=Policy(**policy)))  # type: ignore[arg-type]

    def checkout(self, cred: str, requester: str = "alice",
                 approvers: tuple[str, ...] = ("bob",), duration: int = 1800) -> str:
        req = self.vault.request(self.s(requester), cred, "outage", "INC-1", duration)
        for a in approvers:
            self.vault.approve(self.s(a), req.id)
        return req.id


def make_world(tmp_path: Path, names: tuple[str, ...] = ("alice", "bob", "carol")) -> World:
    os.environ["GLASSKEY_INSECURE_FAST_KDF"] = "1"
    os.environ["GLASSKEY_STATE_DIR"] = str(tmp_path / "client-state")
    return worlds.build_world(World, tmp_path / "vault", worlds.CHECKOUT_ROSTER,
                              founders=names)


def decrypt_version(w: World, cred_name: str, slot: str = "current") -> str | None:
    """What a version holds, opened with two operators' shares (test-only oracle)."""
    from glasskey.core.envelope import decrypt_secret, open_own_share, recover_dek

    cred_id = w.vault.cred_id_for(cred_name)
    with w.vault.store.read() as txn:
        sealed = txn.table("sealed").get(cred_id)
    assert sealed is not None
    vdoc = sealed.get(slot)
    if not vdoc:
        return None
    k = int(vdoc["k"])
    holders = [o.name for o in w.vault.operators()
               if o.status == "active" and o.id in vdoc["shares"]]
    sessions = [w.s(n) for n in holders[:k]]
    shares = [open_own_share(w.vault.vault_id, cred_id, vdoc, s.operator_id, s.hpke_priv)
              for s in sessions]
    dek = recover_dek(w.vault.vault_id, cred_id, vdoc, shares)
    return decrypt_secret(w.vault.vault_id, cred_id, vdoc, dek).reveal()
