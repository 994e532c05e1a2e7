"""Folding audit entries into report items: one pass, everything keyed by id.

``_Collector.add`` takes parsed entries in log order and keeps, per request,
onboarding secret, kit and credential, what the log says happened; follow-ups
(reviews, rotations) find their item by id. Unsigned entries are listed and
never applied (only the unsigned system events are counted as such).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from glasskey.core.audit import SYSTEM_EVENTS
from glasskey.core.clock import iso
from glasskey.core.report import records
from glasskey.core.report.values import _f, _i, _s, _ts


def attestation_of(subject: str, actor: str, at: float, d: dict[str, Any]
                   ) -> records.AttestationRecord:
    """A ``report.attested`` entry's record (``entries`` is the head seq of older entries)."""
    seq = d.get("head_seq") if d.get("head_seq") is not None else d.get("entries")
    return records.AttestationRecord(subject, actor, at, _s(d.get("since")), _s(d.get("until")),
                             _s(d.get("sha256")), _s(d.get("format")), _i(seq),
                             _s(d.get("head_hash")))


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
        self.checkouts: dict[str, records.CheckoutRecord] = {}
        self.onboarding: dict[str, records.OnboardingRecord] = {}
        self.kits: dict[str, records.KitRecord] = {}
        self.emergency: dict[str, records.EmergencyUse] = {}
        self.rot: dict[str, list[_Rot]] = defaultdict(list)
        self.rot_by_request: dict[str, list[_Rot]] = defaultdict(list)
        self.intent_request: dict[tuple[str, int], str] = {}
        self.reviews: dict[str, list[records.ReviewRecord]] = defaultdict(list)
        self.review_holder: dict[tuple[str, int], str] = {}
        self.auth: list[records.AuthEvent] = []
        self.operators: list[records.OperatorChange] = []
        self.attestations: list[records.AttestationRecord] = []
        self.refusals: dict[str, list[records.RefusalRecord]] = defaultdict(list)
        self.event_times: dict[str, list[float]] = defaultdict(list)
        self.kit_refusals: list[records.KitRefusal] = []
        self.notify_failures: list[records.NotifyFailure] = []
        self.unsigned: list[records.UnsignedEntry] = []
        self.drills: list[records.DrillRecord] = []
        #: credential -> (status the log implies, since when: the entry's RFC 3339 time)
        self.cred_status: dict[str, tuple[str, str]] = {}

    def _co(self, req: str, details: dict[str, Any]) -> records.CheckoutRecord:
        rec = self.checkouts.get(req)
        if rec is None:
            rec = records.CheckoutRecord(req, _s(details.get("credential")), "")
            self.checkouts[req] = rec
        if not rec.credential and details.get("credential"):
            rec.credential = _s(details.get("credential"))
        return rec

    def _ob(self, oid: str) -> records.OnboardingRecord:
        rec = self.onboarding.get(oid)
        if rec is None:
            rec = self.onboarding[oid] = records.OnboardingRecord(oid)
        return rec

    def _kit(self, kid: str) -> records.KitRecord:
        rec = self.kits.get(kid)
        if rec is None:
            rec = self.kits[kid] = records.KitRecord(kid)
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
            seq = _i(entry.get("seq")) or 0
            self.unsigned.append(records.UnsignedEntry(at, seq, event, subject))
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
            self.reviews[subject].append(records.ReviewRecord(
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
                    self.operators.append(records.OperatorChange(
                        at, _s(rec.get("name")), "enrolled", actor,
                        {"roles": rec.get("roles"), "founder": True}))
        elif group == "operator":
            keep = {k: v for k, v in d.items()
                    if k in ("roles", "reason", "founder", "how", "status", "by")}
            self.operators.append(records.OperatorChange(at, subject, action, actor, keep))
        elif event == "notify.failed":  # core/notify.py: a delivery that did not go out
            self.notify_failures.append(records.NotifyFailure(
                at, actor, _s(d.get("request")) or subject,
                f"{_s(d.get('event'))} via {_s(d.get('channel'))}: {_s(d.get('reason'))}"))
        elif group == "drill":
            self.drills.append(records.DrillRecord(at, actor, _s(d.get("kind")) or "share", subject,
                                           action == "passed", _s(d.get("failed")),
                                           _s(d.get("why"))))
        elif event == "report.attested":
            self.attestations.append(attestation_of(subject, actor, at, d))

    def _auth(self, action: str, at: float, subject: str, d: dict[str, Any], *,
              signed: bool) -> None:
        if action == "failed":
            self.auth.append(records.AuthEvent(at, subject, "failed", _s(d.get("why")),
                                       _i(d.get("failures")), _i(d.get("locked_for")) or 0,
                                       signed=signed))
        elif action == "locked":
            self.auth.append(records.AuthEvent(at, subject, "locked",
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
            rec.approvals.append(records.ApprovalRecord(actor, at))
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
            rec.refusals.append(records.RefusalRecord(actor, _s(d.get("why")), at))
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
                rec.approvals = [records.ApprovalRecord(_s(a), at) for a in approvers]
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

        def linked(version: int | None) -> str:
            """The request this rotation serves: named, else the one its intent named."""
            if request or version is None:
                return request
            return self.intent_request.get((cred, version), "")

        if action == "intent":
            version = _i(d.get("to_version"))
            if request and version is not None:
                self.intent_request[(cred, version)] = request
            r = _Rot(at, "intent", actor, version, request, reason=_s(d.get("reason")))
        elif action == "commit":
            version = _i(d.get("version"))
            r = _Rot(at, "commit", actor, version, linked(version),
                     applied_by=_s(d.get("applied_by")))
        elif action == "failed":
            version = _i(d.get("to_version"))
            r = _Rot(at, "failed", actor, version, linked(version), error=_s(d.get("error")))
        elif action == "rollback":
            r = _Rot(at, "rollback", actor, _i(d.get("dropped_version")), request)
        elif action == "apply-pending":
            version = _i(d.get("to_version"))
            r = _Rot(at, "apply-pending", actor, version, linked(version))
        else:
            return  # apply-revealed and future details: not an outcome
        self.rot[cred].append(r)
        if r.request:
            self.rot_by_request[r.request].append(r)

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
            self.emergency[subject] = records.EmergencyUse(
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
            self.kit_refusals.append(records.KitRefusal(at, actor, subject, _s(d.get("why")),
                                                _s(d.get("fingerprint"))))
        elif action == "notify-failed":
            self.notify_failures.append(records.NotifyFailure(at, actor, subject, _s(d.get("why"))))

