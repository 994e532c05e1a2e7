"""Signing off a period: the ``report.attested`` entry, and finding it again.

Attesting is the report's only write. ``ReportService`` does it with the
store's declared surface (a transaction that records an entry) and the signed
roster's role check, never the vault's private helpers, so it can be composed
into the vault as a service of its own (issue 12).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from glasskey.core.clock import iso
from glasskey.core.errors import UsageError
from glasskey.core.report.collect import attestation_of
from glasskey.core.report.records import AttestationRecord
from glasskey.core.report.values import _s, _ts

if TYPE_CHECKING:
    from glasskey.core.session import Session
    from glasskey.core.storage.interface import Store
    from glasskey.core.vault import Vault

#: The formats a report is rendered in, hence may be attested in.
FORMATS = ("md", "html", "json")


def report_sha256(report_text: str) -> str:
    """The digest an attestation binds: SHA-256 of the exact rendered text (UTF-8)."""
    return hashlib.sha256(report_text.encode("utf-8")).hexdigest()


class ReportService:
    """Report sign-off for one vault: what needs a session and writes the log."""

    def __init__(self, store: Store, new_id: Callable[[str], str]) -> None:
        self._store = store
        self._new_id = new_id

    @classmethod
    def for_vault(cls, vault: Vault) -> ReportService:
        return cls(vault.store, vault.new_id)

    def attest(self, session: Session, report_text: str, fmt: str, since: float,
               until: float, *, head_seq: int | None = None,
               head_hash: str | None = None) -> str:
        """Sign off a period: a ``report.attested`` entry by ``session``'s operator.

        Records the SHA-256 of the exact rendered report, its format, the period
        and the audit head the report was built from (``head_seq``/``head_hash``:
        pass the report's ``audit.head_seq``/``audit.head_hash`` so that the
        attestation binds exactly what the report says it read; the default, the
        head at signing time, is only right when nothing was written since).
        ``entries`` repeats ``head_seq`` for older readers. Returns the
        attestation id (the entry's subject). The reviewer must be an active
        operator with the approver role (checked against the signed roster
        inside the transaction).
        """
        if fmt not in FORMATS:
            raise UsageError(f"report format {fmt!r} is not one of md, html, json")
        digest = report_sha256(report_text)
        att_id = self._new_id("att")
        with self._store.transaction() as txn:
            txn.roster.require(session.name, session.operator_id, "approver")
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


def attest(vault: Vault, session: Session, report_text: str, fmt: str, since: float,
           until: float, *, head_seq: int | None = None, head_hash: str | None = None) -> str:
    """``ReportService.attest`` for ``vault`` (the entry point the CLI calls)."""
    return ReportService.for_vault(vault).attest(session, report_text, fmt, since, until,
                                                 head_seq=head_seq, head_hash=head_hash)


def find_attestations(vault: Vault, report_text: str) -> list[AttestationRecord]:
    """The ``report.attested`` entries whose hash matches ``report_text``."""
    digest = report_sha256(report_text)
    return [a for a in _all_attestations(vault) if a.sha256 == digest]


def _all_attestations(vault: Vault) -> list[AttestationRecord]:
    """Every signed ``report.attested`` entry in the log, in log order."""
    out = []
    for raw in vault.audit_lines():
        if b'"report.attested"' not in raw:
            continue  # cheap skip: the event name is in the line verbatim
        entry = json.loads(raw)
        if entry.get("event") != "report.attested" or entry.get("sig") is None:
            continue
        details = entry.get("details")
        out.append(attestation_of(_s(entry.get("subject")), _s(entry.get("actor")),
                                  _ts(entry.get("time")) or 0.0,
                                  details if isinstance(details, dict) else {}))
    return out
