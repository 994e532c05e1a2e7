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

from glasskey.core.base import VaultBase
from glasskey.core.canonical import b64d
from glasskey.core.envelope import (
    decrypt_secret,
    grant_info,
    open_grant,
    open_own_share,
    recover_dek,
    seal_grant,
)
from glasskey.core.errors import DecryptError, IntegrityError, PolicyError, UsageError
from glasskey.core.models import OPEN_STATES, Checkout, CheckoutState, Policy, format_duration
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.store import Refused, Transaction
from glasskey.core.text import cap_all

S = CheckoutState

#: Default caps per requester (``[limits]`` in glasskey.toml may change them,
#: within 1..LIMIT_CEILING): one operator must not be able to take every
#: credential, or fill the vault with onboarding secrets, in a few seconds.
DEFAULT_OPEN_REQUESTS = 5
DEFAULT_OPEN_ONBOARDING = 20
LIMIT_CEILING = 1000


def _event(req: dict[str, Any], what: str) -> str:
    """checkout.<what>, or onboarding.<what> for a one-time onboarding secret."""
    return f"{'onboarding' if req.get('kind') == 'onboarding' else 'checkout'}.{what}"


class CheckoutOps(VaultBase):
    # -- flood caps ----------------------------------------------------------------------------
    def site_setting(self, section: str, key: str) -> str | None:
        """A value from glasskey.toml (Vault reads the file; nothing here)."""
        return None

    def _limit(self, key: str, default: int) -> int:
        raw = self.site_setting("limits", key)
        try:
            value = int(raw) if raw is not None else default
        except ValueError:
            value = default
        return min(LIMIT_CEILING, max(1, value))

    def _check_cap(self, txn: Transaction, session: Session, prefix: str, key: str,
                   default: int, what: str) -> None:
        """Refuse (audited) a requester's request beyond their cap of open ones."""
        cap = self._limit(key, default)
        mine = sum(1 for e in txn.table("active").values()
                   if e.get("requester") == session.name and str(e["request"]).startswith(
                       prefix))
        if mine >= cap:
            txn.record(session.signer, "request.capped", session.name,
                       {"what": what, "open": mine, "cap": cap})
            raise Refused(PolicyError(
                f"{session.name} already has {mine} open {what} (the cap is {cap}); finish "
                "or cancel one first, or ask an admin ('glasskey request clear')"))

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
            self._require_active(txn, session, "admin")
            self._operator_doc(txn, requester)
            for entry in list(txn.table("active").values()):
                if entry.get("requester") != requester:
                    continue
                req = txn.table("requests").get(entry["request"])
                if req is None:
                    continue
                if req["state"] not in (S.REQUESTED, S.APPROVED):
                    skipped.append(req["id"])
                    continue
                if self._end(txn, session, req, "cancelled", {
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
        txn.table("requests").put(req["id"], req)
        self._set_active(txn, req)

    def _close(self, txn: Transaction, req: dict[str, Any], reason: str) -> None:
        req["state"] = S.CLOSED
        req["closed_reason"] = reason
        req["ended_at"] = self.now()
        for approval in req.get("approvals", []):
            approval["grant"] = None  # nothing left to redeem
        self._save(txn, req)

    def _verified_policy(self, txn: Transaction, req: dict[str, Any]) -> Policy:
        """The policy an admin signed for the request's credential (never the copy in the
        request record, which any writer of the store could stretch)."""
        cred = txn.table("credentials").get(req["cred_id"])
        if cred is None:
            raise IntegrityError(f"credential {req['cred_name']} is missing from the vault")
        return Policy.from_doc(self._checked_config(txn, cred)["policy"])

    def _refuse(self, txn: Transaction, session: Session, req_id: str, why: str,
                message: str, error: type[PolicyError] | type[IntegrityError] = PolicyError,
                ) -> Refused:
        txn.record(session.signer, "checkout.refused", req_id, {"why": why})
        return Refused(error(message))

    @staticmethod
    def _is_release(req: dict[str, Any]) -> bool:
        """True once a request holds its needed approvals with grants: from then on
        the requester can open the value offline with their own key, so every
        ending counts as a release (rotated and reviewed like a check-in)."""
        approvals = req.get("approvals") or []
        return req["state"] == S.APPROVED and len(approvals) >= int(req["needed"]) \
            and any(a.get("grant") is not None for a in approvals)

    def _end(self, txn: Transaction, session: Session, req: dict[str, Any], how: str,
             details: dict[str, Any]) -> bool:
        """Close a request that was never revealed (cancel, deny, expiry).

        A request that reached its approvals is *released*: it is recorded with
        ``"released": true`` and left ROTATING (the credential stays taken, the
        grants stay so that the holder's client can hand the old value to the
        connector) until ``_rotate_release`` rotates it and queues its review.
        Returns True for a release.
        """
        event = _event(req, "expired" if how == "expired" else how)
        if self._is_release(req):
            req["released"] = True
            req["end_reason"] = how
            req["ended_at"] = self.now()
            req["state"] = S.ROTATING
            self._save(txn, req)
            txn.record(session.signer, event, req["id"], {**details, "released": True})
            return True
        self._close(txn, req, how)
        txn.record(session.signer, event, req["id"], details)
        return False

    def _rotate_release(self, session: Session, req_id: str, quiet: bool = True) -> None:
        """Rotate a released request's credential (RotationOps implements it)."""

    def _expire_if_due(self, txn: Transaction, req: dict[str, Any], signer_session: Session,
                       now: float | None = None) -> bool:
        """Close a request whose approval window or request TTL has passed."""
        if now is None:
            now = txn.entry_time() if txn.write else self.now()
        policy = Policy.from_doc(req.get("policy"))
        if req["state"] == S.REQUESTED and now >= req["created"] + policy.request_ttl:
            self._end(txn, signer_session, req, "expired",
                      {"credential": req["cred_name"], "stage": "request"})
            return True
        if req["state"] == S.APPROVED and req["approvals"] and now >= min(
                a["expires"] for a in req["approvals"]):
            self._end(txn, signer_session, req, "expired",
                      {"credential": req["cred_name"], "stage": "approval"})
            return True
        return False

    @staticmethod
    def due_at(req: dict[str, Any]) -> float | None:
        """When a not-yet-revealed request expires (None when it is not waiting)."""
        if req["state"] == S.REQUESTED:
            return float(req["created"]) + Policy.from_doc(req.get("policy")).request_ttl
        if req["state"] == S.APPROVED and req.get("approvals"):
            return min(float(a["expires"]) for a in req["approvals"])
        return None

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
            cred = self._checked_config(txn, self._credential_doc(txn, cred_name))
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
            if open_req is None:
                self._check_cap(txn, session, "r", "open_requests", DEFAULT_OPEN_REQUESTS,
                                "requests")
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
                "id": self.new_id("r"), "cred_id": cred["id"], "cred_name": cred_name,
                "requester": session.name, "requester_id": session.operator_id,
                "reason": reason, "ticket": ticket, "duration": int(duration),
                "created": txn.entry_time(), "state": S.REQUESTED, "needed": policy.k - 1,
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
            sealed = txn.table("sealed").get(req["cred_id"])
            if sealed is None or int(sealed["current"]["version"]) != int(req["version"]):
                raise self._refuse(txn, session, req_id, "version-changed",
                                   "the credential changed since the request; request again")
            requester = txn.roster.get(req["requester"])
            if requester is None or not requester.active \
                    or requester.id != req["requester_id"]:
                raise self._refuse(txn, session, req_id, "requester-inactive",
                                   f"requester {req['requester']} is no longer active")
            self._checked(txn, req["cred_id"], sealed["current"], req["cred_name"])
            share = open_own_share(self.vault_id, req["cred_id"], sealed["current"],
                                   session.operator_id, session.hpke_priv)
            policy = self._verified_policy(txn, req)
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
            released = self._end(txn, session, req, "denied",
                                 {"credential": req["cred_name"], "reason": reason})
        if released:
            self._rotate_release(session, req_id)
            return self.checkout(req_id)
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
            released = self._end(txn, session, req, "cancelled",
                                 {"credential": req["cred_name"], "by": session.name})
        if released:
            self._rotate_release(session, req_id)
            return self.checkout(req_id)
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

    def _reveal(self, session: Session, req_id: str) -> SecretValue:
        with self.store.transaction() as txn:
            self._require_active(txn, session, "requester")
            req = self._request_doc(txn, req_id)
            if req["requester"] != session.name:
                raise self._refuse(txn, session, req_id, "not-requester",
                                   "only the requester can reveal a checkout")
            if req.get("released") and not req.get("revealed_at"):
                raise self._refuse(txn, session, req_id, "released",
                                   f"request {req_id} was {req.get('end_reason', 'closed')} "
                                   "after its approval; its credential is rotated; request "
                                   "again")
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
            self._check_time_bounds(txn, session, req)
            policy = self._verified_policy(txn, req)
            secret = self._combine(txn, session, req, policy)
            now = txn.entry_time()
            req["state"] = S.CHECKED_OUT
            req["revealed_at"] = now
            req["lease_expires"] = now + min(int(req["duration"]), policy.max_duration)
            self._save(txn, req)
            txn.record(session.signer, _event(req, "revealed"), req_id, {
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
        cred_policy = self._verified_policy(txn, req)
        window = min(policy.claim_window, cred_policy.claim_window)
        for a in req["approvals"]:
            if float(a["expires"]) - float(a["at"]) > window + 1:
                raise self._refuse(txn, session, req["id"], "claim-window-too-long",
                                   f"the approval by {a['approver']} claims a window longer "
                                   f"than the policy's {format_duration(window)}: it was "
                                   "forged or altered, or the approver's clock was wrong",
                                   IntegrityError)
        if int(req["duration"]) > cred_policy.max_duration:
            raise self._refuse(txn, session, req["id"], "lease-too-long",
                               f"the requested lease exceeds {req['cred_name']}'s maximum of "
                               f"{format_duration(cred_policy.max_duration)}: the state was "
                               "altered", IntegrityError)

    def _combine(self, txn: Transaction, session: Session, req: dict[str, Any],
                 policy: Policy) -> SecretValue:
        """Own share + every grant -> DEK -> value; any mismatch is an audited refusal."""
        req_id = req["id"]
        approvals = req["approvals"]
        names = [a["approver"] for a in approvals]
        if len(set(names)) != len(names) or session.name in names \
                or len(approvals) < policy.k - 1:
            raise self._refuse(txn, session, req_id, "bad-approvals",
                               "the approvals on this request are not valid", IntegrityError)
        for a in approvals:
            approver = txn.roster.get(a["approver"])
            if approver is None or not approver.active \
                    or not approver.has("approver") or approver.id != a["approver_id"]:
                raise self._refuse(txn, session, req_id, "approver-inactive",
                                   f"approver {a['approver']} is no longer an active approver")
            if a.get("grant") is None:
                raise self._refuse(txn, session, req_id, "grant-consumed",
                                   "this approval has already been used")
        sealed = txn.table("sealed").get(req["cred_id"])
        if sealed is None or int(sealed["current"]["version"]) != int(req["version"]):
            raise self._refuse(txn, session, req_id, "version-changed",
                               "the credential changed since the approval; request again")
        vdoc = self._checked(txn, req["cred_id"], sealed["current"], req["cred_name"])
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
