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

from typing import Any

from core.base import VaultBase
from core.canonical import b64d
from core.envelope import (
    decrypt_secret,
    grant_info,
    open_grant,
    open_own_share,
    recover_dek,
    seal_grant,
)
from core.errors import DecryptError, IntegrityError, PolicyError, UsageError
from core.models import OPEN_STATES, Checkout, CheckoutState, Policy, format_duration
from core.secret import SecretValue
from core.session import Session
from core.store import Refused, Transaction
from core.text import cap_all

S = CheckoutState


def _event(req: dict[str, Any], what: str) -> str:
    """checkout.<what>, or onboarding.<what> for a one-time onboarding secret."""
    return f"{'onboarding' if req.get('kind') == 'onboarding' else 'checkout'}.{what}"


class CheckoutOps(VaultBase):
    # -- helpers --------------------------------------------------------------------------
    def _set_active(self, txn: Transaction, req: dict[str, Any]) -> None:
        if req["state"] in OPEN_STATES:
            txn.table("active").put(req["cred_id"], {
                "request": req["id"], "state": req["state"], "requester": req["requester"],
                "lease_expires": req.get("lease_expires"),
            })
        else:
            current = txn.table("active").get(req["cred_id"])
            if current is not None and current["request"] == req["id"]:
                txn.table("active").delete(req["cred_id"])

    def _save(self, txn: Transaction, req: dict[str, Any]) -> None:
        txn.sharded("requests").put(req["id"], req)
        self._set_active(txn, req)

    def _close(self, txn: Transaction, req: dict[str, Any], reason: str) -> None:
        req["state"] = S.CLOSED
        req["closed_reason"] = reason
        req["ended_at"] = self.now()
        for approval in req.get("approvals", []):
            approval["grant"] = None  # nothing left to redeem
        self._save(txn, req)

    def _refuse(self, txn: Transaction, session: Session, req_id: str, why: str,
                message: str, error: type[PolicyError] | type[IntegrityError] = PolicyError,
                ) -> Refused:
        txn.record(session.signer, "checkout.refused", req_id, {"why": why})
        return Refused(error(message))

    def _expire_if_due(self, txn: Transaction, req: dict[str, Any], signer_session: Session
                       ) -> bool:
        """Close a request whose approval window or request TTL has passed."""
        now = self.now()
        policy = Policy.from_doc(req.get("policy"))
        if req["state"] == S.REQUESTED and now >= req["created"] + policy.request_ttl:
            self._close(txn, req, "expired")
            txn.record(signer_session.signer, "checkout.expired", req["id"],
                       {"credential": req["cred_name"], "stage": "request"})
            return True
        if req["state"] == S.APPROVED and req["approvals"] and now >= min(
                a["expires"] for a in req["approvals"]):
            self._close(txn, req, "expired")
            txn.record(signer_session.signer, "checkout.expired", req["id"],
                       {"credential": req["cred_name"], "stage": "approval"})
            return True
        return False

    # -- request ----------------------------------------------------------------------------
    def request(self, session: Session, cred_name: str, reason: str, ticket: str,
                duration: int) -> Checkout:
        reason, ticket = (reason or "").strip(), (ticket or "").strip()
        cap_all(reason=reason, ticket=ticket)  # before anything is written (issue 11)
        if not reason:
            raise UsageError("a reason is required (--reason)")
        if not ticket:
            raise UsageError("a ticket reference is required (--ticket)")
        with self.store.transaction() as txn:
            self._require_active(txn, session, "requester")
            cred = self._credential_doc(txn, cred_name)
            policy = Policy.from_doc(cred["policy"])
            if duration > policy.max_duration:
                raise UsageError(
                    f"duration {format_duration(duration)} exceeds {cred_name}'s maximum of "
                    f"{format_duration(policy.max_duration)}")
            if cred["status"] == "revoked" or cred["kind"] == "onboarding":
                raise PolicyError(
                    f"{cred_name} is a one-time onboarding secret; it cannot be checked out")
            if cred["status"] == "rotation-failed":
                raise PolicyError(
                    f"{cred_name} is in ROTATION-FAILED and cannot be checked out until an "
                    "operator reconciles it")
            open_req = txn.table("active").get(cred["id"])
            if open_req is not None:
                raise PolicyError(
                    f"{cred_name} already has an open checkout {open_req['request']} "
                    f"({open_req['state']}, {open_req['requester']}); one holder at a time")
            approvers = [
                d for d in txn.table("operators").values()
                if d["status"] == "active" and "approver" in d["roles"]
                and d["name"] != session.name
            ]
            if len(approvers) < policy.k - 1:
                raise PolicyError(
                    f"{cred_name} needs {policy.k - 1} approver(s) other than you; "
                    f"only {len(approvers)} are active")
            req: dict[str, Any] = {
                "id": self.new_id("r"), "cred_id": cred["id"], "cred_name": cred_name,
                "requester": session.name, "requester_id": session.operator_id,
                "reason": reason, "ticket": ticket, "duration": int(duration),
                "created": self.now(), "state": S.REQUESTED, "needed": policy.k - 1,
                "policy": policy.to_doc(), "approvals": [], "version": int(cred["version"]),
            }
            self._save(txn, req)
            txn.record(session.signer, "checkout.requested", req["id"], {
                "credential": cred_name, "reason": reason, "ticket": ticket,
                "duration": int(duration), "version": req["version"],
            })
            return Checkout.from_doc(req)

    # -- approve / deny / cancel --------------------------------------------------------------
    def approve(self, session: Session, req_id: str) -> Checkout:
        with self.store.transaction() as txn:
            self._require_active(txn, session, "approver")
            req = self._request_doc(txn, req_id)
            if req["requester"] == session.name:
                raise self._refuse(txn, session, req_id, "self-approval",
                                   "you cannot approve your own request")
            if any(a["approver"] == session.name for a in req["approvals"]):
                raise self._refuse(txn, session, req_id, "duplicate-approval",
                                   "you have already approved this request (an approver "
                                   "counts once)")
            if self._expire_if_due(txn, req, session):
                raise Refused(PolicyError(f"request {req_id} has expired"))
            if req["state"] != S.REQUESTED:
                raise self._refuse(txn, session, req_id, f"state-{req['state']}",
                                   f"request {req_id} is {req['state']}, not awaiting approval")
            sealed = txn.sharded("sealed").get(req["cred_id"])
            if sealed is None or int(sealed["current"]["version"]) != int(req["version"]):
                raise self._refuse(txn, session, req_id, "version-changed",
                                   "the credential changed since the request; request again")
            requester = self._operator_doc(txn, req["requester"])
            if requester["status"] != "active" or requester["id"] != req["requester_id"]:
                raise self._refuse(txn, session, req_id, "requester-inactive",
                                   f"requester {req['requester']} is no longer active")
            share = open_own_share(self.vault_id, req["cred_id"], sealed["current"],
                                   session.operator_id, session.hpke_priv)
            policy = Policy.from_doc(req.get("policy"))
            expires = float(int(self.now() + policy.claim_window))
            info = grant_info(self.vault_id, req_id, req["cred_id"], int(req["version"]),
                              req["requester_id"], session.operator_id, expires)
            grant = seal_grant(share, b64d(requester["hpke_pub"]), info)
            req["approvals"].append({
                "approver": session.name, "approver_id": session.operator_id,
                "at": self.now(), "expires": expires, "grant": grant,
            })
            if len(req["approvals"]) >= int(req["needed"]):
                req["state"] = S.APPROVED
            self._save(txn, req)
            txn.record(session.signer, _event(req, "approved"), req_id, {
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
            self._require_active(txn, session, "approver")
            req = self._request_doc(txn, req_id)
            if req["requester"] == session.name:
                raise UsageError("to withdraw your own request use 'cancel'")
            if req["state"] not in (S.REQUESTED, S.APPROVED):
                raise PolicyError(f"request {req_id} is {req['state']}; nothing to deny")
            req["denied_by"] = session.name
            req["deny_reason"] = reason
            self._close(txn, req, "denied")
            txn.record(session.signer, _event(req, "denied"), req_id,
                       {"credential": req["cred_name"], "reason": reason})
            return Checkout.from_doc(req)

    def cancel(self, session: Session, req_id: str) -> Checkout:
        with self.store.transaction() as txn:
            self._require_active(txn, session)
            req = self._request_doc(txn, req_id)
            if req["requester"] != session.name and not session.has("admin"):
                raise PolicyError("only the requester or an admin can cancel a request")
            if req["state"] not in (S.REQUESTED, S.APPROVED):
                raise PolicyError(
                    f"request {req_id} is {req['state']}; a revealed checkout ends with "
                    "'checkin'")
            self._close(txn, req, "cancelled")
            txn.record(session.signer, _event(req, "cancelled"), req_id,
                       {"credential": req["cred_name"]})
            return Checkout.from_doc(req)

    # -- reveal -----------------------------------------------------------------------------
    def reveal(self, session: Session, req_id: str) -> SecretValue:
        """Decrypt once. The value is returned only after its audit record is durable."""
        with self.store.transaction() as txn:
            self._require_active(txn, session, "requester")
            req = self._request_doc(txn, req_id)
            if req["requester"] != session.name:
                raise self._refuse(txn, session, req_id, "not-requester",
                                   "only the requester can reveal a checkout")
            if req["state"] in (S.CHECKED_OUT, S.ROTATING, S.ROTATION_FAILED) or (
                    req["state"] == S.CLOSED and req.get("revealed_at")):
                raise self._refuse(txn, session, req_id, "second-reveal",
                                   "this checkout was already revealed; a second reveal "
                                   "needs a new request and approval")
            if self._expire_if_due(txn, req, session):
                raise Refused(PolicyError(
                    f"the approval of {req_id} expired before it was claimed; request again"))
            if req["state"] != S.APPROVED:
                raise self._refuse(txn, session, req_id, f"state-{req['state']}",
                                   f"request {req_id} is {req['state']}, not approved")
            secret = self._combine(txn, session, req)
            now = self.now()
            req["state"] = S.CHECKED_OUT
            req["revealed_at"] = now
            req["lease_expires"] = now + int(req["duration"])
            self._save(txn, req)
            txn.record(session.signer, _event(req, "revealed"), req_id, {
                "credential": req["cred_name"], "version": req["version"],
                "lease_expires": req["lease_expires"],
                "approvers": [a["approver"] for a in req["approvals"]],
            })
        # Reached only after the commit (audit first, then state) succeeded.
        return secret

    def _combine(self, txn: Transaction, session: Session, req: dict[str, Any]) -> SecretValue:
        """Own share + every grant -> DEK -> value; any mismatch is an audited refusal."""
        req_id = req["id"]
        approvals = req["approvals"]
        names = [a["approver"] for a in approvals]
        if len(set(names)) != len(names) or session.name in names \
                or len(approvals) < int(req["needed"]):
            raise self._refuse(txn, session, req_id, "bad-approvals",
                               "the approvals on this request are not valid", IntegrityError)
        for a in approvals:
            approver = txn.table("operators").get(a["approver"])
            if approver is None or approver["status"] != "active" \
                    or "approver" not in approver["roles"] or approver["id"] != a["approver_id"]:
                raise self._refuse(txn, session, req_id, "approver-inactive",
                                   f"approver {a['approver']} is no longer an active approver")
            if a.get("grant") is None:
                raise self._refuse(txn, session, req_id, "grant-consumed",
                                   "this approval has already been used")
        sealed = txn.sharded("sealed").get(req["cred_id"])
        if sealed is None or int(sealed["current"]["version"]) != int(req["version"]):
            raise self._refuse(txn, session, req_id, "version-changed",
                               "the credential changed since the approval; request again")
        vdoc = sealed["current"]
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
            raise self._refuse(txn, session, req_id, "forged-grant",
                               "the approval does not open: it was forged, altered or moved "
                               "from another request", IntegrityError) from None
