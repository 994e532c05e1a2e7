"""The dual-control checkout: request -> countersign -> reveal -> check-in.

Dual control is enforced by keys: an approval is the approver's own Shamir
share re-sealed to the requester with HPKE, its ``info`` binding the request
id, credential, version, requester, approver and expiry. Editing vault.json to
say "approved" gives the requester nothing to combine; editing any bound field
makes the grant fail to open.

Every refusal that matters (self-approval, second reveal, forged or expired
grants) is audited: the refusal's record commits, then the error is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glasskey.core.canonical import b64d
from glasskey.core.context import Service, VaultContext
from glasskey.core.envelope import (
    decrypt_secret,
    grant_info,
    open_grant,
    open_own_share,
    recover_dek,
    seal_grant,
)
from glasskey.core.errors import DecryptError, IntegrityError, PolicyError, UsageError
from glasskey.core.lookups import (
    checked,
    checked_config,
    operator_doc,
    request_doc,
    require_active,
)
from glasskey.core.models import (
    Checkout,
    CheckoutKind,
    CheckoutState,
    CredentialStatus,
    Policy,
    format_duration,
)
from glasskey.core.requests import DEFAULT_OPEN_REQUESTS, Requests, event_for
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.storage.interface import Refused, Transaction
from glasskey.core.storage.retry import retried
from glasskey.core.text import cap_all

S = CheckoutState

#: Rotates (or, for an onboarding secret, revokes) a released request:
#: (session, request id, quiet): ``OnboardingService.rotate_release`` (core/onboarding.py).
ReleaseHandler = Callable[[Session, str, bool], None]


class CheckoutService(Service):
    """Request, approve, deny, cancel and reveal: the dual-control checkout."""

    def __init__(self, ctx: VaultContext, requests: Requests,
                 release: ReleaseHandler) -> None:
        super().__init__(ctx)
        self.requests = requests
        self._release = release

    def _rotate_release(self, session: Session, req_id: str, quiet: bool = True) -> None:
        self._release(session, req_id, quiet)

    def clear_requests(self, session: Session, requester: str, reason: str
                       ) -> tuple[list[str], list[str]]:
        """An admin closes every open, unrevealed request and onboarding secret of
        ``requester`` in one step (a flood). Approved ones are releases and are
        rotated and reviewed; revealed checkouts are left to check-in.

        Returns (closed ids, skipped ids).
        """
        reason = (reason or "").strip()
        if not reason:
            raise UsageError("say why (--reason)")
        closed: list[str] = []
        skipped: list[str] = []
        released: list[str] = []
        with self.store.transaction() as txn:
            require_active(txn, session, "admin")
            operator_doc(txn, requester)
            for entry in list(txn.table("active").values()):
                if entry.get("requester") != requester:
                    continue
                req = txn.table("requests").get(entry["request"])
                if req is None:
                    continue
                if req["state"] not in (S.REQUESTED, S.APPROVED):
                    skipped.append(req["id"])
                    continue
                if self.requests.end(txn, session, req, "cancelled", {
                        "credential": req["cred_name"], "by": session.name,
                        "cleared": True, "reason": reason}):
                    released.append(req["id"])
                closed.append(req["id"])
            txn.record(session.signer, "requests.cleared", requester, {
                "reason": reason, "closed": len(closed), "released": len(released),
                "skipped": len(skipped),
            })
        for req_id in released:
            self._rotate_release(session, req_id)
        return closed, skipped

    # -- request ----------------------------------------------------------------------------
    @retried  # one write transaction: re-run after a WriteConflict
    def request(self, session: Session, cred_name: str, reason: str, ticket: str,
                duration: int) -> Checkout:
        reason, ticket = (reason or "").strip(), (ticket or "").strip()
        cap_all(reason=reason, ticket=ticket)  # before anything is written (issue 11)
        if not reason:
            raise UsageError("a reason is required (--reason)")
        if not ticket:
            raise UsageError("a ticket reference is required (--ticket)")
        with self.store.transaction() as txn:
            require_active(txn, session, "requester")
            cred = checked_config(txn, self.find_credential(txn, cred_name))
            policy = Policy.from_doc(cred["policy"])
            if duration > policy.max_duration:
                raise UsageError(
                    f"duration {format_duration(duration)} exceeds {cred_name}'s maximum of "
                    f"{format_duration(policy.max_duration)}")
            if cred["status"] == CredentialStatus.REVOKED or cred["kind"] == "onboarding":
                raise PolicyError(
                    f"{cred_name} is a one-time onboarding secret; it cannot be checked out")
            if cred["status"] == CredentialStatus.ROTATION_FAILED:
                raise PolicyError(
                    f"{cred_name} is in ROTATION-FAILED and cannot be checked out until an "
                    "operator reconciles it")
            open_req = txn.table("active").get(cred["id"])
            if open_req is None:
                self.requests.check_cap(txn, session, CheckoutKind.CHECKOUT, "open_requests",
                                        DEFAULT_OPEN_REQUESTS, "requests")
            if open_req is not None:
                raise PolicyError(
                    f"{cred_name} already has an open checkout {open_req['request']} "
                    f"({open_req['state']}, {open_req['requester']}); one holder at a time")
            approvers = [
                m for m in txn.roster.members.values()
                if m.active and m.has("approver") and m.name != session.name
            ]
            if len(approvers) < policy.k - 1:
                raise PolicyError(
                    f"{cred_name} needs {policy.k - 1} approver(s) other than you; "
                    f"only {len(approvers)} are active")
            req: dict[str, Any] = {
                "id": self.ctx.new_id("r"), "cred_id": cred["id"], "cred_name": cred_name,
                "requester": session.name, "requester_id": session.operator_id,
                "reason": reason, "ticket": ticket, "duration": int(duration),
                "created": txn.entry_time(), "state": S.REQUESTED, "needed": policy.k - 1,
                "policy": policy.to_doc(), "approvals": [], "version": int(cred["version"]),
            }
            self.requests.save(txn, req)
            txn.record(session.signer, "checkout.requested", req["id"], {
                "credential": cred_name, "reason": reason, "ticket": ticket,
                "duration": int(duration), "version": req["version"],
            })
            return Checkout.from_doc(req)

    # -- approve / deny / cancel --------------------------------------------------------------
    @retried  # one write transaction: re-run after a WriteConflict
    def approve(self, session: Session, req_id: str) -> Checkout:
        with self.store.transaction() as txn:
            require_active(txn, session, "approver")
            req = request_doc(txn, req_id)
            if req["requester"] == session.name:
                raise self.requests.refuse(txn, session, req_id, "self-approval",
                                   "you cannot approve your own request")
            if any(a["approver"] == session.name for a in req["approvals"]):
                raise self.requests.refuse(txn, session, req_id, "duplicate-approval",
                                   "you have already approved this request (an approver "
                                   "counts once)")
            if self.requests.expire_if_due(txn, req, session):
                raise Refused(PolicyError(f"request {req_id} has expired"))
            if req["state"] != S.REQUESTED:
                raise self.requests.refuse(txn, session, req_id, f"state-{req['state']}",
                                   f"request {req_id} is {req['state']}, not awaiting approval")
            sealed = txn.table("sealed").get(req["cred_id"])
            if sealed is None or int(sealed["current"]["version"]) != int(req["version"]):
                raise self.requests.refuse(txn, session, req_id, "version-changed",
                                   "the credential changed since the request; request again")
            requester = txn.roster.get(req["requester"])
            if requester is None or not requester.active \
                    or requester.id != req["requester_id"]:
                raise self.requests.refuse(txn, session, req_id, "requester-inactive",
                                   f"requester {req['requester']} is no longer active")
            checked(txn, req["cred_id"], sealed["current"], req["cred_name"])
            share = open_own_share(self.vault_id, req["cred_id"], sealed["current"],
                                   session.operator_id, session.hpke_priv)
            policy = self.requests.verified_policy(txn, req)
            at = float(int(txn.entry_time()))  # the approval entry's own time
            expires = at + policy.claim_window
            info = grant_info(self.vault_id, req_id, req["cred_id"], int(req["version"]),
                              req["requester_id"], session.operator_id, expires)
            grant = seal_grant(share, b64d(requester.hpke_pub), info)
            req["approvals"].append({
                "approver": session.name, "approver_id": session.operator_id,
                "at": at, "expires": expires, "grant": grant,
            })
            if len(req["approvals"]) >= policy.k - 1:
                req["state"] = S.APPROVED
            self.requests.save(txn, req)
            txn.record(session.signer, event_for(req, "approved"), req_id, {
                "credential": req["cred_name"], "requester": req["requester"],
                "expires": expires, "approvals": len(req["approvals"]),
                "needed": req["needed"],
            })
            return Checkout.from_doc(req)

    def deny(self, session: Session, req_id: str, reason: str) -> Checkout:
        reason = (reason or "").strip()
        cap_all(deny_reason=reason)
        if not reason:
            raise UsageError("a reason is required to deny (--reason)")
        with self.store.transaction() as txn:
            require_active(txn, session, "approver")
            req = request_doc(txn, req_id)
            if req["requester"] == session.name:
                raise UsageError("to withdraw your own request use 'cancel'")
            if req["state"] not in (S.REQUESTED, S.APPROVED):
                raise PolicyError(f"request {req_id} is {req['state']}; nothing to deny")
            req["denied_by"] = session.name
            req["deny_reason"] = reason
            released = self.requests.end(txn, session, req, "denied",
                                 {"credential": req["cred_name"], "reason": reason})
        if released:
            self._rotate_release(session, req_id)
            return self.requests.checkout(req_id)
        return Checkout.from_doc(req)

    def cancel(self, session: Session, req_id: str) -> Checkout:
        with self.store.transaction() as txn:
            require_active(txn, session)
            req = request_doc(txn, req_id)
            if req["requester"] != session.name and not session.has("admin"):
                raise PolicyError("only the requester or an admin can cancel a request")
            if req["state"] not in (S.REQUESTED, S.APPROVED):
                raise PolicyError(
                    f"request {req_id} is {req['state']}; a revealed checkout ends with "
                    "'checkin'")
            released = self.requests.end(txn, session, req, "cancelled",
                                 {"credential": req["cred_name"], "by": session.name})
        if released:
            self._rotate_release(session, req_id)
            return self.requests.checkout(req_id)
        return Checkout.from_doc(req)

    # -- reveal -----------------------------------------------------------------------------
    def reveal(self, session: Session, req_id: str) -> SecretValue:
        """Decrypt once. The value is returned only after its audit record is durable.

        A reveal that finds the approval expired releases it (the requester may
        have opened the grant offline): the refusal stands, and the credential
        is rotated and the request queued for review first.
        """
        try:
            return self._reveal(session, req_id)
        except PolicyError:
            with self.store.read() as txn:
                req = txn.table("requests").get(req_id)
            if req is not None and req.get("released") and req["state"] == S.ROTATING:
                self._rotate_release(session, req_id)
            raise

    @retried  # one write transaction: re-run after a WriteConflict
    def _reveal(self, session: Session, req_id: str) -> SecretValue:
        with self.store.transaction() as txn:
            require_active(txn, session, "requester")
            req = request_doc(txn, req_id)
            if req["requester"] != session.name:
                raise self.requests.refuse(txn, session, req_id, "not-requester",
                                   "only the requester can reveal a checkout")
            if req.get("released") and not req.get("revealed_at"):
                raise self.requests.refuse(txn, session, req_id, "released",
                                   f"request {req_id} was {req.get('end_reason', 'closed')} "
                                   "after its approval; its credential is rotated; request "
                                   "again")
            if req["state"] in (S.CHECKED_OUT, S.ROTATING, S.ROTATION_FAILED) or (
                    req["state"] == S.CLOSED and req.get("revealed_at")):
                raise self.requests.refuse(txn, session, req_id, "second-reveal",
                                   "this checkout was already revealed; a second reveal "
                                   "needs a new request and approval")
            if self.requests.expire_if_due(txn, req, session):
                raise Refused(PolicyError(
                    f"the approval of {req_id} expired before it was claimed; request again"))
            if req["state"] != S.APPROVED:
                raise self.requests.refuse(txn, session, req_id, f"state-{req['state']}",
                                   f"request {req_id} is {req['state']}, not approved")
            self._check_time_bounds(txn, session, req)
            policy = self.requests.verified_policy(txn, req)
            secret = self.combine(txn, session, req, policy)
            now = txn.entry_time()
            req["state"] = S.CHECKED_OUT
            req["revealed_at"] = now
            req["lease_expires"] = now + min(int(req["duration"]), policy.max_duration)
            self.requests.save(txn, req)
            txn.record(session.signer, event_for(req, "revealed"), req_id, {
                "credential": req["cred_name"], "version": req["version"],
                "lease_expires": req["lease_expires"],
                "approvers": [a["approver"] for a in req["approvals"]],
            })
        # Reached only after the commit (audit first, then state) succeeded.
        return secret

    def _check_time_bounds(self, txn: Transaction, session: Session,
                           req: dict[str, Any]) -> None:
        """Refuse a claim window or lease longer than the policy allows.

        An approval's expiry is its entry time plus the policy's claim window,
        and a lease ends the policy's maximum after the reveal at the latest; a
        longer one means the state was edited or an approver's clock was wrong
        (SECURITY.md, "Clock rules").
        """
        policy = Policy.from_doc(req.get("policy"))
        cred_policy = self.requests.verified_policy(txn, req)
        window = min(policy.claim_window, cred_policy.claim_window)
        for a in req["approvals"]:
            if float(a["expires"]) - float(a["at"]) > window + 1:
                raise self.requests.refuse(txn, session, req["id"], "claim-window-too-long",
                                   f"the approval by {a['approver']} claims a window longer "
                                   f"than the policy's {format_duration(window)}: it was "
                                   "forged or altered, or the approver's clock was wrong",
                                   IntegrityError)
        if int(req["duration"]) > cred_policy.max_duration:
            raise self.requests.refuse(txn, session, req["id"], "lease-too-long",
                               f"the requested lease exceeds {req['cred_name']}'s maximum of "
                               f"{format_duration(cred_policy.max_duration)}: the state was "
                               "altered", IntegrityError)

    def combine(self, txn: Transaction, session: Session, req: dict[str, Any],
                 policy: Policy) -> SecretValue:
        """Own share + every grant -> DEK -> value; any mismatch is an audited refusal."""
        req_id = req["id"]
        approvals = req["approvals"]
        names = [a["approver"] for a in approvals]
        if len(set(names)) != len(names) or session.name in names \
                or len(approvals) < policy.k - 1:
            raise self.requests.refuse(txn, session, req_id, "bad-approvals",
                               "the approvals on this request are not valid", IntegrityError)
        for a in approvals:
            approver = txn.roster.get(a["approver"])
            if approver is None or not approver.active \
                    or not approver.has("approver") or approver.id != a["approver_id"]:
                raise self.requests.refuse(txn, session, req_id, "approver-inactive",
                                   f"approver {a['approver']} is no longer an active approver")
            if a.get("grant") is None:
                raise self.requests.refuse(txn, session, req_id, "grant-consumed",
                                   "this approval has already been used")
        sealed = txn.table("sealed").get(req["cred_id"])
        if sealed is None or int(sealed["current"]["version"]) != int(req["version"]):
            raise self.requests.refuse(txn, session, req_id, "version-changed",
                               "the credential changed since the approval; request again")
        vdoc = checked(txn, req["cred_id"], sealed["current"], req["cred_name"])
        try:
            shares = [open_own_share(self.vault_id, req["cred_id"], vdoc, session.operator_id,
                                     session.hpke_priv)]
            for a in approvals:
                info = grant_info(self.vault_id, req_id, req["cred_id"], int(req["version"]),
                                  session.operator_id, a["approver_id"], float(a["expires"]))
                shares.append(open_grant(a["grant"], session.hpke_priv, info))
            dek = recover_dek(self.vault_id, req["cred_id"], vdoc, shares)
            return decrypt_secret(self.vault_id, req["cred_id"], vdoc, dek)
        except (DecryptError, IntegrityError):
            raise self.requests.refuse(txn, session, req_id, "forged-grant",
                               "the approval does not open: it was forged, altered or moved "
                               "from another request", IntegrityError) from None
