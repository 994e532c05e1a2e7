"""The custody report as a document: its tunables, its top-level parts and its JSON form.

The per-item records (checkouts, emergency uses, ...) live in ``records``; this
module holds what ties them together, so that a reader of ``CustodyReport``
sees the whole shape of a report in one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from glasskey.core.clock import iso
from glasskey.core.report.records import (
    AttestationRecord,
    AuthEvent,
    AuthSummary,
    CheckoutRecord,
    CredentialDrill,
    CredentialRecord,
    EmergencyUse,
    KitRecord,
    KitRefusal,
    NotifyFailure,
    OnboardingRecord,
    OperatorChange,
    OperatorDrill,
    PairRecord,
    RotationFailure,
    UnreviewedItem,
    UnsignedEntry,
)

REPORT_FORMAT = "glasskey-custody-report"
REPORT_VERSION = 1

#: Keys whose float values are instants (rendered as RFC 3339 in JSON).
TIME_KEYS = frozenset({
    "since", "until", "generated_at", "at", "requested_at", "held_from", "held_to",
    "lease_expires", "issued_at", "expires", "activated_at", "expired_at", "revoked_at",
    "burned_at", "finished_at", "resolved_at", "rotated_at", "last_at", "reveals",
    "last_checkout", "first_at", "released_at", "ended_at",
})


@dataclass
class Finding:
    severity: str  # high | medium | low
    kind: str
    subject: str
    text: str


@dataclass
class ControlRow:
    framework: str
    control: str
    name: str
    status: str  # addressed | partial | not addressed
    how: str
    evidence: str


@dataclass
class AuditStatus:
    ok: bool
    entries: int
    first_bad: int | None
    reason: str
    head_seq: int
    head_hash: str
    entries_read: int
    unreadable: int = 0
    #: Set when the vault state could not be read (e.g. a rollback this client
    #: detected): credential status is then missing from the report.
    state_error: str = ""


@dataclass
class Summary:
    checkouts: int = 0
    revealed: int = 0
    denied: int = 0
    cancelled: int = 0
    expired: int = 0
    open: int = 0
    rotated_after_use: int = 0
    not_rotated: int = 0
    rotation_failures: int = 0
    emergency_uses: int = 0
    onboarding: int = 0
    reviewed: int = 0
    unreviewed: int = 0
    overdue_reviews: int = 0
    auth_failures: int = 0
    lockouts: int = 0
    refusals: int = 0
    flagged_pairs: int = 0
    credentials: int = 0
    oldest_rotation_days: float = 0.0
    operator_changes: int = 0
    released: int = 0
    released_not_revealed: int = 0
    kit_refusals: int = 0
    notify_failures: int = 0
    unsigned_entries: int = 0


@dataclass
class CustodyReport:
    vault_id: str
    since: float
    until: float
    generated_at: float
    review_due_days: float
    audit: AuditStatus
    summary: Summary
    findings: list[Finding]
    checkouts: list[CheckoutRecord]
    emergency_uses: list[EmergencyUse]
    emergency_kits: list[KitRecord]
    onboarding: list[OnboardingRecord]
    rotation_failures: list[RotationFailure]
    credentials: list[CredentialRecord]
    credential_matrix: dict[str, dict[str, int]]
    auth: list[AuthSummary]
    auth_events: list[AuthEvent]
    operator_changes: list[OperatorChange]
    pairs: list[PairRecord]
    unreviewed: list[UnreviewedItem]
    attestations: list[AttestationRecord]
    controls: list[ControlRow]
    kit_refusals: list[KitRefusal] = field(default_factory=list)
    notify_failures: list[NotifyFailure] = field(default_factory=list)
    unsigned: list[UnsignedEntry] = field(default_factory=list)
    drills: list[OperatorDrill] = field(default_factory=list)
    drill_credentials: list[CredentialDrill] = field(default_factory=list)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["format"] = REPORT_FORMAT
        doc["version"] = REPORT_VERSION
        for pair, pdoc in zip(self.pairs, doc["pairs"]):
            pdoc["flagged"] = pair.flagged
        for co, cdoc in zip(self.checkouts, doc["checkouts"]):
            cdoc["approvers"] = co.approvers
            cdoc["released"] = co.released
        out: dict[str, Any] = _times_to_text(doc)
        return out


def _times_to_text(value: Any, key: str = "") -> Any:
    """The document with every instant under a TIME_KEYS key as RFC 3339 UTC."""
    if isinstance(value, dict):
        return {k: _times_to_text(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_times_to_text(v, key) for v in value]
    if key in TIME_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return iso(float(value))
    return value
