"""``report verify``: does a rendered report match a signed attestation in the log?"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from glasskey.core.clock import iso
from glasskey.core.errors import IntegrityError
from glasskey.core.report.attest import _all_attestations, report_sha256
from glasskey.core.report.records import AttestationRecord
from glasskey.core.report.values import _i, _s

if TYPE_CHECKING:
    from glasskey.core.vault import Vault


#: Where the Markdown and HTML renderings state the period and the audit head.
_PERIOD = re.compile(r"Period(?:</td><td>|: |\W+)(\S+Z) \.\. (\S+Z)")
_HEAD = re.compile(r"head seq (\d+) hash ([0-9a-f]{64})")


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

