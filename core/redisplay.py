"""What the holder of a running lease may do without a new approval.

* **Re-display** the secret after re-authenticating. A lock, a quit or a
  restart used to lose it for good ("revealed in another session") while the
  lease, and the holder's right to the value, ran on. Nothing new is granted:
  the value is opened again from the holder's own share plus the approvers'
  grants, which stay on the request until it closes. Each re-display is its
  own audit event, ``checkout.redisplayed``, never a second
  ``checkout.revealed``: the reveal (the release) happened once.
* **Extend** the lease up to the credential's maximum duration, counted from
  the reveal (``checkout.extended``). Beyond it a new request and approval
  are needed.

Only a plain checkout qualifies: a one-time onboarding secret is shown once
by design, and an emergency use has no grants to re-open.
"""

from __future__ import annotations

from typing import Any

from glasskey.core.checkout import CheckoutService
from glasskey.core.context import Service, VaultContext
from glasskey.core.errors import PolicyError, UsageError
from glasskey.core.lookups import request_doc, require_active
from glasskey.core.models import Checkout, CheckoutKind, CheckoutState, format_duration
from glasskey.core.requests import Requests
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.storage.interface import Transaction

S = CheckoutState


class HolderService(Service):
    """Re-display and lease extension for the holder of a running checkout."""

    def __init__(self, ctx: VaultContext, requests: Requests,
                 checkout: CheckoutService) -> None:
        super().__init__(ctx)
        self.requests = requests
        self.checkout = checkout

    def _held(self, txn: Transaction, session: Session, req_id: str, what: str
              ) -> dict[str, Any]:
        """The request doc, if ``session`` holds it as a live plain checkout (audited refusal
        otherwise)."""
        require_active(txn, session, "requester")
        req = request_doc(txn, req_id)
        if req["requester"] != session.name:
            raise self.requests.refuse(txn, session, req_id, f"{what}-not-holder",
                               f"only the holder can {what} this checkout")
        if req.get("kind", CheckoutKind.CHECKOUT) != CheckoutKind.CHECKOUT:
            raise self.requests.refuse(txn, session, req_id, f"{what}-kind",
                               f"a {req.get('kind')} secret cannot be {what}ed: it is shown "
                               "once")
        if req["state"] != S.CHECKED_OUT:
            raise self.requests.refuse(txn, session, req_id, f"{what}-state",
                               f"{req_id} is {req['state']}, not a running lease")
        if self.now() >= float(req.get("lease_expires") or 0):
            raise self.requests.refuse(txn, session, req_id, f"{what}-lease-ended",
                               f"the lease on {req_id} has ended; check in")
        return req

    def redisplay(self, session: Session, req_id: str) -> SecretValue:
        """The holder's secret again, during their own lease; audited as a re-display."""
        with self.store.transaction() as txn:
            req = self._held(txn, session, req_id, "redisplay")
            policy = self.requests.verified_policy(txn, req)
            secret = self.checkout.combine(txn, session, req, policy)
            txn.record(session.signer, "checkout.redisplayed", req_id, {
                "credential": req["cred_name"], "version": req["version"],
                "lease_expires": req["lease_expires"],
            })
        # Returned only after the audit entry is durable (the commit succeeded).
        return secret

    def extend_lease(self, session: Session, req_id: str, extra: int) -> Checkout:
        """Lengthen the holder's lease by ``extra`` seconds, within the credential's maximum
        (counted from the reveal); beyond it a new approval is needed."""
        if extra <= 0:
            raise UsageError("an extension must be positive")
        with self.store.transaction() as txn:
            req = self._held(txn, session, req_id, "extend")
            policy = self.requests.verified_policy(txn, req)  # as an admin signed it
            revealed = float(req["revealed_at"])
            old_end = float(req["lease_expires"])
            new_end = old_end + extra
            if new_end - revealed > policy.max_duration:
                left = max(0, int(revealed + policy.max_duration - old_end))
                raise PolicyError(
                    f"{req['cred_name']}'s maximum lease is "
                    f"{format_duration(policy.max_duration)}: at most "
                    f"{format_duration(left)} more can be added; beyond that request again")
            req["lease_expires"] = new_end
            self.requests.save(txn, req)
            txn.record(session.signer, "checkout.extended", req_id, {
                "credential": req["cred_name"], "lease_expires": new_end,
                "previous_lease_expires": old_end, "extra": extra,
            })
            return Checkout.from_doc(req)
