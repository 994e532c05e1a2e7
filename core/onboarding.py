"""One-time onboarding secrets: approved, shown once, expiring, revoked after use.

A temporary password or activation code for a new identity (human or not) is
the other exception path. It is issued by a deliverer with a reason, target
identity, delivery channel and expiry; an approver countersigns (the same
re-sealed-share approval as a checkout); the deliverer sees it exactly once;
when the recipient proves control (first use) it is revoked — through its
connector when the target supports it, else recorded as revoked by the
operator — and when it expires unused it is revoked and raises an alert.
Either way it lands in the review queue. It can never be checked out again.

Only admins decide *where* a value goes. A requester issues a vault-only
secret (``generated``) or one from a template the site's administrator wrote
in the site policy outside the vault (``[onboarding.templates.NAME]``: a
connector, target and options); a free ``connector``/``target``/``options``
needs the admin role. Otherwise a requester could name her own script as the
target, and it would run inside every operator's process that sweeps.
"""

from __future__ import annotations

from typing import Any

from glasskey.core import config
from glasskey.core.context import Service, VaultContext
from glasskey.core.credentials import CredentialService, CredentialSpec
from glasskey.core.errors import ConnectorError, PolicyError, UsageError
from glasskey.core.lookups import recipients, request_doc, require_active
from glasskey.core.models import (
    Checkout,
    CheckoutKind,
    CheckoutState,
    CredentialStatus,
    Policy,
    check_name,
    format_duration,
)
from glasskey.core.requests import DEFAULT_OPEN_ONBOARDING, Requests
from glasskey.core.reviews import ReviewService
from glasskey.core.rotation import RotationService
from glasskey.core.session import Session
from glasskey.core.storage.interface import Transaction
from glasskey.core.text import cap_all

S = CheckoutState
#: Key (in the meta table) of the sweep's failing items and their back-off.
SWEEP_FAILURES = "sweep_failures"
DEFAULT_EXPIRY = 24 * 3600
MAX_EXPIRY = 72 * 3600
ONBOARDING_POLICY = Policy(k=2, max_duration=MAX_EXPIRY, length=20,
                           classes=("lower", "upper", "digit"), exclude="0O1lI")


def clear_sweep_failure(txn: Transaction, item: str) -> None:
    """Forget the sweep's failure record of ``item`` (kept here: onboarding is the main
    source of such records, and revoking one by hand ends its retries)."""
    doc = txn.table("meta").get(SWEEP_FAILURES)
    if doc and item in doc.get("items", {}):
        del doc["items"][item]
        txn.table("meta").put(SWEEP_FAILURES, doc)


