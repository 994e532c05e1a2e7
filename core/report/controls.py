"""Mapping glasskey's controls to OWASP NHI Top 10, NIST SP 800-63B and CSF 2.0 PR.AA."""

from __future__ import annotations

from collections import Counter

from glasskey.core.report.model import ControlRow, CustodyReport

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

