"""The domain, as frozen dataclasses read from the store's documents.

Documents stay plain JSON in the store (so the file format is the spec);
these classes are the typed view the services, the CLI and the TUI share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from glasskey.core.errors import UsageError

# The signed roster's statuses (core/roster.py), re-exported beside the other domain enums.
from glasskey.core.roster import OperatorStatus as OperatorStatus

ROLES = ("requester", "approver", "admin")
KINDS = ("break-glass", "batch", "onboarding")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def check_name(name: str, what: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(
            f"{what} name {name!r} is not allowed: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    return name


class CheckoutState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    CHECKED_OUT = "checked-out"
    ROTATING = "rotating"
    ROTATION_FAILED = "rotation-failed"
    CLOSED = "closed"


OPEN_STATES = frozenset(
    {CheckoutState.REQUESTED, CheckoutState.APPROVED, CheckoutState.CHECKED_OUT,
     CheckoutState.ROTATING, CheckoutState.ROTATION_FAILED}
)


class CheckoutKind(StrEnum):
    """What a request record is: a dual-control checkout, a one-time onboarding
    secret, or an emergency (kit) use. Read from the record's ``kind`` field,
    never from its id."""

    CHECKOUT = "checkout"
    ONBOARDING = "onboarding"
    EMERGENCY = "emergency"


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    ROTATION_FAILED = "rotation-failed"
    APPLY_PENDING = "apply-pending"
    #: A one-time onboarding secret after use or expiry: never checked out again.
    REVOKED = "revoked"


class RotationOutcome(StrEnum):
    COMMITTED = "committed"
    FAILED = "failed"
    APPLY_PENDING = "apply-pending"
    ROLLED_BACK = "rolled-back"
    NOTHING_TO_DO = "nothing-to-do"
    #: rotate_many: the credential is checked out; its holder's check-in rotates it.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Policy:
    """Per-credential rules: who must agree, for how long, what values look like."""

    k: int = 2
    max_duration: int = 4 * 3600
    claim_window: int = 15 * 60
    request_ttl: int = 3600
    length: int = 32
    classes: tuple[str, ...] = ("lower", "upper", "digit", "symbol")
    exclude: str = "\"'\\`$ "

    def to_doc(self) -> dict[str, Any]:
        return {"k": self.k, "max_duration": self.max_duration,
                "claim_window": self.claim_window, "request_ttl": self.request_ttl,
                "length": self.length, "classes": list(self.classes), "exclude": self.exclude}

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Policy:
        doc = doc or {}
        base = cls()
        return cls(
            k=int(doc.get("k", base.k)),
            max_duration=int(doc.get("max_duration", base.max_duration)),
            claim_window=int(doc.get("claim_window", base.claim_window)),
            request_ttl=int(doc.get("request_ttl", base.request_ttl)),
            length=int(doc.get("length", base.length)),
            classes=tuple(doc.get("classes", base.classes)),
            exclude=str(doc.get("exclude", base.exclude)),
        )


@dataclass(frozen=True)
class Operator:
    id: str
    name: str
    roles: tuple[str, ...]
    status: OperatorStatus
    x: int
    hpke_pub: str
    sign_pub: str
    created: float
    failures: int = 0
    locked_until: float = 0.0

    @property
    def active(self) -> bool:
        return self.status == OperatorStatus.ACTIVE

    def has(self, role: str) -> bool:
        return role in self.roles

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Operator:
        totp = doc.get("totp", {})
        return cls(
            id=doc["id"], name=doc["name"], roles=tuple(doc["roles"]),
            status=OperatorStatus(doc["status"]),
            x=int(doc["x"]), hpke_pub=doc["hpke_pub"], sign_pub=doc["sign_pub"],
            created=float(doc["created"]), failures=int(totp.get("failures", 0)),
            locked_until=float(totp.get("locked_until", 0.0)),
        )

    @classmethod
    def from_member(cls, m: Any, doc: dict[str, Any] | None) -> Operator:
        """Authority from the signed roster member ``m``; lockout counters from the store."""
        totp = (doc or {}).get("totp", {})
        return cls(
            id=m.id, name=m.name, roles=tuple(m.roles), status=OperatorStatus(m.status),
            x=int(m.x),
            hpke_pub=m.hpke_pub, sign_pub=m.sign_pub,
            created=float((doc or {}).get("created", 0.0)),
            failures=int(totp.get("failures", 0)),
            locked_until=float(totp.get("locked_until", 0.0)),
        )

    def to_public(self) -> dict[str, Any]:
        return {"name": self.name, "roles": list(self.roles), "status": self.status,
                "failures": self.failures, "locked_until": self.locked_until}


@dataclass(frozen=True)
class Credential:
    id: str
    name: str
    kind: str
    connector: str
    target: str | None
    options: dict[str, str]
    policy: Policy
    version: int
    status: CredentialStatus
    created: float
    rotated_at: float
    rotations: int = 0
    failure: str = ""

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Credential:
        return cls(
            id=doc["id"], name=doc["name"], kind=doc["kind"], connector=doc["connector"],
            target=doc.get("target"), options=dict(doc.get("options", {})),
            policy=Policy.from_doc(doc.get("policy")), version=int(doc["version"]),
            status=CredentialStatus(doc["status"]), created=float(doc["created"]),
            rotated_at=float(doc.get("rotated_at", doc["created"])),
            rotations=int(doc.get("rotations", 0)), failure=str(doc.get("failure", "")),
        )


@dataclass(frozen=True)
class Approval:
    approver: str
    at: float
    expires: float
    has_grant: bool


@dataclass(frozen=True)
class Checkout:
    """A request and everything that happened to it (the request id names it all)."""

    id: str
    cred_id: str
    cred_name: str
    requester: str
    reason: str
    ticket: str
    duration: int
    created: float
    state: str
    needed: int
    approvals: tuple[Approval, ...] = ()
    version: int = 0
    revealed_at: float | None = None
    lease_expires: float | None = None
    ended_at: float | None = None
    closed_reason: str = ""
    denied_by: str = ""
    deny_reason: str = ""
    rotation: dict[str, Any] = field(default_factory=dict)
    review: dict[str, Any] = field(default_factory=dict)
    kind: CheckoutKind = CheckoutKind.CHECKOUT
    identity: str = ""
    channel: str = ""
    expires_at: float | None = None
    kit: str = ""
    #: Approved, then ended without a reveal (cancel, deny, expiry): counted as a
    #: release, since the requester could open the grant offline.
    released: bool = False
    end_reason: str = ""

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Checkout:
        return cls(
            id=doc["id"], cred_id=doc["cred_id"], cred_name=doc["cred_name"],
            requester=doc["requester"], reason=doc["reason"], ticket=doc["ticket"],
            duration=int(doc["duration"]), created=float(doc["created"]), state=doc["state"],
            needed=int(doc["needed"]),
            approvals=tuple(
                Approval(a["approver"], float(a["at"]), float(a["expires"]),
                         a.get("grant") is not None)
                for a in doc.get("approvals", [])
            ),
            version=int(doc.get("version", 0)),
            revealed_at=doc.get("revealed_at"), lease_expires=doc.get("lease_expires"),
            ended_at=doc.get("ended_at"), closed_reason=doc.get("closed_reason", ""),
            denied_by=doc.get("denied_by", ""), deny_reason=doc.get("deny_reason", ""),
            rotation=dict(doc.get("rotation", {})), review=dict(doc.get("review", {})),
            kind=CheckoutKind(doc.get("kind", CheckoutKind.CHECKOUT)),
            identity=str(doc.get("identity", "")),
            channel=str(doc.get("channel", "")), expires_at=doc.get("expires_at"),
            kit=str(doc.get("kit", "")), released=bool(doc.get("released", False)),
            end_reason=str(doc.get("end_reason", "")),
        )

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a.approver for a in self.approvals)

    def display_state(self, now: float) -> str:
        """What people see: adds OVERDUE / EXPIRED that only time creates."""
        if self.state == CheckoutState.CHECKED_OUT and self.lease_expires is not None \
                and now >= self.lease_expires:
            return "overdue"
        if self.state == CheckoutState.APPROVED and self.approvals \
                and now >= min(a.expires for a in self.approvals):
            return "approval-expired"
        return self.state

    def to_public(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id, "credential": self.cred_name, "requester": self.requester,
            "reason": self.reason, "ticket": self.ticket, "duration": self.duration,
            "created": self.created, "state": self.display_state(now),
            "needed_approvals": self.needed, "approvers": list(self.approvers),
            "revealed_at": self.revealed_at, "lease_expires": self.lease_expires,
            "ended_at": self.ended_at, "closed_reason": self.closed_reason,
            "rotation": self.rotation, "review": self.review, "kind": self.kind,
            "released": self.released,
            **({"identity": self.identity, "channel": self.channel,
                "expires_at": self.expires_at} if self.kind == CheckoutKind.ONBOARDING else {}),
            **({"kit": self.kit} if self.kind == CheckoutKind.EMERGENCY else {}),
        }


DURATION_FORMS = "90s, 30m, 1h30m or 2h"
_DURATION_RE = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> int:
    """'90s', '30m', '1h30m', '2h' (units in h, m, s order): seconds.

    Strict on purpose: a bare '30' (seconds? minutes?) and a typo such as '30x'
    used to become 30 seconds silently, which is a lease nobody meant.
    """
    raw = (text or "").strip().lower()
    m = _DURATION_RE.fullmatch(raw)
    if not raw or not m or not any(m.groups()):
        shown = (text or "").strip()[:20].encode("unicode_escape").decode("ascii")
        raise UsageError(f"duration '{shown}' is not understood; use e.g. {DURATION_FORMS}")
    h, mi, se = (int(g) if g else 0 for g in m.groups())
    value = h * 3600 + mi * 60 + se
    if value <= 0:
        raise UsageError("duration must be positive")
    return value


def format_duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class AlertKind(StrEnum):
    """What an alert is about; the fronts choose where it is dealt with from this."""

    EMERGENCY_KIT_USED = "emergency-kit-used"
    REVIEW_OVERDUE = "review-overdue"
    ROTATION_FAILED = "rotation-failed"
    APPLY_PENDING = "apply-pending"
    OVERDUE = "overdue"
    KIT_BURNED = "kit-burned"
    NO_KIT = "no-kit"
    RELEASED_NOT_ROTATED = "released-not-rotated"
    SWEEP_FAILING = "sweep-failing"
    NOTIFY_FAILING = "notify-failing"
    NOTIFY_MISCONFIGURED = "notify-misconfigured"


@dataclass(frozen=True)
class Alert:
    """Something every operator's screen shows until it is dealt with.

    ``message`` is the sentence people read (the CLI prints it as it is);
    ``kind``, ``credential`` and ``request_id`` are for a front that wants to
    act on it, so that nothing ever parses the sentence.
    """

    kind: AlertKind
    credential: str | None
    request_id: str | None
    message: str

    def __str__(self) -> str:
        return self.message