class OnboardingService(Service):
    """Issue, deliver (via the checkout), revoke and expire one-time onboarding secrets."""

    def __init__(self, ctx: VaultContext, requests: Requests, credentials: CredentialService,
                 rotation: RotationService, reviews: ReviewService) -> None:
        super().__init__(ctx)
        self.requests = requests
        self.credentials = credentials
        self.rotation = rotation
        self.reviews = reviews

    def issue_onboarding(self, session: Session, identity: str, reason: str, ticket: str,
                         channel: str, expires_in: int = DEFAULT_EXPIRY,
                         connector: str = "generated", target: str | None = None,
                         options: dict[str, str] | None = None,
                         template: str | None = None) -> Checkout:
        cap_all(identity=identity, reason=reason, ticket=ticket, channel=channel, target=target)
        check_name(identity, "identity")
        custom = connector != "generated" or target is not None or bool(options)
        if template is not None:
            if custom:
                raise UsageError("an onboarding template fixes the connector, target and "
                                 "options; give either --template or those, not both")
            chosen = config.site_policy().onboarding_templates.get(template)
            if chosen is None:
                raise UsageError(f"the site policy defines no onboarding template "
                                 f"{template!r}")
            connector, target, options = chosen.connector, chosen.target, chosen.options
        reason, ticket, channel = (reason or "").strip(), (ticket or "").strip(), \
            (channel or "").strip()
        if not (reason and ticket and channel):
            raise UsageError("an onboarding secret needs --reason, --ticket and --channel")
        if not 0 < expires_in <= MAX_EXPIRY:
            raise UsageError(f"expiry must be between 1 s and {format_duration(MAX_EXPIRY)}")
        with self.store.transaction() as txn:
            member = require_active(txn, session)
            if not (member.has("requester") or member.has("admin")):
                raise PolicyError(f"operator {session.name} does not hold the requester role")
            if custom and not member.has("admin"):
                raise PolicyError("only an admin chooses where an onboarding secret goes; "
                                  "use a site template (--template) or the vault-only default")
            self.requests.check_cap(txn, session, CheckoutKind.ONBOARDING, "open_onboarding",
                                    DEFAULT_OPEN_ONBOARDING,
                            "onboarding secrets")
            onb_id = self.ctx.new_id("o-")
            name = f"onboard-{identity}-{onb_id[2:8]}"
            spec = CredentialSpec(name, kind="onboarding", connector=connector, target=target,
                                  options=dict(options or {}), policy=ONBOARDING_POLICY,
                                  template=template)
            self.credentials.check_spec(spec, len(recipients(txn)))
            cred = self.credentials.add(txn, session, spec)
            now = self.now()
            req: dict[str, Any] = {
                "id": onb_id, "kind": CheckoutKind.ONBOARDING, "cred_id": cred.id,
                "cred_name": name,
                "requester": session.name, "requester_id": session.operator_id,
                "reason": reason, "ticket": ticket, "duration": int(expires_in),
                "identity": identity, "channel": channel, "expires_at": now + expires_in,
                "created": now, "state": S.REQUESTED, "needed": 1,
                "policy": Policy(request_ttl=expires_in, max_duration=MAX_EXPIRY).to_doc(),
                "approvals": [], "version": 1,
            }
            self.requests.save(txn, req)
            txn.record(session.signer, "onboarding.issued", onb_id, {
                "identity": identity, "reason": reason, "ticket": ticket, "channel": channel,
                "expires": req["expires_at"], "credential": name,
            })
            return Checkout.from_doc(req)

    def onboarding_secrets(self) -> list[Checkout]:
        return [c for c in self.requests.checkouts() if c.kind == CheckoutKind.ONBOARDING]

    def activate_onboarding(self, session: Session, onb_id: str) -> Checkout:
        """The recipient proved control (first use): revoke the secret now."""
        return self._revoke_onboarding(session, onb_id, "activated")

    def rotate_release(self, session: Session, req_id: str, quiet: bool = True) -> None:
        """End a released request: a checkout is rotated (RotationService.rotate_release);
        a released onboarding secret is revoked (rotated on its target when it can be)."""
        with self.store.read() as txn:
            req = txn.table("requests").get(req_id)
        if req is None or req.get("kind") != CheckoutKind.ONBOARDING:
            self.rotation.rotate_release(session, req_id, quiet)
            return
        if req["state"] != S.ROTATING or not req.get("released"):
            return
        try:
            self._revoke_onboarding(session, req_id, str(req.get("end_reason", "cancelled")),
                                    announce=False)
        except (ConnectorError, PolicyError):
            if not quiet:
                raise  # the sweep records it and retries it; alerts show it

    def _revoke_onboarding(self, session: Session, onb_id: str, why: str,
                           announce: bool = True) -> Checkout:
        with self.store.transaction() as txn:
            require_active(txn, session)
            req = request_doc(txn, onb_id)
            if req.get("kind") != CheckoutKind.ONBOARDING:
                raise UsageError(f"{onb_id} is not an onboarding secret")
            if req["state"] == S.CLOSED:
                raise PolicyError(f"{onb_id} is already {req.get('closed_reason', 'closed')}")
            if why == "activated" and req["state"] != S.CHECKED_OUT:
                raise PolicyError(f"{onb_id} was never delivered (it is {req['state']}); "
                                  "nothing can have been activated")
            cred = txn.table("credentials").get(req["cred_id"])
            connector = self.rotation.connector_for(cred, txn.roster) if cred else None
            automatic = connector is not None and not (
                connector.vault_is_source_of_truth or connector.needs_person)
            if automatic and cred is not None:
                self._drop_foreign_pending(txn, session, cred, onb_id)
        how = "connector" if automatic else "recorded"
        if automatic and cred is not None:
            result = self.rotation.rotate(session, cred["id"], None, reason=f"onboarding-{why}")
            if result.outcome != "committed":
                raise ConnectorError(
                    f"revoking {onb_id} on its target failed: {result.message}")
        with self.store.transaction() as txn:
            req = request_doc(txn, onb_id)
            cred = txn.table("credentials").get(req["cred_id"])
            if cred is not None:
                cred["status"] = CredentialStatus.REVOKED
                txn.table("credentials").put(cred["id"], cred)
                self.rotation.flag(txn, cred)
            for a in req.get("approvals", []):
                a["grant"] = None
            req["ended_at"] = self.now()
            self.requests.close(txn, req, why)
            if announce:
                txn.record(session.signer, f"onboarding.{why}", onb_id,
                           {"identity": req["identity"], "credential": req["cred_name"]})
            txn.record(session.signer, "onboarding.revoked", onb_id, {
                "how": how, "identity": req["identity"],
                "note": "rotated on the target" if automatic else
                        "the target is not automated: the operator records the revocation",
            })
            self.reviews.queue(txn, onb_id, "onboarding", req["cred_name"], req["requester"],
                               f"onboarding secret for {req['identity']} {why} "
                               f"(via {req['channel']})")
            return Checkout.from_doc(req)

    def _drop_foreign_pending(self, txn: Transaction, session: Session,
                              cred: dict[str, Any], onb_id: str) -> None:
        """Let any operator retry a revocation another operator's process began.

        A half-done rotation can only be finished by the process that holds its
        resume blob; for a one-time secret that must merely stop working, the
        retry starts afresh instead (the dropped value was never confirmed, and
        the secret is never used again), so a sweep's retry is not tied to the
        one operator whose sweep failed first.
        """
        sealed = txn.table("sealed").get(cred["id"])
        pending = (sealed or {}).get("pending")
        if sealed is None or not pending:
            return
        if (pending.get("resume") or {}).get("operator") == session.operator_id:
            return
        sealed["pending"] = None
        txn.table("sealed").put(cred["id"], sealed)
        txn.record(session.signer, "rotate.rollback", cred["name"], {
            "dropped_version": int(pending["version"]), "request": onb_id,
            "why": "onboarding revocation retried by another operator",
        })

    def expire_onboarding(self, session: Session, onb_id: str) -> None:
        """Revoke one onboarding secret past its expiry (the sweep calls this per item)."""
        self._revoke_onboarding(session, onb_id, "expired")

    def revoke_onboarding_manually(self, session: Session, onb_id: str, note: str
                                   ) -> Checkout:
        """An admin records that an onboarding secret was revoked by hand.

        For a target the sweep cannot reach: the admin disabled the identity
        some other way and says how in ``note``. The secret is closed and
        revoked, any half-done rotation of it is dropped (it will never be
        used again), the sweep stops retrying it, and it is queued for review.
        """
        note = (note or "").strip()
        if not note:
            raise UsageError("say how the secret was revoked (--note TEXT)")
        with self.store.transaction() as txn:
            require_active(txn, session, "admin")
            req = request_doc(txn, onb_id)
            if req.get("kind") != CheckoutKind.ONBOARDING:
                raise UsageError(f"{onb_id} is not an onboarding secret")
            if req["state"] == S.CLOSED:
                raise PolicyError(f"{onb_id} is already {req.get('closed_reason', 'closed')}")
            cred = txn.table("credentials").get(req["cred_id"])
            dropped = None
            if cred is not None:
                sealed = txn.table("sealed").get(cred["id"])
                if sealed is not None and sealed.get("pending"):
                    dropped = int(sealed["pending"]["version"])
                    sealed["pending"] = None
                    txn.table("sealed").put(cred["id"], sealed)
                cred["status"] = CredentialStatus.REVOKED
                cred["failure"] = ""
                txn.table("credentials").put(cred["id"], cred)
                self.rotation.flag(txn, cred)
            clear_sweep_failure(txn, onb_id)
            self.requests.close(txn, req, "revoked")
            txn.record(session.signer, "onboarding.revoked", onb_id, {
                "how": "manual", "identity": req["identity"], "credential": req["cred_name"],
                "note": note, "by": session.name, "dropped_version": dropped,
            })
            self.reviews.queue(txn, onb_id, "onboarding", req["cred_name"], req["requester"],
                               f"onboarding secret for {req['identity']} revoked by hand by "
                               f"{session.name}: {note}")
            return Checkout.from_doc(req)

