"""Everything the fronts (tui/: the CLI and the TUI) may use from core, in one place.

The fronts import from here and from nowhere else in ``glasskey.core`` (an
import-linter contract in pyproject.toml says so): the facade ``Vault``,
the typed results it returns, the errors it raises, and the few helpers a
front needs to parse input and print output safely. What is not listed here
is core's own business and may change without the fronts noticing.

``report`` and ``siem`` are loaded on first use (they are large and only a
few commands need them), so importing this module stays cheap for the TUI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from glasskey.core import canonical, fsutil, totp
from glasskey.core.chain import VerifyResult
from glasskey.core.clock import Clock, FakeClock, Random, SystemClock, SystemRandom, iso
from glasskey.core.connectors import registry
from glasskey.core.credentials import CredentialSpec
from glasskey.core.crypto import kdf
from glasskey.core.drill import DrillResult
from glasskey.core.emergency import KitIssued, decode_parts
from glasskey.core.errors import (
    AuthError,
    ClockSkewError,
    ConnectorError,
    DecryptError,
    GlasskeyError,
    IntegrityError,
    InternalError,
    NotFoundError,
    PolicyError,
    StorageError,
    UsageError,
)
from glasskey.core.exports import export
from glasskey.core.fsutil import atomic_write, fsync_dir
from glasskey.core.models import (
    ROLES,
    Alert,
    AlertKind,
    Checkout,
    CheckoutKind,
    CheckoutState,
    Credential,
    CredentialStatus,
    Operator,
    OperatorStatus,
    Policy,
    RotationOutcome,
    check_name,
    format_duration,
    parse_duration,
)
from glasskey.core.onboarding import DEFAULT_EXPIRY, MAX_EXPIRY
from glasskey.core.operators import Enrolment, OperatorSpec
from glasskey.core.reviews import ReviewItem
from glasskey.core.rotation import RotationResult
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.storage import URL_SCHEMES, open_store
from glasskey.core.storage.files import MOVED_FILE, FileStore
from glasskey.core.storage.interface import AuditCursor, AuditPage, Store
from glasskey.core.storage.manifest import STATE_FILE
from glasskey.core.sweep import SweepReport
from glasskey.core.text import cap, cap_all, has_controls, printable
from glasskey.core.vault import Vault

if TYPE_CHECKING:
    from glasskey.core import report as report
    from glasskey.core import siem as siem
    from glasskey.core.storage.postgres_export import (
        check_new_directory as check_new_directory,
    )
    from glasskey.core.storage.postgres_export import (
        move_to_directory as move_to_directory,
    )
    from glasskey.core.storage.postgres_import import move_to_postgres as move_to_postgres

_LAZY = ("report", "siem")
#: Loaded on first use: they load the PostgreSQL driver.
_LAZY_FUNCTIONS = {
    "move_to_postgres": "glasskey.core.storage.postgres_import",
    "move_to_directory": "glasskey.core.storage.postgres_export",
    "check_new_directory": "glasskey.core.storage.postgres_export",
}


def __getattr__(name: str) -> Any:
    """``report``, ``siem``, and the moves between backends (which load the
    PostgreSQL driver) on first use (PEP 562)."""
    if name in _LAZY:
        module = importlib.import_module(f"glasskey.core.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_FUNCTIONS:
        func = getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
        globals()[name] = func
        return func
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_EXPIRY",
    "MAX_EXPIRY",
    "MOVED_FILE",
    "ROLES",
    "STATE_FILE",
    "URL_SCHEMES",
    "Alert",
    "AlertKind",
    "AuditCursor",
    "AuditPage",
    "AuthError",
    "Checkout",
    "CheckoutKind",
    "CheckoutState",
    "Clock",
    "ClockSkewError",
    "ConnectorError",
    "Credential",
    "CredentialSpec",
    "CredentialStatus",
    "DecryptError",
    "DrillResult",
    "Enrolment",
    "FakeClock",
    "FileStore",
    "GlasskeyError",
    "IntegrityError",
    "InternalError",
    "KitIssued",
    "NotFoundError",
    "Operator",
    "OperatorSpec",
    "OperatorStatus",
    "Policy",
    "PolicyError",
    "Random",
    "ReviewItem",
    "RotationOutcome",
    "RotationResult",
    "SecretValue",
    "Session",
    "StorageError",
    "Store",
    "SweepReport",
    "SystemClock",
    "SystemRandom",
    "UsageError",
    "Vault",
    "VerifyResult",
    "atomic_write",
    "canonical",
    "cap",
    "cap_all",
    "check_name",
    "check_new_directory",
    "decode_parts",
    "export",
    "format_duration",
    "fsutil",
    "fsync_dir",
    "has_controls",
    "iso",
    "kdf",
    "move_to_directory",
    "move_to_postgres",
    "open_store",
    "parse_duration",
    "printable",
    "registry",
    "report",
    "siem",
    "totp",
]
