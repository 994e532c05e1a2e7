"""The ``manual`` connector: a target nobody can automate.

The new value goes to an operator other than the holder, who applies it on the
target by hand and confirms (``glasskey apply CRED`` then ``apply CRED
--confirm``). Until then the credential is APPLY-PENDING and checkouts keep
revealing the value the target still has. The applier is recorded.
"""

from __future__ import annotations

from glasskey.core.connectors.base import Connector
from glasskey.core.errors import ConnectorError
from glasskey.core.secret import SecretValue


class ManualConnector(Connector):
    name = "manual"
    needs_person = True

    def set(self, current: SecretValue | None, new: SecretValue) -> None:
        raise ConnectorError("a manual target is changed by a person; use 'glasskey apply'")

    def verify(self, value: SecretValue) -> bool:
        raise ConnectorError("a manual target cannot be checked automatically")
