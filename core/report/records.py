"""One dataclass per thing the custody report lists: a checkout, an emergency use,
an onboarding secret, a rotation failure, ... Each is folded from the audit log
(``collect``) and rendered row by row (``rows``); none holds a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glasskey.core.report.rules import EMERGENCY_REVIEWS

#: Every record type (and the UNSIGNED label): the package re-exports exactly these.
__all__ = [
    "UNSIGNED",
    "ApprovalRecord",
    "AttestationRecord",
    "AuthEvent",
    "AuthSummary",
    "CheckoutRecord",
    "CredentialDrill",
    "CredentialRecord",
    "DrillRecord",
    "EmergencyUse",
    "KitRecord",
    "KitRefusal",
    "NotifyFailure",
    "OnboardingRecord",
    "OperatorChange",
    "OperatorDrill",
    "PairRecord",
    "RefusalRecord",
    "ReviewRecord",
    "Reviewed",
    "RotationFailure",
    "RotationOutcome",
    "UnreviewedItem",
    "UnsignedEntry",
]


@dataclass
class ApprovalRecord:
    approver: str
    at: float


@dataclass
class ReviewRecord:
    reviewer: str
    outcome: str  # ok | concern
    note: str
    at: float
    kind: str


@dataclass
class RefusalRecord:
    actor: str
    why: str
    at: float


@dataclass(kw_only=True)
class Reviewed:
    """What the review queue asks of a checkout, an onboarding secret, an emergency
    use or a failed rotation: the reviews recorded for it, and where that leaves it
    (``build`` sets the status from the reviews, the number needed and the age)."""

    reviews: list[ReviewRecord] = field(default_factory=list)
    #: not-required | pending | overdue | ok | concern
    review_status: str = "not-required"


@dataclass
class RotationOutcome:
    #: committed | failed | apply-pending | rolled-back | in-progress | not-rotated | not-needed
    outcome: str = "not-needed"
    version: int | None = None
    at: float | None = None
    error: str = ""
    failures: int = 0
    applied_by: str = ""
    #: True when the rotation was not linked to this checkout but a later
    #: version of the credential was committed after the secret was revealed.
    separate: bool = False

    def text(self) -> str:
        o = self.outcome
        if o == "committed":
            out = f"committed v{self.version}"
            if self.applied_by:
                out += f" (applied by {self.applied_by})"
            if self.separate:
                out += " (by a later rotation)"
        elif o == "failed":
            out = f"FAILED: {self.error}" if self.error else "FAILED"
        elif o == "not-needed":
            return "-"
        else:
            out = o
        if self.failures and o != "failed":
            out += f" after {self.failures} failed attempt{'s' if self.failures > 1 else ''}"
        elif self.failures > 1:
            out += f" ({self.failures} attempts)"
        return out


@dataclass
class CheckoutRecord(Reviewed):
    """One checkout, named by its request id through its whole life."""

    id: str
    credential: str
    requester: str
    reason: str = ""
    ticket: str = ""
    duration: int = 0
    version: int | None = None
    requested_at: float | None = None
    approvals: list[ApprovalRecord] = field(default_factory=list)
    needed: int | None = None
    #: requested | approved | denied | cancelled | expired | held | returned | lease-expired
    outcome: str = "requested"
    denied_by: str = ""
    deny_reason: str = ""
    held_from: float | None = None
    held_to: float | None = None
    lease_expires: float | None = None
    ended_by: str = ""
    held_seconds: int | None = None
    rotation: RotationOutcome = field(default_factory=RotationOutcome)
    emergency: bool = False
    kit: str = ""
    refusals: list[RefusalRecord] = field(default_factory=list)
    #: When the approvals reached the number needed (or the kit opened it): from
    #: then on the requester could open the grant offline, so the checkout
    #: counts as a *release* whether or not a reveal was ever recorded.
    released_at: float | None = None
    #: The rotation that followed was started by a lease-expiry sweep.
    lease_rotation: bool = False
    #: When a request that was never revealed was denied, cancelled or expired.
    ended_at: float | None = None

    @property
    def approvers(self) -> list[str]:
        return [a.approver for a in self.approvals]

    @property
    def closed_at(self) -> float | None:
        """When the review clock starts: custody's end if revealed, else the request's."""
        return self.held_to if self.revealed else self.ended_at

    @property
    def reviews_needed(self) -> int:
        """Distinct reviewers the checkout needs: an emergency-kit use needs two."""
        return EMERGENCY_REVIEWS if self.emergency else 1

    @property
    def revealed(self) -> bool:
        return self.held_from is not None

    @property
    def released(self) -> bool:
        return self.released_at is not None or self.revealed

    @property
    def released_not_revealed(self) -> bool:
        return self.released_at is not None and not self.revealed

    @property
    def finished(self) -> bool:
        if self.released_not_revealed:
            return self.outcome in ("cancelled", "expired", "denied")
        return self.revealed and self.outcome in ("returned", "lease-expired")

    @property
    def exposed_from(self) -> float | None:
        """When the value could first be read: the release, else the reveal."""
        if self.released_at is not None and self.held_from is not None:
            return min(self.released_at, self.held_from)
        return self.released_at if self.released_at is not None else self.held_from


@dataclass
class OnboardingRecord(Reviewed):
    id: str
    identity: str = ""
    issued_by: str = ""
    issued_at: float | None = None
    approver: str = ""
    reason: str = ""
    channel: str = ""
    expires: float | None = None
    reveals: list[float] = field(default_factory=list)
    revealed_by: list[str] = field(default_factory=list)
    activated_at: float | None = None
    expired_at: float | None = None
    revoked_at: float | None = None
    revoked_how: str = ""
    #: issued | approved | revealed | activated | expired | revoked
    status: str = "issued"

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def finished_at(self) -> float | None:
        """When the secret stopped being usable: activated, expired or revoked, first."""
        ends = [t for t in (self.activated_at, self.expired_at, self.revoked_at) if t is not None]
        return min(ends) if ends else None


@dataclass
class EmergencyUse(Reviewed):
    id: str
    credential: str
    kit: str
    by: str
    at: float
    reason: str = ""
    ticket: str = ""
    rotation: str = ""
    reviewers: list[str] = field(default_factory=list)


@dataclass
class KitRefusal:
    """A refused emergency-kit use (wrong, burned or unknown kit): a high finding."""

    at: float
    by: str
    credential: str
    why: str
    fingerprint: str


@dataclass
class NotifyFailure:
    """The site's emergency notification hook failed: the alarm did not ring."""

    at: float
    by: str
    request: str
    why: str


