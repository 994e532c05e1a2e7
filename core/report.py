"""The custody review report: who held what, when, why, who approved, was it
rotated, was it reviewed, and is the log intact.

The **audit log is the source of truth**: the report is built from one pass
over ``audit.jsonl`` (after ``verify_audit`` has checked the chain), plus the
vault's read views for each credential's *current* status. Nothing in the log
is a secret value (DESIGN.md), and the report adds none.

Period semantics (docs/reports.md):

* an item belongs to the period ``[since, until]`` when something happened to
  it inside the period (a checkout requested or held in it, an onboarding
  secret issued/shown/activated/expired in it, an emergency use in it, ...);
* its *follow-ups* (rotation outcome, reviews) are read from the whole log as
  it stands when the report is built, so a report generated after the period
  shows the reviews recorded since. The report names the audit head (seq and
  line hash) it read, which pins exactly what it is a function of.

Entry points::

    report = build_custody_report(vault, since, until)
    text = render_markdown(report) | render_html(report) | render_json(report)
    attestation_id = attest(vault, session, text, "md", since, until)
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from glasskey.core.audit import SYSTEM_EVENTS
from glasskey.core.clock import iso
from glasskey.core.errors import IntegrityError, UsageError
from glasskey.core.exports import escape_controls, escape_json_text
from glasskey.core.models import format_duration

if TYPE_CHECKING:
    from glasskey.core.session import Session
    from glasskey.core.vault import Vault

REPORT_FORMAT = "glasskey-custody-report"
REPORT_VERSION = 1
DAY = 86400.0

#: Segregation of duties: a pair (approver -> requester) is flagged "dominant"
#: when it occurs at least this many times in the period ...
SOD_MIN_COUNT = 3
#: ... and accounts for more than this share of the requester's approvals.
SOD_SHARE = 0.5
#: Emergency-kit uses need this many distinct reviewers (DESIGN.md).
EMERGENCY_REVIEWS = 2
#: Default age after which an unreviewed finished item is overdue.
REVIEW_DUE = 7 * DAY
#: Rotation-age buckets (days) for the credentials table.
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 7 d", 7.0), ("7-30 d", 30.0), ("30-90 d", 90.0), ("> 90 d", float("inf")),
)
#: Rows shown per long table in the Markdown/HTML renderings (JSON has all).
MAX_ROWS = 2000

#: Keys whose float values are instants (rendered as RFC 3339 in JSON).
TIME_KEYS = frozenset({
    "since", "until", "generated_at", "at", "requested_at", "held_from", "held_to",
    "lease_expires", "issued_at", "expires", "activated_at", "expired_at", "revoked_at",
    "burned_at", "finished_at", "resolved_at", "rotated_at", "last_at", "reveals",
    "last_checkout", "first_at", "released_at", "ended_at",
})


# ==== the report's data =======================================================================
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
class CheckoutRecord:
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
    reviews: list[ReviewRecord] = field(default_factory=list)
    #: not-required | pending | overdue | ok | concern
    review_status: str = "not-required"
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
class OnboardingRecord:
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
    reviews: list[ReviewRecord] = field(default_factory=list)
    review_status: str = "not-required"

    @property
    def finished(self) -> bool:
        return any(t is not None for t in (self.activated_at, self.expired_at, self.revoked_at))


@dataclass
class EmergencyUse:
    id: str
    credential: str
    kit: str
    by: str
    at: float
    reason: str = ""
    ticket: str = ""
    rotation: str = ""
    reviews: list[ReviewRecord] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    review_status: str = "pending"


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
class RotationFailure:
    credential: str
    at: float
    by: str
    error: str
    request: str
    to_version: int | None
    resolved_at: float | None = None
    reviews: list[ReviewRecord] = field(default_factory=list)
    review_status: str = "pending"


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


# ==== reading the log =========================================================================
def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _i(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _f(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _in(t: float | None, since: float, until: float) -> bool:
    return t is not None and since <= t <= until


@dataclass
class _Rot:
    at: float
    kind: str  # intent | commit | failed | rollback | apply-pending
    actor: str
    version: int | None
    request: str
    error: str = ""
    applied_by: str = ""
    reason: str = ""


class _Collector:
    """One pass over the log; everything keyed so follow-ups find their item."""

    def __init__(self) -> None:
        self.checkouts: dict[str, CheckoutRecord] = {}
        self.onboarding: dict[str, OnboardingRecord] = {}
        self.kits: dict[str, KitRecord] = {}
        self.emergency: dict[str, EmergencyUse] = {}
        self.rot: dict[str, list[_Rot]] = defaultdict(list)
        self.rot_by_request: dict[str, list[_Rot]] = defaultdict(list)
        self.intent_request: dict[tuple[str, int], str] = {}
        self.reviews: dict[str, list[ReviewRecord]] = defaultdict(list)
        self.review_holder: dict[tuple[str, int], str] = {}
        self.auth: list[AuthEvent] = []
        self.operators: list[OperatorChange] = []
        self.attestations: list[AttestationRecord] = []
        self.refusals: dict[str, list[RefusalRecord]] = defaultdict(list)
        self.event_times: dict[str, list[float]] = defaultdict(list)
        self.kit_refusals: list[KitRefusal] = []
        self.notify_failures: list[NotifyFailure] = []
        self.unsigned: list[UnsignedEntry] = []
        self.drills: list[DrillRecord] = []
        #: credential -> (status the log implies, since when: the entry's RFC 3339 time)
        self.cred_status: dict[str, tuple[str, str]] = {}

    def _co(self, req: str, details: dict[str, Any]) -> CheckoutRecord:
        rec = self.checkouts.get(req)
        if rec is None:
            rec = CheckoutRecord(req, _s(details.get("credential")), "")
            self.checkouts[req] = rec
        if not rec.credential and details.get("credential"):
            rec.credential = _s(details.get("credential"))
        return rec

    def _ob(self, oid: str) -> OnboardingRecord:
        rec = self.onboarding.get(oid)
        if rec is None:
            rec = self.onboarding[oid] = OnboardingRecord(oid)
        return rec

    def _kit(self, kid: str) -> KitRecord:
        rec = self.kits.get(kid)
        if rec is None:
            rec = self.kits[kid] = KitRecord(kid)
        return rec

    def add(self, entry: dict[str, Any]) -> None:
        event = _s(entry.get("event"))
        at = _ts(entry.get("time"))
        if at is None:
            return
        actor = _s(entry.get("actor"))
        subject = _s(entry.get("subject"))
        raw = entry.get("details")
        d: dict[str, Any] = raw if isinstance(raw, dict) else {}
        group, _, action = event.partition(".")
        signed = entry.get("sig") is not None
        if not signed:
            self.unsigned.append(UnsignedEntry(at, _i(entry.get("seq")) or 0, event, subject))
            if event not in SYSTEM_EVENTS:
                return  # an unsigned entry claiming an act: listed, never applied
            if group == "auth":
                self._auth(action, at, subject, d, signed=False)
            return
        if group == "checkout" or event == "lease.expired":
            self._checkout(action if group == "checkout" else "lease-expired",
                           at, actor, subject, d)
        elif group == "rotate":
            self._rotate(action, at, actor, subject, d)
        elif event == "review.recorded":
            self.reviews[subject].append(ReviewRecord(
                actor, _s(d.get("outcome")), _s(d.get("note")), at, _s(d.get("kind"))))
            if d.get("holder"):
                self.review_holder[(subject, len(self.reviews[subject]) - 1)] = _s(
                    d.get("holder"))
        elif group == "onboarding":
            self._onboarding(action, at, actor, subject, d)
        elif group == "emergency":
            self._emergency(action, at, actor, subject, d)
        elif group == "auth":
            self._auth(action, at, subject, d, signed=True)
        elif event == "credential.added":
            self.cred_status[subject] = ("active", _s(entry.get("time")))
        elif event == "vault.founded":
            founding = d.get("founding")
            founders = founding.get("founders") if isinstance(founding, dict) else None
            for rec in founders if isinstance(founders, list) else []:
                if isinstance(rec, dict):
                    self.operators.append(OperatorChange(
                        at, _s(rec.get("name")), "enrolled", actor,
                        {"roles": rec.get("roles"), "founder": True}))
        elif group == "operator":
            keep = {k: v for k, v in d.items()
                    if k in ("roles", "reason", "founder", "how", "status", "by")}
            self.operators.append(OperatorChange(at, subject, action, actor, keep))
        elif event == "notify.failed":  # core/notify.py: a delivery that did not go out
            self.notify_failures.append(NotifyFailure(
                at, actor, _s(d.get("request")) or subject,
                f"{_s(d.get('event'))} via {_s(d.get('channel'))}: {_s(d.get('reason'))}"))
        elif group == "drill":
            self.drills.append(DrillRecord(at, actor, _s(d.get("kind")) or "share", subject,
                                           action == "passed", _s(d.get("failed")),
                                           _s(d.get("why"))))
        elif event == "report.attested":
            self.attestations.append(AttestationRecord(
                subject, actor, at, _s(d.get("since")), _s(d.get("until")),
                _s(d.get("sha256")), _s(d.get("format")),
                _i(d.get("head_seq")) if d.get("head_seq") is not None else _i(d.get("entries")),
                _s(d.get("head_hash"))))

    def _auth(self, action: str, at: float, subject: str, d: dict[str, Any], *,
              signed: bool) -> None:
        if action == "failed":
            self.auth.append(AuthEvent(at, subject, "failed", _s(d.get("why")),
                                       _i(d.get("failures")), _i(d.get("locked_for")) or 0,
                                       signed=signed))
        elif action == "locked":
            self.auth.append(AuthEvent(at, subject, "locked",
                                       retry_in=_i(d.get("retry_in")) or 0, signed=signed))

    # -- checkouts --------------------------------------------------------------------------
    def _checkout(self, action: str, at: float, actor: str, req: str,
                  d: dict[str, Any]) -> None:
        rec = self._co(req, d)
        self.event_times[req].append(at)
        if action == "requested":
            rec.requester = actor
            rec.reason = _s(d.get("reason"))
            rec.ticket = _s(d.get("ticket"))
            rec.duration = _i(d.get("duration")) or 0
            rec.version = _i(d.get("version"))
            rec.requested_at = at
        elif action == "approved":
            rec.approvals.append(ApprovalRecord(actor, at))
            if not rec.requester:
                rec.requester = _s(d.get("requester"))
            rec.needed = _i(d.get("needed"))
            have = _i(d.get("approvals"))
            enough = rec.needed is not None and max(have or 0, len(rec.approvals)) >= rec.needed
            if enough and rec.released_at is None:
                rec.released_at = at
            if rec.outcome == "requested" and enough:
                rec.outcome = "approved"
        elif action == "denied":
            rec.ended_at = at
            rec.outcome = "denied"
            rec.denied_by = actor
            rec.deny_reason = _s(d.get("reason"))
        elif action == "cancelled":
            rec.outcome, rec.ended_at = "cancelled", at
        elif action == "expired":
            rec.outcome, rec.ended_at = "expired", at
        elif action == "refused":
            rec.refusals.append(RefusalRecord(actor, _s(d.get("why")), at))
        elif action == "revealed":
            rec.held_from = at if rec.held_from is None else min(rec.held_from, at)
            if rec.held_to is None:
                rec.outcome = "held"
            rec.lease_expires = _f(d.get("lease_expires"))
            if _i(d.get("version")) is not None:
                rec.version = _i(d.get("version"))
            if not rec.requester:
                rec.requester = actor
            approvers = d.get("approvers")
            if isinstance(approvers, list) and not rec.approvals:
                rec.approvals = [ApprovalRecord(_s(a), at) for a in approvers]
        elif action == "checked-in":
            if rec.held_to is None:
                rec.held_to = at
                rec.ended_by = _s(d.get("by")) or actor
                rec.outcome = "returned"
        elif action == "lease-expired":
            # The lease ran out with the secret still out: custody ended by
            # time, the exposure lasts until the rotation commits.
            if rec.held_to is None:
                lease = _f(d.get("lease_expires")) or rec.lease_expires or at
                rec.held_to = min(lease, at)
                rec.ended_by = "lease expiry"
                rec.outcome = "lease-expired"
            if not rec.requester:
                rec.requester = _s(d.get("holder"))

    # -- rotation ---------------------------------------------------------------------------
    def _rotate(self, action: str, at: float, actor: str, cred: str,
                d: dict[str, Any]) -> None:
        request = _s(d.get("request"))
        if action == "intent":
            version = _i(d.get("to_version"))
            if request and version is not None:
                self.intent_request[(cred, version)] = request
            r = _Rot(at, "intent", actor, version, request, reason=_s(d.get("reason")))
        elif action == "commit":
            version = _i(d.get("version"))
            if not request and version is not None:
                request = self.intent_request.get((cred, version), "")
            r = _Rot(at, "commit", actor, version, request,
                     applied_by=_s(d.get("applied_by")))
        elif action == "failed":
            version = _i(d.get("to_version"))
            if not request and version is not None:
                request = self.intent_request.get((cred, version), "")
            r = _Rot(at, "failed", actor, version, request, error=_s(d.get("error")))
        elif action == "rollback":
            r = _Rot(at, "rollback", actor, _i(d.get("dropped_version")), request)
        elif action == "apply-pending":
            version = _i(d.get("to_version"))
            if not request and version is not None:
                request = self.intent_request.get((cred, version), "")
            r = _Rot(at, "apply-pending", actor, version, request)
        else:
            return  # apply-revealed and future details: not an outcome
        self.rot[cred].append(r)
        if request:
            self.rot_by_request[request].append(r)

    # -- exceptions -------------------------------------------------------------------------
    def _onboarding(self, action: str, at: float, actor: str, oid: str,
                    d: dict[str, Any]) -> None:
        rec = self._ob(oid)
        self.event_times["onboarding:" + oid].append(at)
        if action == "issued":
            rec.identity = _s(d.get("identity"))
            rec.issued_by = actor
            rec.issued_at = at
            rec.reason = _s(d.get("reason"))
            rec.channel = _s(d.get("channel"))
            rec.expires = _f(d.get("expires")) or _ts(d.get("expires"))
            rec.approver = _s(d.get("approver"))
            rec.status = "issued"
        elif action == "approved":
            rec.approver = rec.approver or actor
            rec.status = "approved" if rec.status == "issued" else rec.status
        elif action == "revealed":
            rec.reveals.append(at)
            rec.revealed_by.append(actor)
            if rec.status in ("issued", "approved"):
                rec.status = "revealed"
        elif action == "activated":
            rec.activated_at = at
            rec.status = "activated" if rec.revoked_at is None else rec.status
        elif action == "expired":
            rec.expired_at = at
            rec.status = "expired" if rec.revoked_at is None else rec.status
        elif action == "revoked":
            rec.revoked_at = at
            rec.revoked_how = _s(d.get("how"))
            rec.status = "revoked"
            if d.get("credential"):
                self.cred_status[_s(d.get("credential"))] = ("revoked", iso(at))

    def _emergency(self, action: str, at: float, actor: str, subject: str,
                   d: dict[str, Any]) -> None:
        if action == "kit-issued":
            kit = self._kit(subject)
            kit.fingerprint = _s(d.get("fingerprint"))
            kit.issued_by = actor
            kit.issued_at = at
        elif action == "used":
            kit_id = _s(d.get("kit"))
            self.emergency[subject] = EmergencyUse(
                subject, _s(d.get("credential")), kit_id, actor, at, _s(d.get("reason")),
                _s(d.get("ticket")))
            if kit_id:
                self._kit(kit_id).uses.append(subject)
            rec = self._co(subject, d)
            self.event_times[subject].append(at)
            rec.emergency = True
            rec.kit = kit_id
            rec.reason = rec.reason or _s(d.get("reason"))
            rec.ticket = rec.ticket or _s(d.get("ticket"))
            if rec.requested_at is None:
                rec.requested_at = at
            if rec.released_at is None:
                rec.released_at = at
            if not rec.requester:
                rec.requester = actor
            if rec.held_from is None:  # the kit opened it: custody starts now
                rec.held_from = at
                if rec.outcome in ("requested", "approved"):
                    rec.outcome = "held"
        elif action == "kit-burned":
            kit = self._kit(subject)
            kit.burned_at = at
            kit.burned_by = actor
        elif action == "refused":
            self.kit_refusals.append(KitRefusal(at, actor, subject, _s(d.get("why")),
                                                _s(d.get("fingerprint"))))
        elif action == "notify-failed":
            self.notify_failures.append(NotifyFailure(at, actor, subject, _s(d.get("why"))))


# ==== building ===============================================================================
#: Status a rotation event leaves its credential in (the log's view of it).
ROTATION_STATUS = {"rotate.commit": "active", "rotate.failed": "rotation-failed",
                   "rotate.apply-pending": "apply-pending"}
#: Checkout events that keep a request open, and those that close it.
_OPENING = frozenset({"checkout.requested", "checkout.approved", "checkout.revealed",
                      "checkout.refused"})
_CLOSING = frozenset({"checkout.denied", "checkout.cancelled", "checkout.expired",
                      "checkout.checked-in", "lease.expired"})
_ROTATION_STATUS_B = {k.encode("ascii"): v for k, v in ROTATION_STATUS.items()}
_OPENING_B = frozenset(e.encode("ascii") for e in _OPENING)
_CLOSING_B = frozenset(e.encode("ascii") for e in _CLOSING)
#: Entries before the period that no period's report uses.
_SKIP_BEFORE = frozenset({b"auth.failed", b"auth.locked", b"audit.tail-quarantined",
                          b"audit.uncommitted", b"lease.overdue", b"operator.enrolled",
                          b"operator.activated", b"operator.suspended",
                          b"operator.reactivated", b"operator.removed"})
#: Entry groups always parsed in full: rare, and each can matter to any period.
_ALWAYS = ("emergency.", "onboarding.", "report.attested", "credential.added", "drill.")
#: Rotations kept per credential from before the period (see _Feeder).
KEEP_ROTATIONS = 4


def _tail_fields(raw: bytes) -> tuple[str, str, str] | None:
    """(time, event, subject) read from the end of a canonical line without parsing it.

    Canonical JSON sorts keys, so a line ends ``"event":E,...,"subject":S,
    "time":T}``; quotes inside values are escaped, so the last ``,"event":"``
    is the top-level key. None when the line does not have that shape.
    """
    t = raw.rfind(b',"time":"')
    e = raw.rfind(b',"event":"', 0, t)
    u = raw.rfind(b',"subject":"', 0, t)
    if t < 0 or e < 0 or u < 0 or not raw.endswith(b'"}'):
        return None
    e_end = raw.find(b'"', e + 10)
    subject = raw[u + 12:t - 1]
    if b"\\" in subject or raw[t - 1:t] != b'"':
        return None
    try:
        return (raw[t + 9:-2].decode("ascii"), raw[e + 10:e_end].decode("ascii"),
                subject.decode("utf-8"))
    except UnicodeDecodeError:
        return None


class _Feeder:
    """Streams the log into a _Collector, parsing only what the period can render.

    Why: a report of one day of a 1,000,000-entry log must not hold (or even
    parse) the whole log (issue 15: 3 GB for a one-day report). Entries dated
    in or after the period are parsed (after the period only the follow-ups
    of items already known). Before the period almost nothing is parsed:

    * a checkout's lines are kept raw while the request is open and dropped
      when it closes; the requests still open when the period starts are
      parsed then (they are held across the period);
    * rotation events update each credential's log status from the event and
      subject alone; the last KEEP_ROTATIONS per credential are kept raw;
    * emergency, onboarding, attestation and credential entries (rare) are
      parsed; authentication and operator entries are skipped.

    The result is the same report as parsing everything, for a log whose
    times run forward (core/audit.py refuses times that run backwards).
    """

    def __init__(self, col: _Collector, since: float, until: float) -> None:
        self.col = col
        self.since = iso(float(math.ceil(since)))
        self.since_b = self.since.encode("ascii")
        self.until = iso(float(math.floor(until)))
        self.pending: dict[str, list[bytes]] = {}
        self.rotations: dict[str, deque[bytes]] = {}
        self.phase = 0  # 0 before the period, 1 in it, 2 after it
        self.read = 0
        self.unreadable = 0
        self.parsed = 0
        self.interest: set[str] = set()

    def feed(self, raw: bytes) -> None:
        """One line (without its newline), in log order."""
        self.read += 1
        if self.phase == 0:
            t = raw.rfind(b',"time":"')
            if t > 0 and raw[t + 9:-2] < self.since_b and raw.endswith(b'"}') \
                    and self._before_fast(raw, t):
                return
        self._feed_slow(raw)

    def _feed_slow(self, raw: bytes) -> None:
        fields = _tail_fields(raw)
        if fields is None:
            self._parse(raw)
            return
        at, event, subject = fields
        if self.phase == 0 and at >= self.since:
            self._start_period()
        if self.phase == 1 and at > self.until:
            self._end_period()
        status = ROTATION_STATUS.get(event)
        if status is not None:
            self.col.cred_status[subject] = (status, at)
        if self.phase == 1:
            self._parse(raw)
        elif self.phase == 0:
            self._before(raw, event, subject)
        else:
            self._after(raw, event, subject)

    def _before_fast(self, raw: bytes, t: int) -> bool:
        """The common lines before the period, handled as bytes; False: use the slow path."""
        e = raw.rfind(b',"event":"', 0, t)
        if e < 0:
            return False
        e_end = raw.find(b'"', e + 10, t)
        event = raw[e + 10:e_end]
        if event in _SKIP_BEFORE:
            return True
        u = raw.rfind(b',"subject":"', e_end, t)
        subject = raw[u + 12:t - 1]
        if u < 0 or b"\\" in subject or raw[t - 1:t] != b'"':
            return False
        key = subject.decode("utf-8", "replace")
        col = self.col
        if event.startswith(b"rotate."):
            status = _ROTATION_STATUS_B.get(event)
            if status is not None:
                col.cred_status[key] = (status, raw[t + 9:-2].decode("ascii"))
            kept = self.rotations.get(key)
            if kept is None:
                kept = self.rotations[key] = deque(maxlen=KEEP_ROTATIONS)
            kept.append(raw)
            return True
        if event.startswith((b"emergency.", b"onboarding.", b"report.", b"credential.",
                             b"drill.")) \
                or key in col.checkouts or key in col.onboarding:
            return False
        if event in _OPENING_B:
            lines = self.pending.get(key)
            if lines is None:
                self.pending[key] = [raw]
            else:
                lines.append(raw)
        elif event in _CLOSING_B:
            self.pending.pop(key, None)
        elif event == b"review.recorded" and key in self.pending:
            self.pending[key].append(raw)
        return True

    def _before(self, raw: bytes, event: str, subject: str) -> None:
        col = self.col
        if event.startswith(_ALWAYS):
            self._parse(raw)
        elif event.startswith("rotate."):
            kept = self.rotations.setdefault(subject, deque(maxlen=KEEP_ROTATIONS))
            kept.append(raw)
        elif subject in col.checkouts or subject in col.onboarding:
            if event.startswith(("checkout.", "lease.", "review.")):
                self._parse(raw)
        elif event in _OPENING:
            self.pending.setdefault(subject, []).append(raw)
        elif event in _CLOSING:
            self.pending.pop(subject, None)
        elif event == "review.recorded" and subject in self.pending:
            self.pending[subject].append(raw)

    def _after(self, raw: bytes, event: str, subject: str) -> None:
        col = self.col
        known = subject in col.checkouts or subject in col.onboarding \
            or subject in col.emergency or subject in self.interest
        if event.startswith(_ALWAYS) or (event.startswith("review.") and (
                known or subject.startswith("rot-"))):
            self._parse(raw)
        elif event.startswith("rotate."):
            if subject in self.interest:
                self._parse(raw)
        elif subject in col.checkouts and event.startswith(("checkout.", "lease.")):
            self._parse(raw)

    def _start_period(self) -> None:
        self.phase = 1
        for kept in self.rotations.values():
            for raw in kept:
                self._parse(raw)
        self.rotations.clear()
        for lines in self.pending.values():
            for raw in lines:
                self._parse(raw)
        self.pending.clear()

    def _end_period(self) -> None:
        self.phase = 2
        self.interest = {rec.credential for rec in self.col.checkouts.values()} | {
            o.identity for o in self.col.onboarding.values()}

    def finish(self) -> None:
        if self.phase == 0:
            self._start_period()

    def _parse(self, raw: bytes) -> None:
        try:
            entry = json.loads(raw)
        except ValueError:
            self.unreadable += 1
            return
        if not isinstance(entry, dict):
            self.unreadable += 1
            return
        self.parsed += 1
        self.col.add(entry)
        if entry.get("event") == "credential.added":
            return
        status = ROTATION_STATUS.get(_s(entry.get("event")))
        if status is not None and _tail_fields(raw) is None:  # the fast path missed it
            self.col.cred_status[_s(entry.get("subject"))] = (status, _s(entry.get("time")))


def _read_log(vault: Vault, col: _Collector, since: float, until: float,
              limit: int | None) -> _Feeder:
    """Feed at most ``limit`` lines of the log (the verified ones) into ``col``.

    Reads 4 MiB blocks and splits them in C: at a million lines the per-line
    Python work is the cost, so the common line before the period is handled
    inline here (see _Feeder._before_fast). A torn last line is not read.
    """
    feeder = _Feeder(col, since, until)
    since_b = feeder.since_b
    fast, slow = feeder._before_fast, feeder._feed_slow
    budget = limit if limit is not None else -1
    for lines in vault.audit_batches():
        if budget == 0:
            break
        if 0 < budget < len(lines):
            lines = lines[:budget]
        budget = max(budget - len(lines), 0) if budget > 0 else budget
        feeder.read += len(lines)
        for raw in lines:
            if feeder.phase == 0:
                t = raw.rfind(b',"time":"')
                if t > 0 and raw[t + 9:-2] < since_b and raw.endswith(b'"}') \
                        and fast(raw, t):
                    continue
            slow(raw)
    feeder.finish()
    return feeder


def _review_status(reviews: list[ReviewRecord], needed: int, finished_at: float | None,
                   now: float, due: float) -> str:
    reviewers = {r.reviewer for r in reviews}
    if len(reviewers) >= needed:
        return "concern" if any(r.outcome == "concern" for r in reviews) else "ok"
    if finished_at is not None and now - finished_at > due:
        return "overdue"
    return "pending"


def _rotation_for(rec: CheckoutRecord, col: _Collector) -> RotationOutcome:
    start = rec.exposed_from
    if start is None:
        return RotationOutcome("not-needed")
    linked = col.rot_by_request.get(rec.id, [])
    rec.lease_rotation = any(r.kind == "intent" and r.reason == "lease-expired" for r in linked)
    failures = sum(1 for r in linked if r.kind == "failed")
    outcome = RotationOutcome("not-rotated", failures=failures)
    for r in linked:
        if r.kind == "intent":
            outcome.outcome = "in-progress"
        elif r.kind == "failed":
            outcome.outcome, outcome.error, outcome.at = "failed", r.error, r.at
        elif r.kind == "apply-pending":
            outcome.outcome, outcome.at = "apply-pending", r.at
        elif r.kind == "rollback":
            outcome.outcome, outcome.at = "rolled-back", r.at
        elif r.kind == "commit":
            outcome.outcome, outcome.version, outcome.at = "committed", r.version, r.at
            outcome.applied_by = r.applied_by
            outcome.error = ""
    if outcome.outcome != "committed":
        # Not linked: any later version committed after the release ends the exposure.
        for r in col.rot.get(rec.credential, []):
            if r.kind == "commit" and r.at >= start and (
                    rec.version is None or (r.version or 0) > rec.version):
                outcome.outcome, outcome.version, outcome.at = "committed", r.version, r.at
                outcome.applied_by, outcome.separate, outcome.error = r.applied_by, True, ""
                break
    return outcome


def build_custody_report(vault: Vault, since: float, until: float | None = None, *,
                         review_due: float = REVIEW_DUE) -> CustodyReport:
    """Build the custody review report for ``[since, until]`` (epoch seconds, UTC).

    ``until`` defaults to now (the vault's clock). ``review_due`` is the age in
    seconds after which an unreviewed finished item is flagged overdue.
    """
    now = vault.now()
    until = now if until is None else float(until)
    since = float(since)
    if until < since:
        raise UsageError("the report period ends before it starts (--until is before --since)")

    verified = vault.verify_audit(incremental=True)  # sound: see Vault.verify_audit
    head = verified.head
    # Read exactly the verified log; if verification failed, read what is there.
    limit = verified.entries if verified.ok else None
    col = _Collector()
    feeder = _read_log(vault, col, since, until, limit)
    if not verified.ok:
        head_seq, head_hash = verified.entries, ""
    else:
        head_seq, head_hash = head.seq, head.hash
    audit = AuditStatus(verified.ok, verified.entries, verified.first_bad, verified.reason,
                        head_seq, head_hash, feeder.read, feeder.unreadable)

    # -- checkouts -------------------------------------------------------------------------
    checkouts: list[CheckoutRecord] = []
    for rec in col.checkouts.values():
        times = col.event_times.get(rec.id, [])
        held_end = rec.held_to if rec.held_to is not None else (
            until if rec.held_from is not None else None)
        overlaps = rec.held_from is not None and held_end is not None and \
            rec.held_from <= until and held_end >= since
        if not (overlaps or any(since <= t <= until for t in times)
                or _in(rec.requested_at, since, until)):
            continue
        if rec.held_from is not None and rec.held_to is not None:
            rec.held_seconds = int(rec.held_to - rec.held_from)
        rec.rotation = _rotation_for(rec, col)
        rec.reviews = [r for r in col.reviews.get(rec.id, [])
                       if r.kind in ("checkout", "emergency", "")]
        if rec.finished or (rec.emergency and rec.revealed):
            needed = EMERGENCY_REVIEWS if rec.emergency else 1
            end = rec.held_to if rec.revealed else rec.ended_at
            rec.review_status = _review_status(rec.reviews, needed, end, now, review_due)
        elif rec.reviews:
            rec.review_status = _review_status(rec.reviews, 1, None, now, review_due)
        rec.refusals = sorted(rec.refusals, key=lambda r: r.at)
        checkouts.append(rec)
    checkouts.sort(key=lambda r: (r.requested_at or r.held_from or 0.0, r.id))

    # -- emergency uses and kits -----------------------------------------------------------
    emergency: list[EmergencyUse] = []
    for use in col.emergency.values():
        if not _in(use.at, since, until):
            continue
        use.reviews = list(col.reviews.get(use.id, []))
        use.reviewers = sorted({r.reviewer for r in use.reviews})
        co = col.checkouts.get(use.id)
        finished = co.held_to if co is not None else use.at
        use.review_status = _review_status(use.reviews, EMERGENCY_REVIEWS, finished, now,
                                           review_due)
        if co is not None:
            co_rot = _rotation_for(co, col) if co.revealed else None
            use.rotation = co_rot.text() if co_rot else "not revealed"
        else:
            later = [r for r in col.rot.get(use.credential, [])
                     if r.kind == "commit" and r.at >= use.at]
            use.rotation = f"committed v{later[0].version}" if later else "not-rotated"
        emergency.append(use)
    emergency.sort(key=lambda u: (u.at, u.id))
    kits = sorted(
        (k for k in col.kits.values()
         if _in(k.issued_at, since, until) or _in(k.burned_at, since, until)
         or any(u in col.emergency and _in(col.emergency[u].at, since, until) for u in k.uses)
         or (k.burned_at is None and (k.issued_at or 0) <= until)),
        key=lambda k: (k.issued_at or 0.0, k.id))

    # -- onboarding --------------------------------------------------------------------------
    onboarding: list[OnboardingRecord] = []
    for ob in col.onboarding.values():
        if not any(since <= t <= until for t in col.event_times.get("onboarding:" + ob.id, [])):
            continue
        ob.reviews = list(col.reviews.get(ob.id, []))
        if ob.finished or ob.reviews:
            end = min(t for t in (ob.activated_at, ob.expired_at, ob.revoked_at)
                      if t is not None) if ob.finished else None
            ob.review_status = _review_status(ob.reviews, 1, end, now, review_due)
        onboarding.append(ob)
    onboarding.sort(key=lambda o: (o.issued_at or 0.0, o.id))

    # -- rotation failures -------------------------------------------------------------------
    failures: list[RotationFailure] = []
    for cred, rots in col.rot.items():
        for i, r in enumerate(rots):
            if r.kind != "failed" or not _in(r.at, since, until):
                continue
            resolved = next((x.at for x in rots[i + 1:] if x.kind == "commit"), None)
            reviews = [rv for key in (r.request, cred) if key
                       for rv in col.reviews.get(key, []) if rv.kind == "rotation"]
            fail = RotationFailure(cred, r.at, r.actor, r.error, r.request, r.version,
                                   resolved, reviews)
            fail.review_status = _review_status(reviews, 1, r.at, now, review_due)
            failures.append(fail)
    failures.sort(key=lambda f: (f.at, f.credential))

    # -- credentials ---------------------------------------------------------------------------
    credentials, audit.state_error = _credentials(vault, col, checkouts, since, until, now)
    state_kit = _state_kit(vault)
    matrix: dict[str, dict[str, int]] = {}
    for c in credentials:
        row = matrix.setdefault(c.status, {label: 0 for label, _ in AGE_BUCKETS})
        row[c.age_bucket] = row.get(c.age_bucket, 0) + 1

    # -- authentication --------------------------------------------------------------------------
    auth_events = sorted((a for a in col.auth if _in(a.at, since, until)),
                         key=lambda a: (a.at, a.operator))
    per_op: dict[str, AuthSummary] = {}
    for a in auth_events:
        s = per_op.setdefault(a.operator, AuthSummary(a.operator))
        if a.event == "failed":
            s.failures += 1
            s.reasons[a.why or "unknown"] = s.reasons.get(a.why or "unknown", 0) + 1
            if a.locked_for > 0:
                s.lockouts += 1
        else:
            s.locked_attempts += 1
        if not a.signed:
            s.unsigned += 1
        s.last_at = a.at
    auth = sorted(per_op.values(), key=lambda s: (-s.failures, s.operator))

    operator_changes = sorted((o for o in col.operators if _in(o.at, since, until)),
                              key=lambda o: o.at)

    pairs = _pairs(col, since, until)
    unreviewed = _unreviewed(checkouts, emergency, onboarding, failures, now, review_due)
    attestations = [a for a in col.attestations
                    if (_ts(a.since) or 0.0) <= until and (_ts(a.until) or now) >= since]

    kit_refusals = [k for k in col.kit_refusals if _in(k.at, since, until)]
    notify_failures = [n for n in col.notify_failures if _in(n.at, since, until)]
    unsigned = [u for u in col.unsigned if _in(u.at, since, until)]
    summary = Summary(
        checkouts=len(checkouts),
        revealed=sum(1 for c in checkouts if c.revealed),
        denied=sum(1 for c in checkouts if c.outcome == "denied"),
        cancelled=sum(1 for c in checkouts if c.outcome == "cancelled"),
        expired=sum(1 for c in checkouts if c.outcome == "expired"),
        open=sum(1 for c in checkouts if c.outcome in ("requested", "approved", "held")),
        rotated_after_use=sum(1 for c in checkouts if c.rotation.outcome == "committed"),
        not_rotated=sum(1 for c in checkouts if c.revealed and c.held_to is not None
                        and c.rotation.outcome != "committed"),
        rotation_failures=len(failures),
        emergency_uses=len(emergency),
        onboarding=len(onboarding),
        reviewed=sum(1 for c in checkouts if c.review_status in ("ok", "concern")),
        unreviewed=len(unreviewed),
        overdue_reviews=sum(1 for u in unreviewed if u.overdue),
        auth_failures=sum(s.failures for s in auth),
        lockouts=sum(s.lockouts for s in auth),
        refusals=sum(len(c.refusals) for c in checkouts) + len(kit_refusals),
        flagged_pairs=sum(1 for p in pairs if p.flagged),
        credentials=len(credentials),
        oldest_rotation_days=max((c.age_days for c in credentials if c.in_vault), default=0.0),
        operator_changes=len(operator_changes),
        released=sum(1 for c in checkouts if c.released),
        released_not_revealed=sum(1 for c in checkouts if c.released_not_revealed),
        kit_refusals=len(kit_refusals),
        notify_failures=len(notify_failures),
        unsigned_entries=len(unsigned),
    )
    try:
        vault_id = vault.vault_id
    except IntegrityError:
        vault_id = str(vault.store.unverified_meta()["vault_id"])
    report = CustodyReport(
        vault_id=vault_id, since=since, until=until, generated_at=now,
        review_due_days=review_due / DAY, audit=audit, summary=summary, findings=[],
        checkouts=checkouts, emergency_uses=emergency, emergency_kits=kits,
        onboarding=onboarding, rotation_failures=failures, credentials=credentials,
        credential_matrix=matrix, auth=auth, auth_events=auth_events,
        operator_changes=operator_changes, pairs=pairs, unreviewed=unreviewed,
        attestations=attestations, controls=[], kit_refusals=kit_refusals,
        notify_failures=notify_failures, unsigned=unsigned,
    )
    report.findings = _findings(report, col, state_kit)
    _drills(report, vault, col, since, until)
    report.controls = controls_mapping(report)
    return report


def _drills(report: CustodyReport, vault: Vault, col: _Collector, since: float,
            until: float) -> None:
    """The drills section (issue 14) and its findings."""
    try:
        members = [o.name for o in vault.operators() if o.status == "active"]
        creds = [(c.name, c.policy.k) for c in vault.credentials() if c.status != "revoked"]
    except IntegrityError:
        members, creds = [], []
    period = [d for d in col.drills if _in(d.at, since, until)]
    drilled: set[str] = set()
    for name in members:
        passed = [d for d in col.drills if d.operator == name and d.passed
                  and d.kind == "share" and d.at <= until]
        in_period = [d for d in period if d.operator == name and d.kind == "share"]
        ok = sum(1 for d in in_period if d.passed)
        if ok:
            drilled.add(name)
        report.drills.append(OperatorDrill(
            name, passed[-1].at if passed else None, passed[-1].subject if passed else "",
            ok, len(in_period) - ok,
            sum(1 for d in period if d.operator == name and d.kind == "kit" and d.passed),
            ok == 0))
    last_share: dict[tuple[str, str], bool] = {}
    for d in period:
        if d.kind == "share":
            last_share[(d.operator, d.subject)] = d.passed
    for cred, k in creds:
        count = sum(1 for op in drilled if last_share.get((op, cred), True))
        if count < k:
            report.drill_credentials.append(CredentialDrill(cred, k, count))
    undrilled = [d.operator for d in report.drills if d.flagged]
    if undrilled:
        report.findings.append(Finding(
            "medium", "drill-missing", ", ".join(undrilled),
            f"{len(undrilled)} active operator(s) passed no share drill in the period: "
            "nobody knows whether they can still unlock and open their share"))
    if report.drill_credentials:
        report.findings.append(Finding(
            "medium", "drill-threshold", f"{len(report.drill_credentials)} credential(s)",
            f"{len(report.drill_credentials)} credential(s) have fewer than k operators "
            "with a passed drill in the period (see 'Drills')"))


def _bucket(age_days: float) -> str:
    for label, limit in AGE_BUCKETS:
        if age_days < limit:
            return label
    return AGE_BUCKETS[-1][0]


def _credentials(vault: Vault, col: _Collector, checkouts: list[CheckoutRecord],
                 since: float, until: float, now: float
                 ) -> tuple[list[CredentialRecord], str]:
    """Every credential with its status now, and why the state was unreadable ('' if not)."""
    try:
        active = vault.active_map()
        current = vault.credentials()
        error = ""
    except IntegrityError as exc:
        active, current, error = {}, [], str(exc)
    per_cred = Counter(c.credential for c in checkouts)
    last: dict[str, float] = {}
    for c in checkouts:
        t = c.held_from or c.requested_at
        if t is not None and t > last.get(c.credential, 0.0):
            last[c.credential] = t
    out: dict[str, CredentialRecord] = {}
    for cred in current:
        age = max(0.0, (now - cred.rotated_at) / DAY)
        holder = active.get(cred.id, {})
        rots = col.rot.get(cred.name, [])
        out[cred.name] = CredentialRecord(
            cred.name, cred.kind, cred.connector, cred.status, cred.version, cred.rotated_at,
            round(age, 2), _bucket(age), cred.rotations, cred.failure,
            _s(holder.get("requester")) if holder.get("state") == "checked-out" else "",
            per_cred.get(cred.name, 0),
            sum(1 for r in rots if r.kind == "commit" and _in(r.at, since, until)),
            sum(1 for r in rots if r.kind == "failed" and _in(r.at, since, until)),
            last.get(cred.name), log_status=col.cred_status.get(cred.name, ("", ""))[0])
    for name in set(per_cred) | set(col.cred_status):
        if name and name not in out:
            out[name] = CredentialRecord(name, "", "", "unknown" if error else "not in vault",
                                         0, 0.0, 0.0, "-", 0,
                                         checkouts_in_period=per_cred.get(name, 0),
                                         last_checkout=last.get(name), in_vault=False,
                                         log_status=col.cred_status.get(name, ("", ""))[0])
    return sorted(out.values(), key=lambda c: (-c.age_days, c.name)), error


def _state_kit(vault: Vault) -> str | None:
    """The active kit id the state claims ('' for none; None if the state is unreadable)."""
    try:
        kit = vault.active_kit()
    except IntegrityError:
        return None
    return _s(kit.get("id")) if kit else ""


def _pairs(col: _Collector, since: float, until: float) -> list[PairRecord]:
    counts: Counter[tuple[str, str]] = Counter()
    for rec in col.checkouts.values():
        for a in rec.approvals:
            if _in(a.at, since, until) and rec.requester:
                counts[(a.approver, rec.requester)] += 1
    totals: Counter[str] = Counter()
    for (_, requester), n in counts.items():
        totals[requester] += n
    pairs = []
    for (approver, requester), n in counts.items():
        share = n / totals[requester]
        flags = []
        if n >= SOD_MIN_COUNT and share > SOD_SHARE:
            flags.append("dominant")
        back = counts.get((requester, approver), 0)
        if back and min(n, back) >= 2:
            flags.append("reciprocal")
        if approver == requester:
            flags.append("self-approval")
        pairs.append(PairRecord(approver, requester, n, totals[requester], round(share, 3),
                                flags))
    pairs.sort(key=lambda p: (-int(p.flagged), -p.count, p.approver, p.requester))
    return pairs


def _unreviewed(checkouts: list[CheckoutRecord], emergency: list[EmergencyUse],
                onboarding: list[OnboardingRecord], failures: list[RotationFailure],
                now: float, due: float) -> list[UnreviewedItem]:
    items: list[UnreviewedItem] = []

    def add(kind: str, item_id: str, subject: str, holder: str, finished: float | None,
            have: int, needed: int) -> None:
        age = (now - finished) / DAY if finished is not None else 0.0
        items.append(UnreviewedItem(kind, item_id, subject, holder, finished,
                                    round(max(0.0, age), 2), have, needed,
                                    finished is not None and now - finished > due))

    emergency_ids = {u.id for u in emergency}
    for c in checkouts:
        if c.emergency and c.id in emergency_ids:
            continue  # listed as an emergency use below
        if c.review_status in ("pending", "overdue"):
            add("checkout", c.id, c.credential, c.requester,
                c.held_to if c.revealed else c.ended_at,
                len({r.reviewer for r in c.reviews}), EMERGENCY_REVIEWS if c.emergency else 1)
    for u in emergency:
        if u.review_status in ("pending", "overdue"):
            add("emergency", u.id, u.credential, u.by, u.at, len(u.reviewers),
                EMERGENCY_REVIEWS)
    for o in onboarding:
        if o.review_status in ("pending", "overdue"):
            end = min(t for t in (o.activated_at, o.expired_at, o.revoked_at) if t is not None)
            add("onboarding", o.id, o.identity, o.issued_by, end, 0, 1)
    for f in failures:
        if f.review_status in ("pending", "overdue"):
            add("rotation", f.request or f.credential, f.credential, f.by, f.at, 0, 1)
    items.sort(key=lambda i: (not i.overdue, i.finished_at or 0.0, i.kind, i.id))
    return items


def _log_active_kit(col: _Collector) -> str:
    """The kit the verified log leaves active: the last issued one not burned ('' if none)."""
    live = [k for k in col.kits.values() if k.issued_at is not None and k.burned_at is None]
    return max(live, key=lambda k: (k.issued_at or 0.0, k.id)).id if live else ""


def _findings(report: CustodyReport, col: _Collector, state_kit: str | None = None
              ) -> list[Finding]:
    out: list[Finding] = []
    a = report.audit
    if not a.ok:
        out.append(Finding("high", "audit-chain", f"entry {a.first_bad}",
                           f"the audit log does not verify: {a.reason}; this report may be "
                           "incomplete and must not be relied on"))
    if a.state_error:
        out.append(Finding("high", "vault-state", "vault.json",
                           f"the vault state could not be read ({a.state_error}); credential "
                           "status is missing from this report"))
    if a.unreadable:
        out.append(Finding("high", "audit-chain", "log",
                           f"{a.unreadable} audit line(s) could not be read"))
    for p in report.pairs:
        if "self-approval" in p.flags:
            out.append(Finding("high", "segregation-of-duties", f"{p.approver}",
                               f"{p.approver} approved their own request {p.count} time(s)"))
        if "dominant" in p.flags:
            out.append(Finding("medium", "segregation-of-duties",
                               f"{p.approver} -> {p.requester}",
                               f"{p.approver} approved {p.count} of {p.requester_total} "
                               f"approvals of {p.requester}'s requests ({p.share:.0%})"))
        if "reciprocal" in p.flags and p.approver < p.requester:
            out.append(Finding("medium", "segregation-of-duties",
                               f"{p.approver} <-> {p.requester}",
                               f"{p.approver} and {p.requester} repeatedly approve each "
                               "other's requests"))
    for c in report.checkouts:
        for rv in c.reviews:
            if rv.reviewer == c.requester:
                out.append(Finding("high", "self-review", c.id,
                                   f"{rv.reviewer} reviewed their own checkout {c.id}"))
            elif rv.reviewer in c.approvers:
                out.append(Finding("high", "review-not-independent", c.id,
                                   f"{rv.reviewer} reviewed checkout {c.id}, which they "
                                   "approved: the review is not independent"))
        if c.released_not_revealed and c.finished and c.rotation.outcome != "committed":
            out.append(Finding("high", "released-not-rotated", c.id,
                               f"{c.credential} was released to {c.requester} by the approval "
                               f"of {c.id} at {iso(c.released_at or 0.0)} (the grant opens "
                               f"offline) and the checkout ended {c.outcome} without a "
                               f"rotation ({c.rotation.text()})"))
        if c.revealed and c.held_to is not None and c.rotation.outcome != "committed":
            out.append(Finding("high" if c.rotation.outcome == "failed" else "medium",
                               "not-rotated", c.id,
                               f"{c.credential} was not rotated after checkout {c.id} "
                               f"({c.rotation.text()})"))
        if c.outcome == "held" and c.lease_expires is not None \
                and c.lease_expires < report.until:
            out.append(Finding("medium", "overdue-lease", c.id,
                               f"{c.requester} still held {c.credential} past its lease "
                               f"({iso(c.lease_expires)})"))
        refused = Counter(r.why for r in c.refusals)
        for why, n in sorted(refused.items()):
            if why in ("self-approval", "forged-grant", "second-reveal", "bad-approvals"):
                out.append(Finding("high" if why == "forged-grant" else "medium",
                                   "refusal", c.id, f"{n} refused attempt(s) on {c.id}: {why}"))
    for u in report.emergency_uses:
        out.append(Finding("high", "emergency-use", u.id,
                           f"{u.by} opened {u.credential} with emergency kit {u.kit or '?'} "
                           f"at {iso(u.at)} (reason: {u.reason or '-'}; ticket: "
                           f"{u.ticket or '-'}); reviews {len(u.reviewers)}/{EMERGENCY_REVIEWS}"))
        if u.by in u.reviewers:
            out.append(Finding("high", "self-review", u.id,
                               f"{u.by} reviewed their own emergency use {u.id}"))
    for kr in report.kit_refusals:
        out.append(Finding("high", "kit-refused", kr.credential,
                           f"{kr.by} tried to open {kr.credential} with an emergency kit at "
                           f"{iso(kr.at)} and was refused ({kr.why or '?'}; kit "
                           f"{kr.fingerprint or '?'})"))
    for nf in report.notify_failures:
        out.append(Finding("medium", "notify-failed", nf.request,
                           f"a notification for {nf.request} failed at "
                           f"{iso(nf.at)} ({nf.why or '?'}): nobody was alerted that way"))
    log_kit = _log_active_kit(col)
    if state_kit is not None and state_kit != log_kit:
        out.append(Finding("high", "state-log-disagree", "emergency kit",
                           f"the vault state says the active kit is {state_kit or 'none'} but "
                           f"the verified log says {log_kit or 'none'}: the state was edited "
                           "or is stale"))
    for k in report.emergency_kits:
        if len(k.uses) > 1:
            out.append(Finding("high", "kit-reuse", k.id,
                               f"emergency kit {k.id} was used {len(k.uses)} times"))
        if k.uses and k.burned_at is None:
            out.append(Finding("high", "kit-not-burned", k.id,
                               f"emergency kit {k.id} was used but not burned"))
    for o in report.onboarding:
        if len(o.reveals) > 1:
            out.append(Finding("high", "onboarding-reuse", o.id,
                               f"onboarding secret {o.id} was shown {len(o.reveals)} times"))
        if (o.activated_at or o.expired_at) and o.revoked_at is None:
            out.append(Finding("medium", "onboarding-not-revoked", o.id,
                               f"onboarding secret {o.id} for {o.identity} ended "
                               f"({o.status}) but no revocation is recorded"))
        if o.expired_at is not None and o.activated_at is None:
            out.append(Finding("low", "onboarding-expired", o.id,
                               f"onboarding secret {o.id} for {o.identity} expired unused"))
    for f in report.rotation_failures:
        if f.resolved_at is None:
            out.append(Finding("high", "rotation-failed", f.credential,
                               f"rotation of {f.credential} failed at {iso(f.at)} and is "
                               f"unresolved: {f.error}"))
    for cred in report.credentials:
        # The log decides; the state only shows the status of the moment.
        status = cred.log_status or cred.status
        since_at = col.cred_status.get(cred.name, ("", ""))[1]
        if status in ("rotation-failed", "apply-pending"):
            out.append(Finding("high" if status == "rotation-failed" else "medium",
                               "credential-status", cred.name,
                               f"{cred.name} is {status.upper()}"
                               + (f" per the verified log (since {since_at})"
                                  if cred.log_status and since_at else "")))
        if cred.log_status and cred.in_vault and not report.audit.state_error \
                and cred.status != cred.log_status:
            out.append(Finding("high", "state-log-disagree", cred.name,
                               f"the vault state says {cred.name} is {cred.status} but the "
                               f"verified log says {cred.log_status}: the state was edited "
                               "or is stale"))
    for s in report.auth:
        if s.lockouts:
            label = f" ({UNSIGNED})" if s.unsigned else ""
            out.append(Finding("medium", "lockout", s.operator,
                               f"entries{label} record {s.lockouts} lockout(s) of "
                               f"{s.operator} after {s.failures} failed authentication(s)"))
    for ue in report.unsigned:
        if ue.event not in SYSTEM_EVENTS:
            out.append(Finding("high", "unsigned-act", f"entry {ue.seq}",
                               f"entry {ue.seq} ({ue.event} {ue.subject}) carries no signature "
                               "yet claims an act; the report ignored it"))
    overdue = [u for u in report.unreviewed if u.overdue]
    if overdue:
        out.append(Finding("medium", "review-overdue", f"{len(overdue)} item(s)",
                           f"{len(overdue)} finished item(s) unreviewed for more than "
                           f"{report.review_due_days:g} days"))
    order = {"high": 0, "medium": 1, "low": 2}
    out.sort(key=lambda f: (order.get(f.severity, 3), f.kind, f.subject))
    return out


# ==== controls mapping ==========================================================================
NHI_TOP10: tuple[tuple[str, str], ...] = (
    ("NHI1:2025", "Improper Offboarding"),
    ("NHI2:2025", "Secret Leakage"),
    ("NHI3:2025", "Vulnerable Third-Party NHI"),
    ("NHI4:2025", "Insecure Authentication"),
    ("NHI5:2025", "Overprivileged NHI"),
    ("NHI6:2025", "Insecure Cloud Deployment Configurations"),
    ("NHI7:2025", "Long-Lived Secrets"),
    ("NHI8:2025", "Environment Isolation"),
    ("NHI9:2025", "NHI Reuse"),
    ("NHI10:2025", "Human Use of NHI"),
)
NOT_ADDRESSED = "not addressed"


def controls_mapping(report: CustodyReport) -> list[ControlRow]:
    """Map glasskey's controls to OWASP NHI Top 10 (2025), SP 800-63B, CSF 2.0 PR.AA.

    Each row names the control and the evidence *in this report*; frameworks'
    items glasskey has no control for say "not addressed".
    """
    s = report.summary
    ops = Counter(o.event for o in report.operator_changes)
    rev_total = sum(1 for c in report.checkouts if c.finished)
    owasp = "OWASP NHI Top 10 (2025)"
    nist63 = "NIST SP 800-63B"
    csf = "NIST CSF 2.0"
    rows = [
        ControlRow(owasp, "NHI1:2025", "Improper Offboarding", "partial",
                   "operator removal re-splits every data key without the leaver and offers a "
                   "leaver sweep rotating every credential they could reach; onboarding "
                   "secrets are revoked at activation or expiry",
                   f"{ops.get('removed', 0)} operator removal(s), "
                   f"{ops.get('suspended', 0)} suspension(s) in the period; "
                   f"{sum(1 for o in report.onboarding if o.revoked_at)} of "
                   f"{len(report.onboarding)} onboarding secret(s) revoked"),
        ControlRow(owasp, "NHI2:2025", "Secret Leakage", "partial",
                   "secrets are stored only envelope-encrypted (AES-256-GCM, Shamir-split "
                   "HPKE-sealed data keys), never in state, audit log, reports or exports; "
                   "rotation after every use makes a leaked value worthless",
                   f"{s.rotated_after_use} of {s.revealed} revealed secret(s) rotated after "
                   "use; no secret value in this report"),
        ControlRow(owasp, "NHI3:2025", "Vulnerable Third-Party NHI", NOT_ADDRESSED,
                   "glasskey does not inventory or vet third-party integrations", "-"),
        ControlRow(owasp, "NHI4:2025", "Insecure Authentication", "partial",
                   "custodians authenticate with passphrase (Argon2id) + TOTP; the custodied "
                   "credentials themselves remain static secrets of their targets",
                   f"{s.auth_failures} failed authentication(s), {s.lockouts} lockout(s)"),
        ControlRow(owasp, "NHI5:2025", "Overprivileged NHI", NOT_ADDRESSED,
                   "glasskey does not manage what a credential may do on its target", "-"),
        ControlRow(owasp, "NHI6:2025", "Insecure Cloud Deployment Configurations",
                   NOT_ADDRESSED, "out of scope (CI/CD and cloud workload identity)", "-"),
        ControlRow(owasp, "NHI7:2025", "Long-Lived Secrets", "addressed",
                   "time-bound leases; rotation after every use (two-phase, verified on the "
                   "target); rotation age reported per credential",
                   f"oldest rotation {s.oldest_rotation_days:.1f} days; "
                   f"{sum(1 for c in report.credentials if c.age_bucket == '> 90 d')} "
                   "credential(s) older than 90 days"),
        ControlRow(owasp, "NHI8:2025", "Environment Isolation", NOT_ADDRESSED,
                   "glasskey does not separate environments (use one vault per environment)",
                   "-"),
        ControlRow(owasp, "NHI9:2025", "NHI Reuse", "partial",
                   "exclusive checkout makes a shared account attributable to one holder at a "
                   "time, and rotation after each use ends the previous holder's access; "
                   "reuse of one NHI across applications is not detected",
                   f"{s.checkouts} checkout(s) attributed to named holders"),
        ControlRow(owasp, "NHI10:2025", "Human Use of NHI", "addressed",
                   "every human use is requested with reason and ticket, countersigned by a "
                   "second person, time-bound, rotated after use and reviewed",
                   f"{s.revealed} human use(s); {s.reviewed} of {rev_total} finished "
                   f"checkout(s) reviewed; {s.emergency_uses} emergency use(s)"),
        ControlRow(nist63, "SP 800-63B-3 §4.2", "AAL2 multi-factor authentication", "partial",
                   "passphrase (memorized secret) + TOTP (single-factor OTP device); in an "
                   "offline vault TOTP is a policy control, not a cryptographic one "
                   "(SECURITY.md)", "-"),
        ControlRow(nist63, "SP 800-63B-3 §5.1.1.2", "Memorized secret verifiers", "addressed",
                   "passphrase-derived keys with Argon2id (salted, calibrated parameters)",
                   "-"),
        ControlRow(nist63, "SP 800-63B-3 §5.1.4.2", "OTP verifiers (one use per step)",
                   "addressed", "RFC 6238 TOTP; a step is accepted at most once per operator "
                   "(persisted under the write lock)", "-"),
        ControlRow(nist63, "SP 800-63B-3 §5.2.2", "Rate limiting (throttling)", "addressed",
                   "failed attempts counted durably before the answer; exponential back-off "
                   "after 5 failures, capped at one hour; every failure and lockout logged",
                   f"{s.auth_failures} failure(s), {s.lockouts} lockout(s) in the period"),
        ControlRow(nist63, "SP 800-63B-3 §5.2.8", "Replay resistance", "addressed",
                   "TOTP steps are single-use; approvals are single-use grants bound to the "
                   "request id, requester, approver and expiry",
                   f"{s.refusals} refused attempt(s) recorded"),
        ControlRow(csf, "PR.AA-01", "Identities and credentials are managed", "addressed",
                   "operators enrolled by two operators; credentials added, rotated and "
                   "retired through the vault, every step signed in the audit log",
                   f"{s.operator_changes} operator change(s); {s.credentials} credential(s)"),
        ControlRow(csf, "PR.AA-02", "Identities are proofed and bound to credentials",
                   "partial", "new identities' onboarding secrets are issued with approver, "
                   "reason and expiry and shown once; identity proofing itself is out of scope",
                   f"{s.onboarding} onboarding secret(s)"),
        ControlRow(csf, "PR.AA-03", "Users, services and hardware are authenticated",
                   "addressed", "passphrase + TOTP for every operator action; every audit "
                   "entry signed with the actor's Ed25519 key",
                   f"{s.auth_failures} failed authentication(s)"),
        ControlRow(csf, "PR.AA-04", "Identity assertions are protected, conveyed and verified",
                   "partial", "approvals are HPKE-sealed grants bound to the request; audit "
                   "entries are signed and hash-chained and verified for this report",
                   "audit chain " + ("verified" if report.audit.ok else "BROKEN")),
        ControlRow(csf, "PR.AA-05", "Access permissions, least privilege and separation of "
                   "duties", "addressed", "two-person rule enforced by keys; the same person "
                   "never fills two places in one checkout; post-use review; approver-requester "
                   "pairs analysed in this report",
                   f"{s.flagged_pairs} flagged approver-requester pair(s); "
                   f"{s.unreviewed} unreviewed item(s)"),
        ControlRow(csf, "PR.AA-06", "Physical access is managed", NOT_ADDRESSED,
                   "the emergency kit's safe is a site control; glasskey only logs kit use",
                   "-"),
    ]
    return rows


# ==== rendering helpers ==========================================================================
def _times_to_text(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _times_to_text(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_times_to_text(v, key) for v in value]
    if key in TIME_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return iso(float(value))
    return value


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _s(value)


def _t(value: float | None) -> str:
    return iso(value) if value is not None else "-"


def _held(c: CheckoutRecord) -> str:
    if c.held_seconds is not None:
        return format_duration(c.held_seconds)
    if c.held_from is not None:
        return "still held"
    return "-"


def _outcome(c: CheckoutRecord) -> str:
    if c.outcome in ("lease-expired", "returned") and (
            c.outcome == "lease-expired" or c.lease_rotation):
        # Closed by time and the sweep, never "checked in by the holder".
        rotated = c.rotation.outcome == "committed"
        return "lease expired, " + ("rotated" if rotated else "not rotated")
    if c.outcome == "denied":
        text = f"denied by {c.denied_by}: {c.deny_reason}" if c.denied_by else "denied"
    elif c.outcome == "returned":
        return f"returned by {c.ended_by}" if c.ended_by else "returned"
    else:
        text = c.outcome
    if c.released_not_revealed:
        text += " (released, not revealed)"
    return text


def _review_text(status: str, reviews: list[ReviewRecord]) -> str:
    if not reviews:
        return status
    parts = [f"{r.outcome} by {r.reviewer}" + (f" ({r.note})" if r.note else "")
             for r in reviews]
    return "; ".join(parts) + ("" if status in ("ok", "concern") else f" [{status}]")


def _approvers(c: CheckoutRecord) -> str:
    if c.emergency and not c.approvals:
        return f"EMERGENCY KIT {c.kit}"
    names = ", ".join(c.approvers) or "-"
    return names + (f" + kit {c.kit}" if c.emergency else "")


def _rows_limited(rows: list[Any]) -> tuple[list[Any], int]:
    return rows[:MAX_ROWS], max(0, len(rows) - MAX_ROWS)


# ==== Markdown ===================================================================================
#: Characters that can start Markdown markup inside a table cell (links, images,
#: emphasis, code, HTML, entities, strike-through, math): each gets a backslash.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!<>|~&$])")
#: What GFM turns into a link on its own (autolinks, linkify): such a cell is
#: shown as a code span, where nothing is a link.
_MD_LINKY = re.compile(r"(?i)://|www\.|mailto:|xmpp:|@")


def _md(value: Any) -> str:
    """A table cell that renders as the literal text: no markup, no link, no control.

    Control characters (newlines included) are shown as ``\\uXXXX``; a cell a
    renderer could linkify becomes a code span; otherwise every character
    that could start markup gets a backslash, so ``[x](http://y)`` or
    ``![i](y)`` typed into a reason stays text.
    """
    text = escape_controls(_s(value))
    if not text:
        return " "
    if _MD_LINKY.search(text):
        run = max((len(m) for m in re.findall(r"`+", text)), default=0)
        fence = "`" * (run + 1)
        return f"{fence} {text.replace('|', chr(92) + '|')} {fence}"
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_table(head: list[str], rows: Iterable[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out.extend("| " + " | ".join(_md(c) for c in row) + " |" for row in rows)
    return out


def _section_rows(report: CustodyReport) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The tables every rendering shares: title -> (head, rows)."""
    r = report
    return {
        "checkouts": (
            ["Request", "Credential", "Requester", "Approver(s)", "Reason", "Ticket",
             "Requested", "Released", "Held from", "Held to", "Held", "Outcome", "Rotation",
             "Review"],
            [[c.id, c.credential, c.requester, _approvers(c), c.reason, c.ticket,
              _t(c.requested_at), _t(c.released_at), _t(c.held_from), _t(c.held_to),
              _held(c), _outcome(c), c.rotation.text(),
              _review_text(c.review_status, c.reviews)]
             for c in r.checkouts]),
        "released": (
            ["Request", "Credential", "Requester", "Approver(s)", "Released", "Outcome",
             "Rotation", "Review"],
            [[c.id, c.credential, c.requester, _approvers(c), _t(c.released_at), _outcome(c),
              c.rotation.text(), _review_text(c.review_status, c.reviews)]
             for c in r.checkouts if c.released_not_revealed]),
        "emergency": (
            ["Request", "Credential", "Kit", "Used by", "At", "Reason", "Ticket", "Rotation",
             "Reviewers", "Review"],
            [[u.id, u.credential, u.kit, u.by, _t(u.at), u.reason or "-", u.ticket or "-",
              u.rotation,
              f"{', '.join(u.reviewers) or '-'} ({len(u.reviewers)}/{EMERGENCY_REVIEWS})",
              _review_text(u.review_status, u.reviews)] for u in r.emergency_uses]),
        "kit_refusals": (
            ["At", "By", "Credential (as typed)", "Why", "Kit fingerprint"],
            [[_t(k.at), k.by, k.credential, k.why or "-", k.fingerprint or "-"]
             for k in r.kit_refusals]),
        "notify_failures": (
            ["At", "Recorded by", "Request", "Why"],
            [[_t(n.at), n.by, n.request, n.why or "-"] for n in r.notify_failures]),
        "unsigned": (
            ["At", "Seq", "Event", "About", "Signed by"],
            [[_t(u.at), u.seq, u.event, u.subject, UNSIGNED] for u in r.unsigned]),
        "kits": (
            ["Kit", "Fingerprint", "Issued by", "Issued", "Uses", "Burned"],
            [[k.id, k.fingerprint, k.issued_by, _t(k.issued_at), ", ".join(k.uses) or "-",
              f"{_t(k.burned_at)} by {k.burned_by}" if k.burned_at else "NOT BURNED"
              if k.uses else "-"] for k in r.emergency_kits]),
        "onboarding": (
            ["Id", "Identity", "Issued by", "Approver", "Reason", "Channel", "Issued",
             "Expires", "Shown", "Activated", "Expired", "Revoked", "Status", "Review"],
            [[o.id, o.identity, o.issued_by, o.approver or "-", o.reason, o.channel,
              _t(o.issued_at), _t(o.expires),
              f"{len(o.reveals)}x" + (f" ({', '.join(o.revealed_by)})" if o.reveals else ""),
              _t(o.activated_at), _t(o.expired_at),
              f"{_t(o.revoked_at)} ({o.revoked_how})" if o.revoked_at else "-",
              o.status, _review_text(o.review_status, o.reviews)] for o in r.onboarding]),
        "rotation_failures": (
            ["Credential", "At", "By", "Request", "To version", "Error", "Resolved", "Review"],
            [[f.credential, _t(f.at), f.by, f.request or "-", f.to_version, f.error,
              _t(f.resolved_at) if f.resolved_at else "UNRESOLVED",
              _review_text(f.review_status, f.reviews)] for f in r.rotation_failures]),
        "credentials": (
            ["Credential", "Kind", "Connector", "Status", "Version", "Last rotated",
             "Age (days)", "Rotations", "Held by", "Checkouts", "Rotated", "Failures"],
            [[c.name, c.kind, c.connector,
              c.status + (f" ({c.failure})" if c.failure else "")
              + (f" [log: {c.log_status}]" if c.log_status and c.log_status != c.status
                 else ""), c.version,
              _t(c.rotated_at) if c.in_vault else "-", f"{c.age_days:.1f}", c.rotations,
              c.held_by or "-", c.checkouts_in_period, c.rotations_in_period,
              c.failures_in_period] for c in r.credentials]),
        "auth": (
            ["About operator", "Failures", "Lockouts", "Attempts while locked", "Last",
             "Reasons", "Recorded as"],
            [[a.operator, a.failures, a.lockouts, a.locked_attempts, _t(a.last_at),
              ", ".join(f"{k} x{v}" for k, v in sorted(a.reasons.items())) or "-",
              (UNSIGNED if a.unsigned else "signed")
              + (f" ({a.unsigned} unsigned)" if a.unsigned > 0 else "")]
             for a in r.auth]),
        "auth_events": (
            ["At", "About operator", "Event", "Why", "Failures", "Locked for (s)",
             "Retry in (s)", "Recorded as"],
            [[_t(a.at), a.operator, a.event, a.why or "-",
              a.failures if a.failures is not None else "-", a.locked_for or "-",
              a.retry_in or "-", "signed" if a.signed else UNSIGNED] for a in r.auth_events]),
        "operators": (
            ["At", "Operator", "Event", "By", "Details"],
            [[_t(o.at), o.operator, o.event, o.by,
              ", ".join(f"{k}={_plain(v)}" for k, v in sorted(o.details.items())) or "-"]
             for o in r.operator_changes]),
        "pairs": (
            ["Approver", "Requester", "Approvals", "Of requester's", "Share", "Flags"],
            [[p.approver, p.requester, p.count, p.requester_total, f"{p.share:.0%}",
              ", ".join(f.upper() for f in p.flags) or "-"] for p in r.pairs]),
        "unreviewed": (
            ["Kind", "Id", "Subject", "Holder / actor", "Finished", "Age (days)", "Reviews",
             "Overdue"],
            [[u.kind, u.id, u.subject, u.holder, _t(u.finished_at), f"{u.age_days:.1f}",
              f"{u.reviews}/{u.needed}", "OVERDUE" if u.overdue else "-"]
             for u in r.unreviewed]),
        "attestations": (
            ["Id", "By", "At", "Period", "Format", "Head seq", "Head hash", "SHA-256"],
            [[a.id, a.by, _t(a.at), f"{a.since} .. {a.until}", a.format, a.entries,
              a.head_hash or "-", a.sha256] for a in r.attestations]),
        "drills": (
            ["Operator", "Last passed share drill", "Of", "Passed in period",
             "Failed in period", "Kit drills in period", "Flag"],
            [[d.operator, _t(d.last_passed), d.last_subject or "-", d.passed_in_period,
              d.failed_in_period, d.kit_drills_in_period,
              "NOT DRILLED IN PERIOD" if d.flagged else ""] for d in r.drills]),
        "drill_credentials": (
            ["Credential", "k", "Drilled operators who could open it"],
            [[c.credential, c.k, c.drilled] for c in r.drill_credentials]),
        "controls": (
            ["Framework", "Control", "Name", "Status", "glasskey control", "Evidence"],
            [[c.framework, c.control, c.name, c.status, c.how, c.evidence]
             for c in r.controls]),
        "findings": (
            ["Severity", "Kind", "Subject", "Finding"],
            [[f.severity.upper(), f.kind, f.subject, f.text] for f in r.findings]),
    }


SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("findings", "Findings", "Everything below that needs a reviewer's attention."),
    ("checkouts", "Checkouts", "Every checkout requested or held in the period."),
    ("released", "Released but not revealed",
     "The approvals were complete, so the requester could open the grant offline: each "
     "counts as a release and needs a rotation and a review."),
    ("emergency", "Emergency-kit uses", "Each needs two reviewers; the kit must be burned."),
    ("kit_refusals", "Refused emergency-kit uses",
     "A kit use refused for a wrong, burned or unknown kit: someone tried the kit."),
    ("notify_failures", "Failed notifications",
     "Deliveries that did not go out (webhook, command hook, e-mail; retried until they do)."),
    ("kits", "Emergency kits", ""),
    ("onboarding", "One-time onboarding secrets", ""),
    ("rotation_failures", "Rotation failures", ""),
    ("credentials", "Credentials by rotation age and status",
     "Status now; counts of checkouts, rotations and failures in the period."),
    ("auth", "Failed authentications and lockouts",
     "Failures and lockouts are unsigned system entries: recorded by a client, signed by "
     "nobody, so they are evidence of what a client wrote, not of anyone's act."),
    ("auth_events", "Authentication events", ""),
    ("operators", "Operator changes", ""),
    ("pairs", "Segregation of duties: approver-requester pairs",
     f"DOMINANT: the same approver gave at least {SOD_MIN_COUNT} approvals and more than "
     f"{SOD_SHARE:.0%} of a requester's approvals in the period. RECIPROCAL: two people "
     "repeatedly (at least twice each way) approve each other."),
    ("unreviewed", "Unreviewed items",
     "Finished checkouts, onboarding secrets and failed rotations without a review; "
     f"emergency uses with fewer than {EMERGENCY_REVIEWS} reviewers."),
    ("unsigned", "Unsigned system entries",
     "Entries written without any operator's signature (failed authentications, lockouts, "
     "recovered log tails). They grant nothing and prove nothing about who acted."),
    ("attestations", "Attestations of overlapping periods", ""),
    ("drills", "Drills",
     "Readiness drills ('glasskey drill'): an operator unlocked and opened their own share "
     "of a credential, checked against the signed share set, without combining shares or "
     "releasing anything. Flagged: no passed share drill in the period."),
    ("drill_credentials", "Credentials short of k drilled operators",
     "Every active operator holds a share of every credential; a credential is listed when "
     "fewer than its k operators passed a drill in the period (a failed drill of that "
     "credential does not count)."),
    ("controls", "Controls mapping",
     "OWASP Non-Human Identities Top 10 (2025), NIST SP 800-63B, NIST CSF 2.0 PR.AA."),
)


def _summary_items(r: CustodyReport) -> list[tuple[str, Any]]:
    s = r.summary
    return [
        ("Checkouts", s.checkouts), ("Releases (approved or kit)", s.released),
        ("Released, not revealed", s.released_not_revealed), ("Secrets revealed", s.revealed),
        ("Rotated after use", s.rotated_after_use), ("Not rotated after use", s.not_rotated),
        ("Denied", s.denied), ("Cancelled", s.cancelled), ("Expired", s.expired),
        ("Still open", s.open), ("Emergency-kit uses", s.emergency_uses),
        ("Onboarding secrets", s.onboarding), ("Rotation failures", s.rotation_failures),
        ("Reviewed checkouts", s.reviewed), ("Unreviewed items", s.unreviewed),
        ("Overdue reviews", s.overdue_reviews), ("Failed authentications", s.auth_failures),
        ("Lockouts (unsigned entries)", s.lockouts), ("Refused attempts", s.refusals),
        ("Refused emergency-kit uses", s.kit_refusals),
        ("Failed notifications", s.notify_failures),
        ("Unsigned system entries", s.unsigned_entries),
        ("Flagged approver-requester pairs", s.flagged_pairs),
        ("Credentials", s.credentials),
        ("Oldest rotation (days)", f"{s.oldest_rotation_days:.1f}"),
    ]


def _audit_line(r: CustodyReport) -> str:
    a = r.audit
    if a.ok:
        return (f"VERIFIED: {a.entries} entries, hash chain and signatures intact; "
                f"head seq {a.head_seq} hash {a.head_hash}")
    return (f"BROKEN at entry {a.first_bad}: {a.reason}. This report was built from the "
            f"{a.entries_read} readable entries and must not be relied on.")


def render_markdown(report: CustodyReport) -> str:
    r = report
    out = [
        "# glasskey custody review report", "",
        f"- Vault: `{r.vault_id}`",
        f"- Period: {iso(r.since)} .. {iso(r.until)}",
        f"- Generated: {iso(r.generated_at)}",
        f"- Audit log: {_md(_audit_line(r))}",
        f"- Reviews are overdue after {r.review_due_days:g} days", "",
        "## Summary", "",
    ]
    out += _md_table(["Item", "Count"], [[k, v] for k, v in _summary_items(r)])
    tables = _section_rows(r)
    for key, title, note in SECTIONS:
        head, rows = tables[key]
        out += ["", f"## {title}", ""]
        if note:
            out += [note, ""]
        if key == "credentials" and r.credential_matrix:
            labels = [label for label, _ in AGE_BUCKETS]
            out += _md_table(["Status", *labels],
                             [[st, *(row.get(lb, 0) for lb in labels)]
                              for st, row in sorted(r.credential_matrix.items())])
            out.append("")
        if not rows:
            out.append("None.")
            continue
        shown, more = _rows_limited(rows)
        out += _md_table(head, shown)
        if more:
            out += ["", f"... and {more} more rows (see the JSON report)."]
    out += ["", "---", "No secret value appears in this report: the audit log records none.",
            ""]
    return "\n".join(out)


# ==== JSON =======================================================================================
def render_json(report: CustodyReport) -> str:
    """Machine-readable report: sorted keys, instants as RFC 3339 UTC."""
    return escape_json_text(json.dumps(report.to_doc(), sort_keys=True, indent=2,
                                       ensure_ascii=False)) + "\n"


# ==== HTML =======================================================================================
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#6B4C9A",
           "#8C6D31", "#117733", "#882255", "#44AA99", "#999933")
