"""What every vault service shares: one store, one clock, one source of randomness,
the site's settings and the client's own switches.

The services (core/operators.py, core/checkout.py, ...) each hold a
``VaultContext`` and explicit references to the few other services they call;
none inherits from another. ``Vault`` (core/vault.py) builds the context once
and wires the services together. Nothing here reads the environment: the
fronts (tui/) decide the weak-KDF switch and the client state directory and
pass them in.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from glasskey.core import config as site_config
from glasskey.core.clock import Clock, Random, SystemClock, SystemRandom
from glasskey.core.lookups import credential_doc
from glasskey.core.storage import open_store
from glasskey.core.storage.interface import Store, Transaction

#: Letters of generated ids: no 0/o, 1/l/i look-alikes.
ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class VaultContext:
    """The store and the injected time, randomness and settings of one vault client."""

    def __init__(self, root: Path | str | Store, clock: Clock | None = None,
                 rng: Random | None = None, *, lock_timeout: float = 10.0,
                 allow_weak_kdf: bool = False, state_dir: Path | None = None) -> None:
        """``root``: a vault directory or a ``postgresql://`` URL (core/storage.open_store
        opens it) or any ``Store``."""
        self.store: Store = root if not isinstance(root, (str, Path)) \
            else open_store(root, lock_timeout=lock_timeout)
        self.root = Path(self.store.root)
        self.clock: Clock = clock or SystemClock()
        self.rng: Random = rng or SystemRandom()
        self.store.now = self.clock.now
        #: Tests and benchmarks may use tiny Argon2id parameters; never a real vault.
        self.allow_weak_kdf = allow_weak_kdf
        #: Where this client keeps its witness checkpoints (None: the platform default).
        self.state_dir = state_dir
        self._vault_id: str | None = None
        self._site: dict[str, object] | None = None

    # -- identity ---------------------------------------------------------------------------
    @property
    def vault_id(self) -> str:
        if self._vault_id is None:
            with self.store.read() as txn:
                self._vault_id = str(txn.meta["vault_id"])
        return self._vault_id

    @vault_id.setter
    def vault_id(self, value: str) -> None:
        self._vault_id = value

    def now(self) -> float:
        return self.clock.now()

    def new_id(self, prefix: str) -> str:
        raw = self.rng.bytes(10)
        return prefix + "".join(ID_ALPHABET[b % len(ID_ALPHABET)] for b in raw)

    def cred_id_for(self, name: str) -> str:
        return "c" + hashlib.sha256(f"{self.vault_id}\x00{name}".encode()).hexdigest()[:20]

    # -- glasskey.toml (read once per context; ``forget_site`` re-reads it) ----------------
    def site(self) -> dict[str, object]:
        if self._site is None:
            self._site = site_config.load(self.root)
        return self._site

    def forget_site(self) -> None:
        self._site = None

    def site_config(self, connector: str) -> dict[str, str]:
        """The ``[connector]`` section of glasskey.toml (site defaults for a connector)."""
        return site_config.connector_section(self.site(), connector)

    def site_setting(self, section: str, key: str) -> str | None:
        value = self.site().get(section)
        if isinstance(value, dict) and key in value:
            return str(value[key])
        return None


class Service:
    """A vault service: reads and writes through its context, nothing else inherited."""

    def __init__(self, ctx: VaultContext) -> None:
        self.ctx = ctx

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def vault_id(self) -> str:
        return self.ctx.vault_id

    def now(self) -> float:
        return self.ctx.now()

    def find_credential(self, txn: Transaction, name: str) -> dict[str, Any]:
        """The credential named ``name``, or NotFoundError."""
        return credential_doc(txn, self.ctx.cred_id_for(name), name)
