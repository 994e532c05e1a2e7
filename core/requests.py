"""Request records: the one place that writes a request's state and its ``active`` index.

A request (a checkout, an onboarding secret, an emergency use) is one record
in the ``requests`` table; while it is open, the small ``active`` table maps
its credential to it (one holder at a time). Every service that moves a
request (checkout, rotation, onboarding, the kit, offboarding, the sweep)
goes through ``Requests`` so that the two never disagree.
"""

from __future__ import annotations

from typing import Any

from glasskey.core.context import Service
from glasskey.core.errors import IntegrityError, PolicyError
from glasskey.core.lookups import checked_config, request_doc
from glasskey.core.models import (
    OPEN_STATES,
    Checkout,
    CheckoutKind,
    CheckoutState,
    Policy,
)
from glasskey.core.session import Session
from glasskey.core.storage.interface import Refused, Transaction

S = CheckoutState

#: Default caps per requester (``[limits]`` in glasskey.toml may change them,
#: within 1..LIMIT_CEILING): one operator must not be able to take every
#: credential, or fill the vault with onboarding secrets, in a few seconds.
DEFAULT_OPEN_REQUESTS = 5
DEFAULT_OPEN_ONBOARDING = 20
LIMIT_CEILING = 1000


def event_for(req: dict[str, Any], what: str) -> str:
    """checkout.<what>, or onboarding.<what> for a one-time onboarding secret."""
    kind = "onboarding" if req.get("kind") == CheckoutKind.ONBOARDING else "checkout"
    return f"{kind}.{what}"


def is_release(req: dict[str, Any]) -> bool:
    """True once a request holds its needed approvals with grants: from then on
    the requester can open the value offline with their own key, so every
    ending counts as a release (rotated and reviewed like a check-in)."""
    approvals = req.get("approvals") or []
    return req["state"] == S.APPROVED and len(approvals) >= int(req["needed"]) \
        and any(a.get("grant") is not None for a in approvals)


def due_at(req: dict[str, Any]) -> float | None:
    """When a not-yet-revealed request expires (None when it is not waiting)."""
    if req["state"] == S.REQUESTED:
        return float(req["created"]) + Policy.from_doc(req.get("policy")).request_ttl
    if req["state"] == S.APPROVED and req.get("approvals"):
        return min(float(a["expires"]) for a in req["approvals"])
    return None


