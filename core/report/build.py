"""Building the custody report: read the verified log, select the period's items,
judge them, and assemble a CustodyReport.

Each section has its own function taking the collector and the period, so a
reader can follow one section from the log to the report without the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glasskey.core.errors import IntegrityError, UsageError
from glasskey.core.report.analyse import (
    _credentials,
    _drills,
    _pairs,
    _review_status,
    _rotation_for,
    _state_kit,
    _unreviewed,
)
from glasskey.core.report.collect import _Collector
from glasskey.core.report.controls import controls_mapping
from glasskey.core.report.findings import _drill_findings, _findings
from glasskey.core.report.model import AuditStatus, CustodyReport, Summary
from glasskey.core.report.records import (
    AuthEvent,
    AuthSummary,
    CheckoutRecord,
    CredentialRecord,
    EmergencyUse,
    KitRecord,
    OnboardingRecord,
    RotationFailure,
)
from glasskey.core.report.rules import AGE_BUCKETS, DAY, EMERGENCY_REVIEWS, REVIEW_DUE
from glasskey.core.report.stream import _read_log
from glasskey.core.report.values import _in, _ts

if TYPE_CHECKING:
    from glasskey.core.vault import Vault


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

    checkouts = _checkouts(col, since, until, now, review_due)
    emergency = _emergency_uses(col, since, until, now, review_due)
    onboarding = _onboarding(col, since, until, now, review_due)
    failures = _rotation_failures(col, since, until, now, review_due)
    credentials, audit.state_error = _credentials(vault, col, checkouts, since, until, now)
    state_kit = _state_kit(vault)
    auth_events = sorted((a for a in col.auth if _in(a.at, since, until)),
                         key=lambda a: (a.at, a.operator))
    report = CustodyReport(
        vault_id=_vault_id(vault), since=since, until=until, generated_at=now,
        review_due_days=review_due / DAY, audit=audit, summary=Summary(), findings=[],
        checkouts=checkouts, emergency_uses=emergency, emergency_kits=_kits(col, since, until),
        onboarding=onboarding, rotation_failures=failures, credentials=credentials,
        credential_matrix=_matrix(credentials), auth=_auth_summaries(auth_events),
        auth_events=auth_events,
        operator_changes=sorted((o for o in col.operators if _in(o.at, since, until)),
                                key=lambda o: o.at),
        pairs=_pairs(col, since, until),
        unreviewed=_unreviewed(checkouts, emergency, onboarding, failures, now, review_due),
        attestations=[a for a in col.attestations
                      if (_ts(a.since) or 0.0) <= until and (_ts(a.until) or now) >= since],
        controls=[],
        kit_refusals=[k for k in col.kit_refusals if _in(k.at, since, until)],
        notify_failures=[n for n in col.notify_failures if _in(n.at, since, until)],
        unsigned=[u for u in col.unsigned if _in(u.at, since, until)],
    )
    report.summary = _summary(report)
    report.findings = _findings(report, col, state_kit)
    report.drills, report.drill_credentials = _drills(vault, col, since, until)
    report.findings += _drill_findings(report)
    report.controls = controls_mapping(report)
    return report


def _vault_id(vault: Vault) -> str:
    """The vault's id; read from the state as stored when the state fails its checks,
    so that the report of a damaged vault still names it."""
    try:
        return vault.vault_id
    except IntegrityError:
        return str(vault.store.unverified_meta()["vault_id"])


def _checkouts(col: _Collector, since: float, until: float, now: float, due: float
               ) -> list[CheckoutRecord]:
    """Every checkout requested, acted on or held in the period, with its follow-ups."""
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
            rec.review_status = _review_status(rec.reviews, rec.reviews_needed, rec.closed_at,
                                               now, due)
        elif rec.reviews:
            rec.review_status = _review_status(rec.reviews, 1, None, now, due)
        rec.refusals = sorted(rec.refusals, key=lambda r: r.at)
        checkouts.append(rec)
    checkouts.sort(key=lambda r: (r.requested_at or r.held_from or 0.0, r.id))
    return checkouts


def _emergency_uses(col: _Collector, since: float, until: float, now: float, due: float
                    ) -> list[EmergencyUse]:
    """Emergency-kit uses in the period, with their reviewers and the rotation after."""
    emergency: list[EmergencyUse] = []
    for use in col.emergency.values():
        if not _in(use.at, since, until):
            continue
        use.reviews = list(col.reviews.get(use.id, []))
        use.reviewers = sorted({r.reviewer for r in use.reviews})
        co = col.checkouts.get(use.id)
        finished = co.held_to if co is not None else use.at
        use.review_status = _review_status(use.reviews, EMERGENCY_REVIEWS, finished, now, due)
        if co is not None:
            co_rot = _rotation_for(co, col) if co.revealed else None
            use.rotation = co_rot.text() if co_rot else "not revealed"
        else:
            later = [r for r in col.rot.get(use.credential, [])
                     if r.kind == "commit" and r.at >= use.at]
            use.rotation = f"committed v{later[0].version}" if later else "not-rotated"
        emergency.append(use)
    emergency.sort(key=lambda u: (u.at, u.id))
    return emergency


def _kits(col: _Collector, since: float, until: float) -> list[KitRecord]:
    """Kits issued, used or burned in the period, and every kit live at its end."""
    return sorted(
        (k for k in col.kits.values()
         if _in(k.issued_at, since, until) or _in(k.burned_at, since, until)
         or any(u in col.emergency and _in(col.emergency[u].at, since, until) for u in k.uses)
         or (k.burned_at is None and (k.issued_at or 0) <= until)),
        key=lambda k: (k.issued_at or 0.0, k.id))


def _onboarding(col: _Collector, since: float, until: float, now: float, due: float
                ) -> list[OnboardingRecord]:
    """Onboarding secrets with any event in the period, with their reviews."""
    onboarding: list[OnboardingRecord] = []
    for ob in col.onboarding.values():
        if not any(since <= t <= until for t in col.event_times.get("onboarding:" + ob.id, [])):
            continue
        ob.reviews = list(col.reviews.get(ob.id, []))
        if ob.finished or ob.reviews:
            ob.review_status = _review_status(ob.reviews, 1, ob.finished_at, now, due)
        onboarding.append(ob)
    onboarding.sort(key=lambda o: (o.issued_at or 0.0, o.id))
    return onboarding


def _rotation_failures(col: _Collector, since: float, until: float, now: float, due: float
                       ) -> list[RotationFailure]:
    """Failed rotations in the period: resolved by a later commit, or not."""
    failures: list[RotationFailure] = []
    for cred, rots in col.rot.items():
        for i, r in enumerate(rots):
            if r.kind != "failed" or not _in(r.at, since, until):
                continue
            resolved = next((x.at for x in rots[i + 1:] if x.kind == "commit"), None)
            reviews = [rv for key in (r.request, cred) if key
                       for rv in col.reviews.get(key, []) if rv.kind == "rotation"]
            fail = RotationFailure(cred, r.at, r.actor, r.error, r.request, r.version,
                                   resolved, reviews=reviews)
            fail.review_status = _review_status(reviews, 1, r.at, now, due)
            failures.append(fail)
    failures.sort(key=lambda f: (f.at, f.credential))
    return failures


def _matrix(credentials: list[CredentialRecord]) -> dict[str, dict[str, int]]:
    """Credentials counted by status (rows) and rotation-age bucket (columns)."""
    matrix: dict[str, dict[str, int]] = {}
    for c in credentials:
        row = matrix.setdefault(c.status, {label: 0 for label, _ in AGE_BUCKETS})
        row[c.age_bucket] = row.get(c.age_bucket, 0) + 1
    return matrix


def _auth_summaries(auth_events: list[AuthEvent]) -> list[AuthSummary]:
    """Failed authentications and lockouts per operator, most failures first."""
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
    return sorted(per_op.values(), key=lambda s: (-s.failures, s.operator))


def _summary(r: CustodyReport) -> Summary:
    """The counts at the top of the report, from its sections."""
    checkouts, auth, unreviewed = r.checkouts, r.auth, r.unreviewed
    return Summary(
        checkouts=len(checkouts),
        revealed=sum(1 for c in checkouts if c.revealed),
        denied=sum(1 for c in checkouts if c.outcome == "denied"),
        cancelled=sum(1 for c in checkouts if c.outcome == "cancelled"),
        expired=sum(1 for c in checkouts if c.outcome == "expired"),
        open=sum(1 for c in checkouts if c.outcome in ("requested", "approved", "held")),
        rotated_after_use=sum(1 for c in checkouts if c.rotation.outcome == "committed"),
        not_rotated=sum(1 for c in checkouts if c.revealed and c.held_to is not None
                        and c.rotation.outcome != "committed"),
        rotation_failures=len(r.rotation_failures),
        emergency_uses=len(r.emergency_uses),
        onboarding=len(r.onboarding),
        reviewed=sum(1 for c in checkouts if c.review_status in ("ok", "concern")),
        unreviewed=len(unreviewed),
        overdue_reviews=sum(1 for u in unreviewed if u.overdue),
        auth_failures=sum(s.failures for s in auth),
        lockouts=sum(s.lockouts for s in auth),
        refusals=sum(len(c.refusals) for c in checkouts) + len(r.kit_refusals),
        flagged_pairs=sum(1 for p in r.pairs if p.flagged),
        credentials=len(r.credentials),
        oldest_rotation_days=max((c.age_days for c in r.credentials if c.in_vault),
                                 default=0.0),
        operator_changes=len(r.operator_changes),
        released=sum(1 for c in checkouts if c.released),
        released_not_revealed=sum(1 for c in checkouts if c.released_not_revealed),
        kit_refusals=len(r.kit_refusals),
        notify_failures=len(r.notify_failures),
        unsigned_entries=len(r.unsigned),
    )