EMERGENCY_COLOUR = "#C00000"

CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;
color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #ccc;padding-bottom:3px}
table{border-collapse:collapse;margin:6px 0;font-size:12px}
th,td{border:1px solid #d0d0d0;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f2f5}tr:nth-child(even) td{background:#fafafa}
.meta td{border:none;padding:1px 10px 1px 0;font-size:13px}
.ok{color:#0a6b2a;font-weight:600}.bad{color:#b00000;font-weight:700}
tr.sev-high td{background:#fde2e2}tr.sev-medium td{background:#fff3d6}
.flag{color:#b00000;font-weight:600}.note{color:#555;font-size:12px;margin:2px 0 6px}
.summary{display:flex;flex-wrap:wrap;gap:8px}
.card{border:1px solid #d0d0d0;border-radius:4px;padding:6px 10px;min-width:120px}
.card b{display:block;font-size:18px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
figure{margin:4px 0 10px}figcaption{font-size:12px;font-weight:600}
svg text{font-family:system-ui,sans-serif}
"""


def _h(value: Any) -> str:
    """HTML text: escaped, with control characters shown as ``\\uXXXX``."""
    return html.escape(escape_controls(_s(value)), quote=True)


def _colours(report: CustodyReport) -> dict[str, str]:
    holders = sorted({c.requester for c in report.checkouts if c.revealed and c.requester})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(holders)}


def _ticks(since: float, until: float) -> list[float]:
    span = until - since
    step = DAY
    for candidate in (3600.0, 6 * 3600.0, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY,
                      91 * DAY, 365 * DAY):
        step = candidate
        if span / candidate <= 12:
            break
    first = (since // step + 1) * step if since % step else since
    ticks = []
    t = first
    while t <= until:
        ticks.append(t)
        t += step
    return ticks


def _tick_label(t: float, span: float) -> str:
    stamp = iso(t)
    return stamp[5:16].replace("T", " ") if span <= 2 * DAY else stamp[:10]


def timeline_svg(report: CustodyReport, credential: str, width: int = 1000) -> str:
    """One credential's custody over the period: who held it from when to when.

    Solid bars are custody (reveal -> check-in or lease end), in the holder's
    colour; the lighter tail runs to the rotation that ended the exposure; a
    dashed outline marks custody still open at the end of the period; red
    outlines mark emergency-kit uses; red crosses mark failed rotations and
    grey ticks requests that released nothing (denied, cancelled, expired).
    """
    colours = _colours(report)
    left, right, lane_y, lane_h = 8, 8, 18, 20
    plot = width - left - right
    since, until = report.since, report.until
    span = max(until - since, 1.0)

    def x(t: float) -> float:
        return left + plot * (min(max(t, since), until) - since) / span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="62" '
        f'viewBox="0 0 {width} 62" role="img" aria-label="custody of {_h(credential)}">',
        f"<title>custody of {_h(credential)}</title>",
        f'<rect x="{left}" y="{lane_y - 2}" width="{plot}" height="{lane_h + 4}" '
        'fill="#f4f5f7" stroke="#d8d8d8"/>',
    ]
    axis_y = lane_y + lane_h + 6
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot}" y2="{axis_y}" '
                 'stroke="#888"/>')
    for t in _ticks(since, until):
        tx = x(t)
        parts.append(f'<line x1="{tx:.1f}" y1="{lane_y - 2}" x2="{tx:.1f}" y2="{axis_y + 4}" '
                     'stroke="#ccc" stroke-width="0.8"/>')
        parts.append(f'<text x="{tx:.1f}" y="{axis_y + 15}" font-size="10" fill="#555" '
                     f'text-anchor="middle">{_h(_tick_label(t, span))}</text>')
    for c in report.checkouts:
        if c.credential != credential:
            continue
        if c.held_from is None:
            if c.requested_at is not None and since <= c.requested_at <= until:
                rx = x(c.requested_at)
                parts.append(
                    f'<line x1="{rx:.1f}" y1="{lane_y - 6}" x2="{rx:.1f}" y2="{lane_y - 1}" '
                    f'stroke="#777" stroke-width="1.5"><title>{_h(c.id)} {_h(c.requester)} '
                    f'{_h(c.outcome)} {_h(_t(c.requested_at))}</title></line>')
            continue
        end = c.held_to if c.held_to is not None else until
        if c.held_from > until or end < since:
            continue
        x0, x1 = x(c.held_from), x(end)
        w = max(x1 - x0, 3.0)
        colour = colours.get(c.requester, "#666")
        tip = (f"{c.id}: {c.requester} held {c.credential} {_t(c.held_from)} .. "
               f"{_t(c.held_to) if c.held_to else 'still held'}; approved by "
               f"{_approvers(c)}; {c.reason} ({c.ticket}); rotation {c.rotation.text()}")
        rot_at = c.rotation.at if c.rotation.outcome == "committed" else None
        tail_end = rot_at if rot_at is not None else (
            until if c.held_to is not None else None)
        if tail_end is not None and c.held_to is not None and tail_end > c.held_to:
            tx0, tx1 = x(c.held_to), x(tail_end)
            if tx1 - tx0 >= 1:
                parts.append(f'<rect x="{tx0:.1f}" y="{lane_y + 4}" width="{tx1 - tx0:.1f}" '
                             f'height="{lane_h - 8}" fill="{colour}" fill-opacity="0.3">'
                             f"<title>{_h(c.id)}: exposure until rotation "
                             f"{_h(_t(rot_at) if rot_at else 'NOT ROTATED')}</title></rect>")
        stroke = ""
        if c.emergency:
            stroke = f' stroke="{EMERGENCY_COLOUR}" stroke-width="2.5"'
        elif c.held_to is None:
            stroke = ' stroke="#222" stroke-width="1.2" stroke-dasharray="3 2"'
        parts.append(f'<rect x="{x0:.1f}" y="{lane_y}" width="{w:.1f}" height="{lane_h}" '
                     f'fill="{colour}"{stroke}><title>{_h(tip)}</title></rect>')
        label = f"{c.requester}" + (" (EMERGENCY)" if c.emergency else "")
        if w >= 7 * len(label) + 6:
            parts.append(f'<text x="{x0 + 3:.1f}" y="{lane_y + 14}" font-size="11" '
                         f'fill="#fff">{_h(label)}</text>')
        elif c.emergency:
            parts.append(f'<text x="{x0 + w / 2:.1f}" y="{lane_y - 4}" font-size="11" '
                         f'font-weight="700" fill="{EMERGENCY_COLOUR}" text-anchor="middle">!'
                         "</text>")
    for f in report.rotation_failures:
        if f.credential != credential:
            continue
        fx = x(f.at)
        parts.append(
            f'<path d="M{fx - 4:.1f},{lane_y - 9} l8,8 m0,-8 l-8,8" stroke="{EMERGENCY_COLOUR}" '
            f'stroke-width="2"><title>rotation failed {_h(_t(f.at))}: {_h(f.error)}</title>'
            "</path>")
    parts.append("</svg>")
    return "".join(parts)


def _html_table(head: list[str], rows: list[list[Any]], row_class: list[str] | None = None
                ) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_h(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(report: CustodyReport) -> str:
    """One self-contained page: inline CSS and SVG, no script, no network.

    The document is also well-formed XML (tests parse it with ElementTree), and
    its Content-Security-Policy forbids every fetch and script.
    """
    r = report
    audit_cls = "ok" if r.audit.ok else "bad"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"/>',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\"/>",
        f"<title>glasskey custody report {_h(iso(r.since)[:10])} .. "
        f"{_h(iso(r.until)[:10])}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>glasskey custody review report</h1>",
        '<table class="meta"><tbody>',
        f"<tr><td>Vault</td><td><code>{_h(r.vault_id)}</code></td></tr>",
        f"<tr><td>Period</td><td>{_h(iso(r.since))} .. {_h(iso(r.until))}</td></tr>",
        f"<tr><td>Generated</td><td>{_h(iso(r.generated_at))}</td></tr>",
        f'<tr><td>Audit log</td><td class="{audit_cls}" id="audit-status">'
        f"{_h(_audit_line(r))}</td></tr>",
        f"<tr><td>Review due</td><td>{r.review_due_days:g} days after an item ends</td></tr>",
        "</tbody></table>",
        '<h2>Summary</h2><div class="summary">',
        *(f'<div class="card">{_h(k)}<b>{_h(v)}</b></div>' for k, v in _summary_items(r)),
        "</div>",
    ]
    tables = _section_rows(r)
    for key, title, note in SECTIONS:
        head, rows = tables[key]
        out.append(f'<h2 id="{key}">{_h(title)}</h2>')
        if note:
            out.append(f'<p class="note">{_h(note)}</p>')
        if key == "checkouts":
            out.append(_timelines(r))
        if key == "credentials" and r.credential_matrix:
            labels = [label for label, _ in AGE_BUCKETS]
            out.append(_html_table(["Status", *labels],
                                   [[st, *(row.get(lb, 0) for lb in labels)]
                                    for st, row in sorted(r.credential_matrix.items())]))
        if not rows:
            out.append("<p>None.</p>")
            continue
        shown, more = _rows_limited(rows)
        classes: list[str] | None = None
        if key == "findings":
            classes = [f"sev-{f.severity}" for f in r.findings[:MAX_ROWS]]
        elif key == "pairs":
            classes = ["sev-medium" if p.flagged else "" for p in r.pairs[:MAX_ROWS]]
        out.append(_html_table(head, shown, classes))
        if more:
            out.append(f"<p>... and {more} more rows (see the JSON report).</p>")
    out.append('<p class="note">No secret value appears in this report: the audit log '
               "records none.</p></body></html>")
    return "\n".join(out) + "\n"


def _timelines(r: CustodyReport) -> str:
    creds = sorted({c.credential for c in r.checkouts if c.revealed}
                   | {f.credential for f in r.rotation_failures})
    if not creds:
        return ""
    colours = _colours(r)
    out = ['<h3>Custody timeline</h3><p class="note">Solid bar: held (reveal to check-in or '
           "lease end), in the holder's colour; light tail: exposure until the rotation that "
           "ended it; dashed outline: still held at the end of the period; red outline or !: "
           "emergency-kit use; red cross: failed rotation; grey tick: request that released "
           'nothing. Hover a bar for details.</p><div class="legend">']
    out += [f'<span><i style="background:{c}"></i>{_h(n)}</span>' for n, c in colours.items()]
    out.append("</div>")
    for cred in creds[:MAX_ROWS]:
        n = sum(1 for c in r.checkouts if c.credential == cred and c.revealed)
        out.append(f'<figure class="timeline" data-credential="{_h(cred)}"><figcaption>'
                   f"{_h(cred)} ({n} custody interval{'s' if n != 1 else ''})</figcaption>"
                   f"{timeline_svg(r, cred)}</figure>")
    return "".join(out)


# ==== attestation ================================================================================
def report_sha256(report_text: str) -> str:
    return hashlib.sha256(report_text.encode("utf-8")).hexdigest()


def attest(vault: Vault, session: Session, report_text: str, fmt: str, since: float,
           until: float, *, head_seq: int | None = None, head_hash: str | None = None) -> str:
    """Sign off a period: a ``report.attested`` entry by ``session``'s operator.

    Records the SHA-256 of the exact rendered report, its format, the period
    and the audit head the report was built from (``head_seq``/``head_hash``:
    pass the report's ``audit.head_seq``/``audit.head_hash`` so that the
    attestation binds exactly what the report says it read; the default, the
    head at signing time, is only right when nothing was written since).
    ``entries`` repeats ``head_seq`` for older readers. Returns the
    attestation id (the entry's subject). The reviewer must be an active
    operator with the approver role.
    """
    if fmt not in ("md", "html", "json"):
        raise UsageError(f"report format {fmt!r} is not one of md, html, json")
    digest = report_sha256(report_text)
    att_id = vault.new_id("att")
    with vault.store.transaction() as txn:
        vault._require_active(txn, session, "approver")
        head = txn.audit_head
        seq = int(head_seq) if head_seq is not None else head.seq
        bound = head_hash if head_hash is not None else (
            head.hash if head_seq is None else "")
        if head_seq is not None and seq > head.seq:
            raise UsageError(f"the report names audit entry {seq} but the log ends at "
                             f"{head.seq}")
        txn.record(session.signer, "report.attested", att_id, {
            "since": iso(since), "until": iso(until), "sha256": digest, "format": fmt,
            "entries": seq, "head_seq": seq, "head_hash": bound,
        })
    return att_id


def find_attestations(vault: Vault, report_text: str) -> list[AttestationRecord]:
    """The ``report.attested`` entries whose hash matches ``report_text``."""
    digest = report_sha256(report_text)
    return [a for a in _all_attestations(vault) if a.sha256 == digest]


def _all_attestations(vault: Vault) -> list[AttestationRecord]:
    out = []
    for raw in vault.audit_lines():
        if b'"report.attested"' not in raw:
            continue  # cheap skip: the event name is in the line verbatim
        entry = json.loads(raw)
        if entry.get("event") != "report.attested" or entry.get("sig") is None:
            continue
        d = entry.get("details") or {}
        seq = d.get("head_seq") if d.get("head_seq") is not None else d.get("entries")
        out.append(AttestationRecord(
            _s(entry.get("subject")), _s(entry.get("actor")),
            _ts(entry.get("time")) or 0.0, _s(d.get("since")), _s(d.get("until")),
            _s(d.get("sha256")), _s(d.get("format")), _i(seq), _s(d.get("head_hash"))))
    return out


_PERIOD = re.compile(r"Period(?:</td><td>|: |\W+)(\S+Z) \.\. (\S+Z)")
_HEAD = re.compile(r"head seq (\d+) hash ([0-9a-f]{64})")
_JSON_HEAD = re.compile(r'"head_hash": "([0-9a-f]{64})"[\s\S]*?"head_seq": (\d+)')


def _claims(text: str) -> tuple[str, str, int | None, str]:
    """(since, until, head seq, head hash) a report's text claims ('' / None if absent)."""
    since = until = head_hash = ""
    head_seq: int | None = None
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        raw_audit = doc.get("audit")
        audit: dict[str, Any] = raw_audit if isinstance(raw_audit, dict) else {}
        since, until = _s(doc.get("since")), _s(doc.get("until"))
        head_seq, head_hash = _i(audit.get("head_seq")), _s(audit.get("head_hash"))
        return since, until, head_seq, head_hash
    if (m := _PERIOD.search(text)) is not None:
        since, until = m.group(1), m.group(2)
    if (h := _HEAD.search(text)) is not None:
        head_seq, head_hash = int(h.group(1)), h.group(2)
    return since, until, head_seq, head_hash


@dataclass(frozen=True)
class ReportCheck:
    """A report file that matches a signed attestation in the verified log."""

    attestation: AttestationRecord
    sha256: str


def verify_report(vault: Vault, report_text: str, name: str = "the report") -> ReportCheck:
    """Check a rendered report against its signed attestation; IntegrityError (exit 3) if not.

    The log must verify; the report's SHA-256 must be one a ``report.attested``
    entry signed; and the head that attestation binds must be the line at that
    seq in the log. When nothing matches, the error names the attestation of
    the same period (if any) and what differs: the digest, the period, the head.
    """
    verified = vault.verify_audit(incremental=True)  # sound: see Vault.verify_audit
    if not verified.ok:
        raise IntegrityError(f"the audit log does not verify (entry {verified.first_bad}: "
                             f"{verified.reason}), so no attestation in it can be trusted")
    digest = report_sha256(report_text)
    attestations = _all_attestations(vault)
    match = next((a for a in reversed(attestations) if a.sha256 == digest), None)
    if match is not None:
        if match.head_hash and match.entries is not None:
            found = _line_hash_at(vault, match.entries)
            if found != match.head_hash:
                raise IntegrityError(
                    f"{name} matches attestation {match.id}, but the head it binds (entry "
                    f"{match.entries}, {match.head_hash[:16]}...) is not in this log")
        return ReportCheck(match, digest)
    since, until, head_seq, head_hash = _claims(report_text)
    same = [a for a in attestations if (a.since, a.until) == (since, until)]
    if not same:
        raise IntegrityError(f"no attestation in the verified log matches {name} (SHA-256 "
                             f"{digest[:16]}..., period {since or '?'} .. {until or '?'})")
    att = same[-1]
    what = [f"its SHA-256 is {digest[:16]}... but {att.by} signed {att.sha256[:16]}..."]
    if att.head_hash and head_hash and head_hash != att.head_hash:
        what.append(f"it names head {head_hash[:16]}... where the attestation binds "
                    f"{att.head_hash[:16]}...")
    if att.entries is not None and head_seq is not None and head_seq != att.entries:
        what.append(f"it names head seq {head_seq} where the attestation binds "
                    f"{att.entries}")
    raise IntegrityError(f"{name} was altered after it was signed off (attestation "
                         f"{att.id} by {att.by} at {iso(att.at)}, period {since} .. "
                         f"{until}): " + "; ".join(what))


def _line_hash_at(vault: Vault, seq: int) -> str:
    """SHA-256 of the ``seq``-th line of the log ('' if the log is shorter)."""
    for n, raw in enumerate(vault.audit_lines(), 1):
        if n == seq:
            return hashlib.sha256(raw).hexdigest()
    return ""


def parse_date(text: str, *, end: bool = False) -> float:
    """``YYYY-MM-DD`` (the whole day, UTC) or an RFC 3339 instant -> epoch seconds.

    With ``end``, a bare date means the end of that day (for ``--until``).
    """
    raw = (text or "").strip()
    try:
        if len(raw) == 10:
            start = datetime.fromisoformat(raw + "T00:00:00+00:00").timestamp()
            return start + DAY - 1 if end else start
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"date {text!r} is not understood; use YYYY-MM-DD or "
                         "YYYY-MM-DDTHH:MM:SSZ") from None
    if value.tzinfo is None:
        raise UsageError(f"date {text!r} has no time zone; add Z for UTC")
    return value.timestamp()