@dataclass
class DrillRecord:
    """One readiness drill (core/drill.py): signed by the operator who did it."""

    at: float
    operator: str
    kind: str  # share | kit
    subject: str  # credential name or kit id
    passed: bool
    failed_check: str = ""
    why: str = ""


@dataclass
class OperatorDrill:
    """Per active operator: the last successful share drill, and whether one falls in
    the period (flagged when none does)."""

    operator: str
    last_passed: float | None
    last_subject: str
    passed_in_period: int
    failed_in_period: int
    kit_drills_in_period: int
    flagged: bool


@dataclass
class CredentialDrill:
    """A credential whose shares fewer than k operators drilled in the period could
    open (every active operator holds a share; a failed drill of it does not count)."""

    credential: str
    k: int
    drilled: int


@dataclass
class UnsignedEntry:
    """An entry with no signature: recorded by some client, not signed by anyone."""

    at: float
    seq: int
    event: str
    subject: str


#: How unsigned system entries are named everywhere in the report: they carry
#: no one's authority, so they are never presented as someone's act.
UNSIGNED = "unsigned: recorded by a client, not signed by anyone"


@dataclass
class KitRecord:
    id: str
    fingerprint: str = ""
    issued_by: str = ""
    issued_at: float | None = None
    uses: list[str] = field(default_factory=list)
    burned_at: float | None = None
    burned_by: str = ""


@dataclass
class RotationFailure(Reviewed):
    credential: str
    at: float
    by: str
    error: str
    request: str
    to_version: int | None
    resolved_at: float | None = None


@dataclass
class CredentialRecord:
    name: str
    kind: str
    connector: str
    status: str
    version: int
    rotated_at: float
    age_days: float
    age_bucket: str
    rotations: int
    failure: str = ""
    held_by: str = ""
    checkouts_in_period: int = 0
    rotations_in_period: int = 0
    failures_in_period: int = 0
    last_checkout: float | None = None
    in_vault: bool = True
    #: The status the verified log implies ('' when the log says nothing).
    log_status: str = ""


@dataclass
class AuthEvent:
    at: float
    operator: str
    event: str  # failed | locked
    why: str = ""
    failures: int | None = None
    locked_for: int = 0
    retry_in: int = 0
    signed: bool = False


@dataclass
class AuthSummary:
    operator: str
    failures: int = 0
    lockouts: int = 0
    locked_attempts: int = 0
    last_at: float | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    #: How many of these rest only on unsigned system entries.
    unsigned: int = 0


@dataclass
class OperatorChange:
    at: float
    operator: str
    event: str
    by: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairRecord:
    approver: str
    requester: str
    count: int
    requester_total: int
    share: float
    flags: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass
class UnreviewedItem:
    kind: str  # checkout | emergency | onboarding | rotation
    id: str
    subject: str
    holder: str
    finished_at: float | None
    age_days: float
    reviews: int
    needed: int
    overdue: bool


@dataclass
class AttestationRecord:
    id: str
    by: str
    at: float
    since: str
    until: str
    sha256: str
    format: str
    entries: int | None
    head_hash: str = ""

