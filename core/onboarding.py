"""One-time onboarding secrets: approved, shown once, expiring, revoked after use.

A temporary password or activation code for a new identity (human or not) is
the other exception path. It is issued by a deliverer with a reason, target
identity, delivery channel and expiry; an approver countersigns (the same
re-sealed-share approval as a checkout); the deliverer sees it exactly once;
when the recipient proves control (first use) it is revoked — through its
connector when the target supports it, else recorded as revoked by the
operator — and when it expires unused it is revoked and raises an alert.
Either way it lands in the review queue. It can never be checked out again.
"""

from __future__ import annotations

from typing import Any

from core.credentials import CredentialOps, CredentialSpec
from core.errors import PolicyError, UsageError
from core.models import Checkout, CheckoutState, Policy, check_name, format_duration
from core.rotation import RotationOps
from core.session import Session
from core.text import cap_all

S = CheckoutState
DEFAULT_EXPIRY = 24 * 3600
MAX_EXPIRY = 72 * 3600
ONBOARDING_POLICY = Policy(k=2, max_duration=MAX_EXPIRY, length=20,
                           classes=("lower", "upper", "digit"), exclude="0O1lI")


class OnboardingOps(RotationOps, CredentialOps):
    def issue_onboarding(self, session: Session, identity: str, reason: str, ticket: str,
                         channel: str, expires_in: int = DEFAULT_EXPIRY,
                         connector: str = "generated", target: str | None = None,
                         options: dict[str, str] | None = None) -> Checkout:
        cap_all(identity=identity, reason=reason, ticket=ticket, channel=channel, target=target)
        check_name(identity, "identity")
        reason, ticket, channel = (reason or "").strip(), (ticket or "").strip(), \
            (channel or "").strip()
        if not (reason and ticket and channel):
            raise UsageError("an onboarding secret needs --reason, --ticket and --channel")
        if not 0 < expires_in <= MAX_EXPIRY:
            raise UsageError(f"expiry must be between 1 s and {format_duration(MAX_EXPIRY)}")
        with self.store.transaction() as txn:
            self._require_active(txn, session, "requester")
            onb_id = self.new_id("o-")
            name = f"onboard-{identity}-{onb_id[2:8]}"
            spec = CredentialSpec(name, kind="onboarding", connector=connector, target=target,
                                  options=dict(options or {}), policy=ONBOARDING_POLICY)
            self._check_spec(spec, len(self._recipients(txn)))
            cred = self._add(txn, session, spec)
            now = self.now()
            req: dict[str, Any] = {
                "id": onb_id, "kind": "onboarding", "cred_id": cred.id, "cred_name": name,
                "requester": session.name, "requester_id": session.operator_id,
                "reason": reason, "ticket": ticket, "duration": int(expires_in),
                "identity": identity, "channel": channel, "expires_at": now + expires_in,
                "created": now, "state": S.REQUESTED, "needed": 1,
                "policy": Policy(request_ttl=expires_in, max_duration=MAX_EXPIRY).to_doc(),
                "approvals": [], "version": 1,
            }
            self._save(txn, req)
            txn.record(session.signer, "onboarding.issued", onb_id, {
                "identity": identity, "reason": reason, "ticket": ticket, "channel": channel,
                "expires": req["expires_at"], "credential": name,
            })
            return Checkout.from_doc(req)

    def onboarding_secrets(self) -> list[Checkout]:
        return [c for c in self.checkouts() if c.id.startswith("o-")]

    def activate_onboarding(self, session: Session, onb_id: str) -> Checkout:
        """The recipient proved control (first use): revoke the secret now."""
        return self._revoke_onboarding(session, onb_id, "activated")

    def _revoke_onboarding(self, session: Session, onb_id: str, why: str) -> Checkout:
        with self.store.transaction() as txn:
            self._require_active(txn, session)
            req = self._request_doc(txn, onb_id)
            if req.get("kind") != "onboarding":
                raise UsageError(f"{onb_id} is not an onboarding secret")
            if req["state"] == S.CLOSED:
                raise PolicyError(f"{onb_id} is already {req.get('closed_reason', 'closed')}")
            if why == "activated" and req["state"] != S.CHECKED_OUT:
                raise PolicyError(f"{onb_id} was never delivered (it is {req['state']}); "
                                  "nothing can have been activated")
            cred = txn.sharded("credentials").get(req["cred_id"])
            connector = self.connector_for(cred) if cred else None
            automatic = connector is not None and not (
                connector.vault_is_source_of_truth or connector.needs_person)
        how = "connector" if automatic else "recorded"
        if automatic and cred is not None:
            result = self.rotate(session, cred["id"], None, reason=f"onboarding-{why}")
            if result.outcome != "committed":
                raise PolicyError(f"revoking {onb_id} on its target failed: {result.message}")
        with self.store.transaction() as txn:
            req = self._request_doc(txn, onb_id)
            cred = txn.sharded("credentials").get(req["cred_id"])
            if cred is not None:
                cred["status"] = "revoked"
                txn.sharded("credentials").put(cred["id"], cred)
                self._flag(txn, cred)
            for a in req.get("approvals", []):
                a["grant"] = None
            req["ended_at"] = self.now()
            self._close(txn, req, why)
            txn.record(session.signer, f"onboarding.{why}", onb_id,
                       {"identity": req["identity"], "credential": req["cred_name"]})
            txn.record(session.signer, "onboarding.revoked", onb_id, {
                "how": how, "identity": req["identity"],
                "note": "rotated on the target" if automatic else
                        "the target is not automated: the operator records the revocation",
            })
            self._queue_review(txn, onb_id, "onboarding", req["cred_name"], req["requester"],
                               f"onboarding secret for {req['identity']} {why} "
                               f"(via {req['channel']})")
            return Checkout.from_doc(req)

    def expire_onboarding(self, session: Session) -> list[str]:
        """Revoke every onboarding secret past its expiry (run by the sweep)."""
        due = []
        with self.store.read() as txn:
            for _, entry in txn.table("active").items():
                req = txn.sharded("requests").get(entry["request"])
                if req and req.get("kind") == "onboarding" \
                        and self.now() >= float(req["expires_at"]):
                    due.append(req["id"])
        for onb_id in due:
            self._revoke_onboarding(session, onb_id, "expired")
        return due
