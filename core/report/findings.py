"""What a reviewer must look at: findings, ordered by severity.

Every finding is derived from the report's own sections (and, for the
state-versus-log checks, from what the collector folded), so a finding never
says something the tables below it do not show.
"""

from __future__ import annotations

from collections import Counter

from glasskey.core.audit import SYSTEM_EVENTS
from glasskey.core.clock import iso
from glasskey.core.report.collect import _Collector
from glasskey.core.report.model import CustodyReport, Finding
from glasskey.core.report.records import UNSIGNED
from glasskey.core.report.rules import EMERGENCY_REVIEWS


def _log_active_kit(col: _Collector) -> str:
    """The kit the verified log leaves active: the last issued one not burned ('' if none)."""
    live = [k for k in col.kits.values() if k.issued_at is not None and k.burned_at is None]
    return max(live, key=lambda k: (k.issued_at or 0.0, k.id)).id if live else ""


def _findings(report: CustodyReport, col: _Collector, state_kit: str | None = None
              ) -> list[Finding]:
    """Every finding but the drills', highest severity first.

    ``state_kit`` is the active kit the vault state claims (None if the state
    is unreadable): it must agree with the kit the verified log leaves active.
    """
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


def _drill_findings(report: CustodyReport) -> list[Finding]:
    """Findings of the drills section (issue 14): operators not drilled in the period,
    credentials short of k drilled operators."""
    out: list[Finding] = []
    undrilled = [d.operator for d in report.drills if d.flagged]
    if undrilled:
        out.append(Finding(
            "medium", "drill-missing", ", ".join(undrilled),
            f"{len(undrilled)} active operator(s) passed no share drill in the period: "
            "nobody knows whether they can still unlock and open their share"))
    if report.drill_credentials:
        out.append(Finding(
            "medium", "drill-threshold", f"{len(report.drill_credentials)} credential(s)",
            f"{len(report.drill_credentials)} credential(s) have fewer than k operators "
            "with a passed drill in the period (see 'Drills')"))
    return out
