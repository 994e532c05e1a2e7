"""The ``generated`` connector: the vault is the source of truth.

Values are consumed *from* the vault (an API token, a batch account whose
consumers read it at checkout), so rotation only has to mint a new random value
and seal it: it becomes current at once and the next checkout reveals it.
"""

from __future__ import annotations

from glasskey.core.connectors.base import Connector
from glasskey.core.secret import SecretValue


class GeneratedConnector(Connector):
    name = "generated"
    vault_is_source_of_truth = True

    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        """Nothing outside the vault holds the value."""

    def verify(self, value: SecretValue) -> bool:
        return True

    def verify_rejected(self, old: SecretValue) -> bool:
        return True
