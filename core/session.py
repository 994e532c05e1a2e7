"""An unlocked operator: the private keys live only here, in this process's memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from glasskey.core.audit import Signer


@dataclass(frozen=True, repr=False)
class Session:
    operator_id: str
    name: str
    roles: tuple[str, ...]
    hpke_priv: bytes = field(repr=False)
    sign_priv: bytes = field(repr=False)
    #: Kept so a running session can step up with a fresh code (``confirm_totp``)
    #: without re-typing the passphrase; it is wrapped under that passphrase on disk.
    totp_seed: str = field(default="", repr=False)

    @property
    def signer(self) -> Signer:
        return Signer(self.name, self.sign_priv)

    def has(self, role: str) -> bool:
        return role in self.roles

    def __repr__(self) -> str:
        return f"Session({self.name!r}, roles={self.roles!r})"
