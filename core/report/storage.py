"""Every place the report touches the vault's storage below its public API.

Why one module: the storage layer is moving behind a declared interface
(issue 12). The report needs three things the vault does not offer yet: the
audit log as raw lines (streamed, the report's hot path), the log's file for
block reads, and the vault id when the state fails its integrity check. Each
is one small function here, so that swapping them for the new storage API
touches nothing else in the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from glasskey.core.vault import Vault


def _audit_file(vault: Vault) -> IO[bytes] | None:
    """The audit log opened for binary block reads (None if there is no log yet)."""
    try:
        return open(vault.audit_path, "rb")
    except FileNotFoundError:
        return None


def _audit_lines(vault: Vault) -> Iterator[bytes]:
    """The audit log's lines in order, as stored (without their newlines)."""
    for _, raw in vault.store.audit.lines():
        yield raw


def _stored_vault_id(vault: Vault) -> str:
    """The vault id read straight from the state, for when ``vault.vault_id`` refuses
    (a state that fails its integrity check still gets a report naming it)."""
    return str(vault.store._read_state()["meta"]["vault"]["vault_id"])
