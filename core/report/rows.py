"""The tables every rendering shares (Markdown and HTML): cells as plain text.

Each renderer escapes the cells for its own format; what a cell *says* is
decided here once, so the Markdown and HTML reports never disagree.
"""

from __future__ import annotations

from typing import Any

from glasskey.core.clock import iso
from glasskey.core.models import format_duration
from glasskey.core.report.model import CustodyReport
from glasskey.core.report.records import UNSIGNED, CheckoutRecord, Reviewed
from glasskey.core.report.rules import (
    AGE_BUCKETS,
    EMERGENCY_REVIEWS,
    MAX_ROWS,
    SOD_MIN_COUNT,
    SOD_SHARE,
)
from glasskey.core.report.values import _s


def _plain(value: Any) -> str:
    """A detail value as one cell: lists joined with +, booleans as yes/no."""
    if isinstance(value, list | tuple):
        return "+".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _s(value)


def _t(value: float | None) -> str:
    """An instant as RFC 3339 UTC, or - for none."""
    return iso(value) if value is not None else "-"


def _held(c: CheckoutRecord) -> str:
    """How long the secret was held (or that it still is)."""
    if c.held_seconds is not None:
        return format_duration(c.held_seconds)
    if c.held_from is not None:
        return "still held"
    return "-"


def _outcome(c: CheckoutRecord) -> str:
    """How a checkout ended, in words a reviewer reads."""
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


def _review_text(item: Reviewed) -> str:
    """The reviews as outcome-by-reviewer, with the status while incomplete."""
    status = item.review_status
    if not item.reviews:
        return status
    parts = [f"{r.outcome} by {r.reviewer}" + (f" ({r.note})" if r.note else "")
             for r in item.reviews]
    return "; ".join(parts) + ("" if status in ("ok", "concern") else f" [{status}]")


def _approvers(c: CheckoutRecord) -> str:
    """Who approved, or the emergency kit that stood in for approvals."""
    if c.emergency and not c.approvals:
        return f"EMERGENCY KIT {c.kit}"
    names = ", ".join(c.approvers) or "-"
    return names + (f" + kit {c.kit}" if c.emergency else "")


def _rows_limited(rows: list[Any]) -> tuple[list[Any], int]:
    """The first MAX_ROWS rows and how many were left out."""
    return rows[:MAX_ROWS], max(0, len(rows) - MAX_ROWS)


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
              _held(c), _outcome(c), c.rotation.text(), _review_text(c)]
             for c in r.checkouts]),
        "released": (
            ["Request", "Credential", "Requester", "Approver(s)", "Released", "Outcome",
             "Rotation", "Review"],
            [[c.id, c.credential, c.requester, _approvers(c), _t(c.released_at), _outcome(c),
              c.rotation.text(), _review_text(c)]
             for c in r.checkouts if c.released_not_revealed]),
        "emergency": (
            ["Request", "Credential", "Kit", "Used by", "At", "Reason", "Ticket", "Rotation",
             "Reviewers", "Review"],
            [[u.id, u.credential, u.kit, u.by, _t(u.at), u.reason or "-", u.ticket or "-",
              u.rotation,
              f"{', '.join(u.reviewers) or '-'} ({len(u.reviewers)}/{EMERGENCY_REVIEWS})",
              _review_text(u)] for u in r.emergency_uses]),
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
              o.status, _review_text(o)] for o in r.onboarding]),
        "rotation_failures": (
            ["Credential", "At", "By", "Request", "To version", "Error", "Resolved", "Review"],
            [[f.credential, _t(f.at), f.by, f.request or "-", f.to_version, f.error,
              _t(f.resolved_at) if f.resolved_at else "UNRESOLVED", _review_text(f)]
             for f in r.rotation_failures]),
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
    """The summary as (label, value) in the order both renderings show it."""
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


def _matrix_table(r: CustodyReport) -> tuple[list[str], list[list[Any]]]:
    """The credentials-by-status-and-age table (head, rows) both renderings show."""
    labels = [label for label, _ in AGE_BUCKETS]
    return ["Status", *labels], [[st, *(row.get(lb, 0) for lb in labels)]
                                 for st, row in sorted(r.credential_matrix.items())]


def _audit_line(r: CustodyReport) -> str:
    """The audit log's state in one line (its head is what ``report verify`` reads)."""
    a = r.audit
    if a.ok:
        return (f"VERIFIED: {a.entries} entries, hash chain and signatures intact; "
                f"head seq {a.head_seq} hash {a.head_hash}")
    return (f"BROKEN at entry {a.first_bad}: {a.reason}. This report was built from the "
            f"{a.entries_read} readable entries and must not be relied on.")

