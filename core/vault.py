"""The vault: one object the CLI and the TUI share, composed of the services.

``Vault`` = operators (enrol, unlock) + credentials (add, import) + checkout
(request, approve, deny, cancel, reveal) + rotation (check-in, reconcile),
over one store, one clock and one source of randomness.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glasskey.core import config as site_config
from glasskey.core.chain import Progress, VerifyResult
from glasskey.core.clock import CLOCK_SKEW, Clock, Random, iso
from glasskey.core.drill import DrillOps
from glasskey.core.emergency import EmergencyOps
from glasskey.core.errors import (
    ClockSkewError,
    ConnectorError,
    GlasskeyError,
    IntegrityError,
    StorageError,
)
from glasskey.core.models import CheckoutState
from glasskey.core.notify import NotifyOps
from glasskey.core.offboarding import OffboardingOps
from glasskey.core.onboarding import SWEEP_FAILURES, OnboardingOps
from glasskey.core.operators import OperatorOps
from glasskey.core.redisplay import HolderOps
from glasskey.core.rotation import RotationResult
from glasskey.core.session import Session
from glasskey.core.storage.interface import AuditCursor, AuditPage, Store

S = CheckoutState


@dataclass(frozen=True)
class SweepReport:
    expired: list[str]
    overdue: list[str]
    rotated: list[RotationResult]
    errors: list[str]


class Vault(NotifyOps, DrillOps, OperatorOps, OnboardingOps, EmergencyOps, OffboardingOps,
            HolderOps):
    def __init__(self, root: Path | str | Store, clock: Clock | None = None,
                 rng: Random | None = None, *, lock_timeout: float = 10.0) -> None:
        super().__init__(root, clock, rng, lock_timeout=lock_timeout)
        self._config: dict[str, object] | None = None
        self.attach_notifications()  # core/notify.py: after each commit, outside the lock

    def _site(self) -> dict[str, object]:
        if self._config is None:
            self._config = site_config.load(self.root)
        return self._config

    def site_config(self, connector: str) -> dict[str, str]:
        return site_config.connector_section(self._site(), connector)

    def site_setting(self, section: str, key: str) -> str | None:
        value = self._site().get(section)
        if isinstance(value, dict) and key in value:
            return str(value[key])
        return None

    # -- read helpers for front ends -------------------------------------------------------------
    def table_version(self, table: str) -> str:
        """An opaque token that changes exactly when ``table``'s contents change: a
        screen can skip re-reading 10,000 rows when it is unchanged."""
        return self.store.table_version(table)

    # -- audit ------------------------------------------------------------------------------
    def audit_head(self) -> AuditCursor:
        """The newest committed audit entry (not verified: cheap to poll)."""
        return self.store.audit_head()

    def audit_tail(self, count: int) -> AuditPage:
        """The last ``count`` entries, parsed, and the cursor after them."""
        return self.store.audit_tail(count)

    def audit_since(self, cursor: AuditCursor) -> AuditPage:
        """Entries after ``cursor`` and the new cursor (IntegrityError if the entry
        the cursor names was rewritten)."""
        return self.store.audit_since(cursor)

    def audit_lines(self, since: AuditCursor | None = None) -> Iterator[bytes]:
        """The log's raw lines, streamed (exports, reports, SIEM forwarding)."""
        return self.store.audit_lines(since)

    def audit_batches(self) -> Iterator[list[bytes]]:
        """The log's raw lines in large batches (the one-day report's fast path)."""
        return self.store.audit_batches()

    def verify_audit(self, *, incremental: bool = False,
                     progress: Progress | None = None) -> VerifyResult:
        """Every link and every signature of the log. A verified head is remembered:
        a reader is a witness too. ``incremental``: signatures only after this
        client's last verified checkpoint, a hash-only check of the lines before it."""
        return self.store.verify_audit(incremental=incremental, progress=progress)

    # -- time-driven work ---------------------------------------------------------------------
    def sweep(self, session: Session) -> SweepReport:
        """Expire stale requests, notice overdue leases, rotate what is due.

        Run by every authenticated command and periodically by the TUI, so
        that expiry happens at the next opportunity even with no process of
        the holder running. Leases of this session's own checkouts are checked
        in; other holders' overdue leases are flagged (audited once) and, for
        credentials the vault can rotate without the holder, rotated.

        Best-effort, item by item (issue 15): one item that cannot be done
        (a target that is down, a failing script) is recorded as a signed
        ``sweep.item-failed`` entry, shown by ``alerts`` and retried by a later
        sweep after a back-off; it never stops the other items, and the sweep
        never fails the command that ran it.

        Clock rule (SECURITY.md, "Clock rules"): let ``C`` be the time of the
        newest entry in the chain, ``L`` this client's clock and ``B`` =
        CLOCK_SKEW. When ``L > C + B``, this sweep does not expire, note or
        rotate an item of *another* operator unless that item was already due
        at ``C + B``; it records one ``sweep.clock-ahead`` entry instead, so a
        later sweep (which sees the newer ``C``) may act. A client whose clock
        runs hours ahead therefore cannot close others' requests or leases in
        one command, and its entries make every other client refuse to write
        (their clocks are then behind the chain), which is loud.
        """
        report = SweepReport([], [], [], [])
        try:
            self._sweep(session, report)
        except GlasskeyError as exc:  # the scan itself (never one item)
            report.errors.append(f"sweep: {exc}")
        self.notify_sweep(session.signer)  # retries, lease warnings (background, bounded)
        return report

    def _sweep(self, session: Session, report: SweepReport) -> None:
        local = self.now()
        items: list[tuple[str, str, dict[str, Any], float]] = []
        with self.store.read() as txn:
            newest = txn.newest_entry()
            failures = dict((txn.table("meta").get(SWEEP_FAILURES) or {}).get("items", {}))
            for entry in txn.table("active").values():
                req = txn.table("requests").get(entry["request"])
                if req is None:
                    continue
                if req.get("kind") == "onboarding":
                    if req["state"] in (S.REQUESTED, S.APPROVED, S.CHECKED_OUT) \
                            and local >= float(req["expires_at"]):
                        items.append(("onboarding-expiry", req["id"], req,
                                      float(req["expires_at"])))
                    elif req["state"] == S.ROTATING and req.get("released"):
                        items.append(("release", req["id"], req, float(req["ended_at"])))
                    continue
                due = self.due_at(req)
                if due is not None:
                    if local >= due:
                        items.append(("expiry", req["id"], req, due))
                elif req["state"] == S.CHECKED_OUT and local >= float(req["lease_expires"]):
                    items.append(("lease", req["id"], req, float(req["lease_expires"])))
                elif req["state"] == S.ROTATING:
                    items.append(("release" if req.get("released") else "rotation",
                                  req["id"], req, float(req.get("ended_at") or 0)))
        horizon = newest[0] + CLOCK_SKEW if newest is not None else local
        ahead = local > horizon
        held_back = 0
        for what, item, req, due in items:
            mine = req["requester"] == session.name
            if not mine and ahead and due > horizon:
                held_back += 1
                continue
            fail = failures.get(item)
            if fail is not None and local < float(fail.get("next_at", 0)):
                continue  # backing off: a dead target is not hammered on every command
            try:
                self._sweep_item(session, what, req, mine, report)
            except Exception as exc:  # any failure of one item is that item's, never the sweep's
                self._sweep_failed(session, item, what, exc, fail, report)
            else:
                if fail is not None:
                    self._sweep_recovered(session, item, what, report)
        if held_back:
            self._sweep_note_clock(session, held_back, local, newest, report)

    def _sweep_item(self, session: Session, what: str, req: dict[str, Any], mine: bool,
                    report: SweepReport) -> None:
        req_id = req["id"]
        if what == "onboarding-expiry":
            self.expire_onboarding(session, req_id)
            report.expired.append(req_id)
        elif what == "expiry":
            with self.store.transaction() as txn:
                fresh = self._request_doc(txn, req_id)
                ended = self._expire_if_due(txn, fresh, session)
            if ended:
                report.expired.append(req_id)
                self._rotate_release(session, req_id, quiet=False)
        elif what == "release":
            self._rotate_release(session, req_id, quiet=False)
        elif what == "lease":
            with self.store.transaction() as txn:
                fresh = self._request_doc(txn, req_id)
                if fresh["state"] != S.CHECKED_OUT:
                    return
                if not fresh.get("overdue_noted"):
                    fresh["overdue_noted"] = txn.entry_time()
                    self._save(txn, fresh)
                    txn.record(session.signer, "lease.expired", req_id, {
                        "credential": fresh["cred_name"], "holder": fresh["requester"],
                        "lease_expires": fresh["lease_expires"],
                    })
            report.overdue.append(req_id)
            if mine:
                report.rotated.append(self.checkin(session, req_id))
            elif self.can_rotate_for(session, req):
                report.rotated.append(self._expire_lease(session, req["cred_id"], req_id))
        elif what == "rotation":
            if mine:
                report.rotated.append(self.checkin(session, req_id))
            else:
                report.rotated.append(self._expire_lease(session, req["cred_id"], req_id))

    def _sweep_failed(self, session: Session, item: str, what: str, exc: BaseException,
                      fail: dict[str, Any] | None, report: SweepReport) -> None:
        """Record one failed item (signed), with the time of its next attempt."""
        reason = sweep_reason(exc)
        report.errors.append(f"{item}: {reason}")
        attempts = int((fail or {}).get("attempts", 0)) + 1
        wait = min(SWEEP_BACKOFF_MAX, self._sweep_backoff() * 2 ** (attempts - 1))
        try:
            with self.store.transaction() as txn:
                at = txn.entry_time()
                doc = txn.table("meta").get(SWEEP_FAILURES) or {"items": {}}
                doc.setdefault("items", {})[item] = {
                    "what": what, "reason": reason, "attempts": attempts,
                    "first": float((fail or {}).get("first", at)), "last": at,
                    "next_at": at + wait, "by": session.name,
                }
                txn.table("meta").put(SWEEP_FAILURES, doc)
                txn.record(session.signer, "sweep.item-failed", item, {
                    "what": what, "reason": reason, "attempt": attempts,
                    "retry_after": int(wait),
                })
        except GlasskeyError as rec:
            report.errors.append(f"{item}: the failure could not be recorded ({rec})")

    def _sweep_recovered(self, session: Session, item: str, what: str,
                         report: SweepReport) -> None:
        try:
            with self.store.transaction() as txn:
                doc = txn.table("meta").get(SWEEP_FAILURES) or {"items": {}}
                if item not in doc.get("items", {}):
                    return
                self._clear_sweep_failure(txn, item)
                txn.record(session.signer, "sweep.item-recovered", item, {"what": what})
        except GlasskeyError as exc:
            report.errors.append(f"{item}: {exc}")

    def _sweep_note_clock(self, session: Session, held: int, local: float,
                          newest: tuple[float, str] | None, report: SweepReport) -> None:
        """Say (signed, once per sweep) that others' due items were left alone."""
        report.errors.append(
            f"{held} item(s) of other operators look due by this computer's clock but not "
            "by the vault's; left for a later sweep")
        try:
            with self.store.transaction() as txn:
                txn.record(session.signer, "sweep.clock-ahead", "sweep", {
                    "held_back": held, "ahead_by": int(local - newest[0]) if newest else 0,
                })
        except GlasskeyError as exc:
            report.errors.append(f"sweep: {exc}")

    def _sweep_backoff(self) -> float:
        """First retry wait: ``[sweep] retry_after`` in glasskey.toml, 1 s to 1 h."""
        raw = self.site_setting("sweep", "retry_after")
        try:
            value = float(raw) if raw is not None else SWEEP_BACKOFF_FIRST
        except ValueError:
            value = SWEEP_BACKOFF_FIRST
        return min(SWEEP_BACKOFF_MAX, max(1.0, value)) if value == value else \
            SWEEP_BACKOFF_FIRST

    def sweep_failures(self) -> dict[str, dict[str, Any]]:
        """Items the sweep could not do: id -> what, reason, attempts, next attempt."""
        with self.store.read() as txn:
            return dict((txn.table("meta").get(SWEEP_FAILURES) or {}).get("items", {}))

    def alerts(self) -> list[str]:
        """Everything ``EmergencyOps.alerts`` shows, plus releases not yet rotated
        and items the sweep keeps failing on."""
        out = super().alerts()
        out += self.notify_alerts()
        for co in self.checkouts(open_only=True):
            if co.released and co.state == S.ROTATING:
                out.append(f"RELEASED, NOT ROTATED: {co.cred_name} ({co.id}) was approved, "
                           f"then {co.end_reason}; {co.requester}'s next command or "
                           f"'glasskey checkin {co.id}' rotates it")
        for item, fail in sorted(self.sweep_failures().items()):
            hint = (f"; an admin can record it by hand: 'glasskey onboard revoke {item} "
                    "--manual --note TEXT'") if fail.get("what") == "onboarding-expiry" else ""
            out.append(f"SWEEP FAILING: {item} ({fail.get('what')}): {fail.get('reason')}; "
                       f"{fail.get('attempts')} attempt(s), next after "
                       f"{iso(float(fail.get('next_at', 0)))}{hint}")
        return out

    def _expire_lease(self, session: Session, cred_id: str, req_id: str) -> RotationResult:
        with self.store.transaction() as txn:
            req = self._request_doc(txn, req_id)
            if req["state"] == S.CHECKED_OUT:
                req["ended_at"] = self.now()
                req["end_reason"] = "lease-expired"
                self._save(txn, req)
        return self.rotate(session, cred_id, req_id, reason="lease-expired")


#: First wait before a failed sweep item is tried again; doubles to the maximum.
SWEEP_BACKOFF_FIRST = 60.0
SWEEP_BACKOFF_MAX = 3600.0


def sweep_reason(exc: BaseException) -> str:
    """A short, fixed reason for a failed item: never a value, never connector output."""
    if isinstance(exc, ConnectorError):
        return "the target refused the change or could not be reached"
    if isinstance(exc, ClockSkewError):
        return "this client's clock is behind the vault's"
    if isinstance(exc, StorageError):
        return "the vault could not be written (busy or full)"
    if isinstance(exc, IntegrityError):
        return "an integrity check failed"
    if isinstance(exc, GlasskeyError):
        return "refused by policy"
    return f"internal error ({type(exc).__name__})"
