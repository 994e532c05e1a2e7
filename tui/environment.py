"""The one place the fronts read glasskey's environment variables.

Core never reads the environment: the CLI, the TUI and the demo read it
here and pass the values in (``Vault(..., allow_weak_kdf=..., state_dir=...)``).

* ``GLASSKEY_VAULT``: the vault directory when ``--vault`` is not given.
* ``GLASSKEY_STATE_DIR``: this client's own state (witness checkpoints, pins),
  kept outside the vault directory; the platform's state directory otherwise.
* ``GLASSKEY_INSECURE_FAST_KDF=1``: tests and benchmarks may use tiny Argon2id
  parameters; never a real vault.
* ``GLASSKEY_TEST_CLOCK_OFFSET``: a clock shift in seconds for whole processes,
  honoured only together with the insecure-KDF switch. It exists so tests can
  run real ``glasskey`` processes with a skewed clock; it grants nothing an
  operator lacks anyway (anyone can run their client under a shifted clock),
  which is why the clock rules never trust one client's time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from glasskey.core.api import URL_SCHEMES, Store, SystemClock, Vault

VAULT_ENV = "GLASSKEY_VAULT"
STATE_DIR_ENV = "GLASSKEY_STATE_DIR"
FAST_KDF_ENV = "GLASSKEY_INSECURE_FAST_KDF"
CLOCK_OFFSET_ENV = "GLASSKEY_TEST_CLOCK_OFFSET"


def default_vault_dir(env: Mapping[str, str] | None = None) -> Path | str:
    """``GLASSKEY_VAULT`` (a directory, or a ``postgresql://`` URL kept as text), else
    the platform's data directory."""
    env = os.environ if env is None else env
    given = env.get(VAULT_ENV)
    if given:
        return given if given.startswith(URL_SCHEMES) else Path(given)
    return Path(platformdirs.user_data_dir("glasskey")) / "vault"


@dataclass(frozen=True)
class ClientSettings:
    """What the environment says about this client (read once per command or app)."""

    allow_weak_kdf: bool
    state_dir: Path | None
    clock_offset: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        env = os.environ if env is None else env
        state = env.get(STATE_DIR_ENV)
        weak = env.get(FAST_KDF_ENV) == "1"
        offset = 0.0
        raw = env.get(CLOCK_OFFSET_ENV)
        if raw and weak:
            try:
                offset = float(raw)
            except ValueError:
                offset = 0.0
        return cls(allow_weak_kdf=weak, state_dir=Path(state) if state else None,
                   clock_offset=offset)

    def clock(self) -> SystemClock:
        return SystemClock(self.clock_offset)

    def open_vault(self, root: Path | str | Store, *, lock_timeout: float = 10.0) -> Vault:
        """The vault at ``root`` (a directory, a ``postgresql://`` URL or a ``Store``),
        with this client's switches and clock."""
        return Vault(root, self.clock(), lock_timeout=lock_timeout,
                     allow_weak_kdf=self.allow_weak_kdf, state_dir=self.state_dir)