class Requests(Service):
    """Reads and writes of request records (no policy of its own beyond the caps)."""

    # -- reads ------------------------------------------------------------------------------
    def checkout(self, req_id: str) -> Checkout:
        with self.store.read() as txn:
            return Checkout.from_doc(request_doc(txn, req_id))

    def checkouts(self, *, open_only: bool = False) -> list[Checkout]:
        with self.store.read() as txn:
            if open_only:
                ids = [a["request"] for _, a in txn.table("active").items()]
                docs = [txn.table("requests").get(i) for i in ids]
                out = [Checkout.from_doc(d) for d in docs if d is not None]
            else:
                out = [Checkout.from_doc(d) for d in txn.table("requests").values()]
        return sorted(out, key=lambda c: (c.created, c.id))

    def active_map(self) -> dict[str, dict[str, Any]]:
        """Credential id -> its open checkout (request id, state, holder)."""
        with self.store.read() as txn:
            return dict(txn.table("active").items())

    # -- flood caps ----------------------------------------------------------------------
    def limit(self, key: str, default: int) -> int:
        raw = self.ctx.site_setting("limits", key)
        try:
            value = int(raw) if raw is not None else default
        except ValueError:
            value = default
        return min(LIMIT_CEILING, max(1, value))

    def check_cap(self, txn: Transaction, session: Session, kind: CheckoutKind, key: str,
                  default: int, what: str) -> None:
        """Refuse (audited) a requester's request beyond their cap of open ones of ``kind``."""
        cap = self.limit(key, default)
        requests = txn.table("requests")
        mine = 0
        for entry in txn.table("active").values():
            if entry.get("requester") != session.name:
                continue
            found = entry.get("kind") or (requests.get(str(entry["request"])) or {}).get(
                "kind", CheckoutKind.CHECKOUT)
            if found == kind:
                mine += 1
        if mine >= cap:
            txn.record(session.signer, "request.capped", session.name,
                       {"what": what, "open": mine, "cap": cap})
            raise Refused(PolicyError(
                f"{session.name} already has {mine} open {what} (the cap is {cap}); finish "
                "or cancel one first, or ask an admin ('glasskey request clear')"))

    # -- writes ---------------------------------------------------------------------------
    def set_active(self, txn: Transaction, req: dict[str, Any]) -> None:
        if req["state"] in OPEN_STATES:
            txn.table("active").put(req["cred_id"], {
                "request": req["id"], "state": req["state"], "requester": req["requester"],
                "lease_expires": req.get("lease_expires"),
                "kind": req.get("kind", CheckoutKind.CHECKOUT),
            })
        else:
            current = txn.table("active").get(req["cred_id"])
            if current is not None and current["request"] == req["id"]:
                txn.table("active").delete(req["cred_id"])

    def save(self, txn: Transaction, req: dict[str, Any]) -> None:
        txn.table("requests").put(req["id"], req)
        self.set_active(txn, req)

    def close(self, txn: Transaction, req: dict[str, Any], reason: str) -> None:
        req["state"] = S.CLOSED
        req["closed_reason"] = reason
        req["ended_at"] = self.now()
        for approval in req.get("approvals", []):
            approval["grant"] = None  # nothing left to redeem
        self.save(txn, req)

    def verified_policy(self, txn: Transaction, req: dict[str, Any]) -> Policy:
        """The policy an admin signed for the request's credential (never the copy in the
        request record, which any writer of the store could stretch)."""
        cred = txn.table("credentials").get(req["cred_id"])
        if cred is None:
            raise IntegrityError(f"credential {req['cred_name']} is missing from the vault")
        return Policy.from_doc(checked_config(txn, cred)["policy"])

    @staticmethod
    def refuse(txn: Transaction, session: Session, req_id: str, why: str,
               message: str, error: type[PolicyError] | type[IntegrityError] = PolicyError,
               ) -> Refused:
        txn.record(session.signer, "checkout.refused", req_id, {"why": why})
        return Refused(error(message))

    def end(self, txn: Transaction, session: Session, req: dict[str, Any], how: str,
            details: dict[str, Any]) -> bool:
        """Close a request that was never revealed (cancel, deny, expiry).

        A request that reached its approvals is *released*: it is recorded with
        ``"released": true`` and left ROTATING (the credential stays taken, the
        grants stay so that the holder's client can hand the old value to the
        connector) until the release is rotated and its review queued
        (``OnboardingService.rotate_release``). Returns True for a release.
        """
        event = event_for(req, "expired" if how == "expired" else how)
        if is_release(req):
            req["released"] = True
            req["end_reason"] = how
            req["ended_at"] = self.now()
            req["state"] = S.ROTATING
            self.save(txn, req)
            txn.record(session.signer, event, req["id"], {**details, "released": True})
            return True
        self.close(txn, req, how)
        txn.record(session.signer, event, req["id"], details)
        return False

    def expire_if_due(self, txn: Transaction, req: dict[str, Any], signer_session: Session,
                      now: float | None = None) -> bool:
        """Close a request whose approval window or request TTL has passed."""
        if now is None:
            now = txn.entry_time() if txn.write else self.now()
        policy = Policy.from_doc(req.get("policy"))
        if req["state"] == S.REQUESTED and now >= req["created"] + policy.request_ttl:
            self.end(txn, signer_session, req, "expired",
                     {"credential": req["cred_name"], "stage": "request"})
            return True
        if req["state"] == S.APPROVED and req["approvals"] and now >= min(
                a["expires"] for a in req["approvals"]):
            self.end(txn, signer_session, req, "expired",
                     {"credential": req["cred_name"], "stage": "approval"})
            return True
        return False

    @staticmethod
    def due_at(req: dict[str, Any]) -> float | None:
        return due_at(req)
