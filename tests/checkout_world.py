"""A small vault world for checkout tests: operators with known seeds and a fake clock.

Sessions are unlocked once per operator (each unlock consumes a TOTP step, so
the clock moves 30 s per unlock); tests then act through those sessions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from glasskey.core import totp
from glasskey.core.clock import FakeClock
from glasskey.core.credentials import CredentialSpec
from glasskey.core.crypto import kdf
from glasskey.core.models import Policy
from glasskey.core.operators import OperatorSpec
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.vault import Vault

FAST_KDF = kdf.KdfParams(1024, 1, 1, b"glasskey-tests-salt!")
SEEDS = {
    "alice": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "bob": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU",
    "carol": "MFRGGZDFMZTWQ2LKMFRGGZDFMZTWQ2LK",
    "dave": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
}
ROLES = {
    "alice": ("requester",),
    "bob": ("approver", "admin", "requester"),
    "carol": ("approver", "requester"),
    "dave": ("approver", "admin"),
}


def passphrase(name: str) -> str:
    return f"{name} has a long passphrase"


@dataclass
class World:
    root: Path
    clock: FakeClock
    vault: Vault
    sessions: dict[str, Session] = field(default_factory=dict)

    def code(self, name: str, offset: float = 0) -> str:
        return totp.code_at(SEEDS[name], self.clock.now() + offset)

    def unlock(self, name: str) -> Session:
        self.clock.advance(30)
        session = self.vault.unlock(name, passphrase(name), self.code(name))
        self.sessions[name] = session
        return session

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
    clock = FakeClock(1_800_000_000.0)
    vault = Vault(tmp_path / "vault", clock)
    vault.initialise([OperatorSpec(n, ROLES[n], passphrase(n), SEEDS[n]) for n in names],
                     kdf_params=FAST_KDF)
    return World(tmp_path / "vault", clock, vault)


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
