"""Judgements over the collected items: review status, the rotation that ended an
exposure, approver-requester pairs, unreviewed items, credentials by age, drills.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from glasskey.core.errors import IntegrityError
from glasskey.core.report.collect import _Collector
from glasskey.core.report.records import (
    CheckoutRecord,
    CredentialDrill,
    CredentialRecord,
    EmergencyUse,
    OnboardingRecord,
    OperatorDrill,
    PairRecord,
    ReviewRecord,
    RotationFailure,
    RotationOutcome,
    UnreviewedItem,
)
from glasskey.core.report.rules import (
    AGE_BUCKETS,
    DAY,
    EMERGENCY_REVIEWS,
    SOD_MIN_COUNT,
    SOD_SHARE,
)
from glasskey.core.report.values import _in, _s

if TYPE_CHECKING:
    from glasskey.core.vault import Vault


def _review_status(reviews: list[ReviewRecord], needed: int, finished_at: float | None,
                   now: float, due: float) -> str:
    """ok/concern once ``needed`` distinct people reviewed; else overdue or pending."""
    reviewers = {r.reviewer for r in reviews}
    if len(reviewers) >= needed:
        return "concern" if any(r.outcome == "concern" for r in reviews) else "ok"
    if finished_at is not None and now - finished_at > due:
        return "overdue"
    return "pending"


def _rotation_for(rec: CheckoutRecord, col: _Collector) -> RotationOutcome:
    """The rotation that ended a release's exposure: the one linked to the request,
    else any later version committed after the value could first be read."""
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

def _drills(vault: Vault, col: _Collector, since: float, until: float
            ) -> tuple[list[OperatorDrill], list[CredentialDrill]]:
    """The drills section (issue 14): each active operator's share drills, and the
    credentials fewer than k operators with a passed drill in the period could open."""
    try:
        members = [o.name for o in vault.operators() if o.status == "active"]
        creds = [(c.name, c.policy.k) for c in vault.credentials() if c.status != "revoked"]
    except IntegrityError:
        members, creds = [], []
    period = [d for d in col.drills if _in(d.at, since, until)]
    drilled: set[str] = set()
    drills: list[OperatorDrill] = []
    for name in members:
        passed = [d for d in col.drills if d.operator == name and d.passed
                  and d.kind == "share" and d.at <= until]
        in_period = [d for d in period if d.operator == name and d.kind == "share"]
        ok = sum(1 for d in in_period if d.passed)
        if ok:
            drilled.add(name)
        drills.append(OperatorDrill(
            name, passed[-1].at if passed else None, passed[-1].subject if passed else "",
            ok, len(in_period) - ok,
            sum(1 for d in period if d.operator == name and d.kind == "kit" and d.passed),
            ok == 0))
    last_share: dict[tuple[str, str], bool] = {}
    for d in period:
        if d.kind == "share":
            last_share[(d.operator, d.subject)] = d.passed
    short: list[CredentialDrill] = []
    for cred, k in creds:
        count = sum(1 for op in drilled if last_share.get((op, cred), True))
        if count < k:
            short.append(CredentialDrill(cred, k, count))
    return drills, short


def _bucket(age_days: float) -> str:
    """The rotation-age bucket label for an age in days."""
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
    """Approver-requester pairs of the period's approvals, flagged for segregation of
    duties (dominant, reciprocal, self-approval); flagged pairs first."""
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
    """Everything still waiting for its review(s), overdue items first."""
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
            add("checkout", c.id, c.credential, c.requester, c.closed_at,
                len({r.reviewer for r in c.reviews}), c.reviews_needed)
    for u in emergency:
        if u.review_status in ("pending", "overdue"):
            add("emergency", u.id, u.credential, u.by, u.at, len(u.reviewers),
                EMERGENCY_REVIEWS)
    for o in onboarding:
        if o.review_status in ("pending", "overdue"):
            add("onboarding", o.id, o.identity, o.issued_by, o.finished_at, 0, 1)
    for f in failures:
        if f.review_status in ("pending", "overdue"):
            add("rotation", f.request or f.credential, f.credential, f.by, f.at, 0, 1)
    items.sort(key=lambda i: (not i.overdue, i.finished_at or 0.0, i.kind, i.id))
    return items

