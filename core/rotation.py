"""Two-phase, crash-safe rotation after use.

Phase 1 (one transaction): a new value is generated to the credential's
policy, sealed as the *pending* version (fresh DEK, fresh shares for every
operator) and a ``rotate.intent`` audit entry is written. Nothing has touched
the target yet, so a crash here leaves the old value working and the pending
one ready.

Phase 2: the connector sets the pending value on the target and verifies it
by a real login; only a verified value is promoted (``rotate.commit``) and
the old version discarded. A failure keeps both old and pending, marks the
credential ROTATION-FAILED (blocking new checkouts) and says why.

Reconciliation (re-running ``checkin``, ``reconcile``, or the sweep every
authenticated command runs) finishes an unfinished intent: the pending value
is tried first, then the old one, against the target, and the intent is
committed, re-applied or rolled back. At every moment the value the target
accepts is the current or the pending version, and the vault can decrypt both.

Only the process that performs a rotation sees the new value (it has to give
it to the target). For targets outside the vault, the pending and old values
are also sealed to the rotating operator alone (the *resume* blob) so that
their next process can finish after a crash; the blob is deleted at commit.
SECURITY.md explains this residual exposure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from glasskey.core import config as site_config
from glasskey.core.canonical import b64d, b64e
from glasskey.core.connectors import registry
from glasskey.core.connectors.base import Connector, ConnectorSettings
from glasskey.core.context import Service, VaultContext
from glasskey.core.crypto import hpke
from glasskey.core.envelope import (
    seal_version,
)
from glasskey.core.errors import (
    ConnectorError,
    GlasskeyError,
    IntegrityError,
    PolicyError,
)
from glasskey.core.lookups import (
    checked,
    recipients,
    request_doc,
    require_active,
    seal,
)
from glasskey.core.models import (
    CheckoutKind,
    CheckoutState,
    CredentialStatus,
    Policy,
    RotationOutcome,
)
from glasskey.core.passwords import generate
from glasskey.core.requests import Requests
from glasskey.core.reviews import ReviewService
from glasskey.core.roster import Roster, config_digest, verify_config
from glasskey.core.rotation_values import (
    apply_info,
    current_value,
    open_resume,
    seal_resume,
)
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.storage.interface import Transaction

S = CheckoutState
Outcome = RotationOutcome


@dataclass(frozen=True)
class RotationResult:
    credential: str
    outcome: RotationOutcome
    version: int
    message: str = ""


class RotationService(Service):
    """Check-in, rotation, manual application, reconciliation and releases."""

    def __init__(self, ctx: VaultContext, requests: Requests, reviews: ReviewService) -> None:
        super().__init__(ctx)
        self.requests = requests
        self.reviews = reviews

    def connector_for(self, cred: dict[str, Any], roster: Roster) -> Connector:
        """The credential's connector, only once its configuration's admin signature
        verified against the signed roster (a swapped target never runs)."""
        verify_config(roster, cred)
        template = cred.get("template")
        if isinstance(template, str):
            chosen = site_config.site_policy().onboarding_templates.get(template)
            if chosen is None or (chosen.connector, chosen.target, dict(chosen.options)) != (
                    cred["connector"], cred.get("target"), dict(cred.get("options", {}))):
                raise IntegrityError(
                    f"credential {cred['name']} names onboarding template {template!r}, which "
                    "the site policy does not define that way; it will not run")
        settings = ConnectorSettings(
            credential=cred["name"], target=cred.get("target"),
            options=dict(cred.get("options", {})), site=self.ctx.site_config(cred["connector"]),
        )
        return registry.make(cred["connector"], settings)

    # -- check-in -------------------------------------------------------------------------
    def checkin(self, session: Session, req_id: str) -> RotationResult:
        """End a checkout and rotate. Idempotent: re-running resumes an interrupted one.

        The check-in record and the rotation intent share one transaction; for
        a credential whose value lives only in the vault the commit joins them
        too (nothing outside can fail in between), so a check-in is one write.
        """
        with self.store.read() as txn:
            req = request_doc(txn, req_id)
        return self.rotate(session, req["cred_id"], req_id, reason="checkin", checkin=True)

    def _check_in(self, txn: Transaction, session: Session, req: dict[str, Any]) -> None:
        if req["requester"] != session.name and not (
                session.has("approver") or session.has("admin")):
            raise PolicyError("only the holder, an approver or an admin can check in")
        if req["state"] == S.CLOSED:
            raise PolicyError(f"checkout {req['id']} is already closed")
        if req["state"] not in (S.CHECKED_OUT, S.ROTATING, S.ROTATION_FAILED):
            raise PolicyError(
                f"request {req['id']} is {req['state']}; only a revealed checkout is checked "
                "in (use 'cancel' for one that was never revealed)")
        if req.get("kind") == CheckoutKind.ONBOARDING:
            raise PolicyError("an onboarding secret ends with 'onboard activate', not check-in")
        if req["state"] == S.CHECKED_OUT:
            req["ended_at"] = self.now()
            req["end_reason"] = "checkin"
            req["checked_in_by"] = session.name
            self.requests.save(txn, req)
            txn.record(session.signer, "checkout.checked-in", req["id"], {
                "credential": req["cred_name"], "held_for": int(
                    self.now() - float(req.get("revealed_at") or self.now())),
                "by": session.name,
            })

    # -- rotation -------------------------------------------------------------------------
    def rotate(self, session: Session, cred_id: str, req_id: str | None,
               reason: str, *, checkin: bool = False) -> RotationResult:
        connector, new_value, old_value, version, done = self._phase_one(
            session, cred_id, req_id, reason, checkin)
        if done is not None:
            return done
        if connector.needs_person:
            return self._await_person(session, cred_id, req_id, version)
        error = "" if connector.vault_is_source_of_truth else self._apply(
            connector, new_value, old_value)
        return self._phase_two(session, cred_id, req_id, version, error)

    def _phase_one(self, session: Session, cred_id: str, req_id: str | None, reason: str,
                   checkin: bool = False,
                   ) -> tuple[Connector, SecretValue | None, SecretValue | None, int,
                              RotationResult | None]:
        with self.store.transaction() as txn:
            require_active(txn, session)
            req = request_doc(txn, req_id) if req_id else None
            if checkin and req is not None:
                self._check_in(txn, session, req)
            cred = txn.table("credentials").get(cred_id)
            sealed = txn.table("sealed").get(cred_id)
            if cred is None or sealed is None:
                raise IntegrityError(f"credential {cred_id} has no sealed versions")
            connector = self.connector_for(cred, txn.roster)
            pending = sealed.get("pending")
            if pending is None:
                checked(txn, cred_id, sealed["current"], cred["name"])
                old = current_value(self.vault_id, session, req, sealed["current"])
                policy = Policy.from_doc(cred["policy"])
                new = generate(policy, self.ctx.rng)
                version = int(sealed["current"]["version"]) + 1
                pending = seal(txn, session, cred_id, seal_version(
                    self.vault_id, cred_id, version, new, policy.k, recipients(txn),
                    self.ctx.rng, self.now()))
                pending["intent_by"] = session.name
                pending["holder"] = req["requester"] if req else None
                pending["reason"] = reason
                if connector.needs_person:
                    pending["apply"] = self._apply_copies(txn, cred_id, version, new,
                                                          pending["holder"])
                elif not connector.vault_is_source_of_truth:
                    pending["resume"] = seal_resume(self.vault_id, session, cred_id, version, new,
                                                         old)
                sealed["pending"] = pending
                txn.table("sealed").put(cred_id, sealed)
                txn.record(session.signer, "rotate.intent", cred["name"], {
                    "from_version": int(sealed["current"]["version"]), "to_version": version,
                    "connector": cred["connector"], "reason": reason, "request": req_id,
                    # Which target was touched, as the admin signed it.
                    "config": config_digest(self.vault_id, cred),
                })
                new_value: SecretValue | None = new
                if connector.vault_is_source_of_truth:
                    # Nothing outside the vault to change: commit in the same write.
                    self.promote(txn, session, cred, sealed, {"request": req_id})
                    if req is not None:
                        self._finish_request(txn, req, RotationOutcome.COMMITTED, version)
                    return connector, None, None, version, RotationResult(
                        cred["name"], RotationOutcome.COMMITTED, version)
            else:
                version = int(pending["version"])
                new_value, old = open_resume(self.vault_id, session, cred_id, pending)
                if old is None:
                    old = current_value(self.vault_id, session, req, sealed["current"])
            if req is not None and req["state"] not in (S.ROTATING, S.CLOSED):
                req["state"] = S.ROTATING
                self.requests.save(txn, req)
        return connector, new_value, old, version, None

    def _apply(self, connector: Connector, new: SecretValue | None,
               old: SecretValue | None) -> str:
        """Set and verify on the target; '' on success, else why not (never a value)."""
        try:
            if new is None:
                raise ConnectorError(
                    "the pending value can only be applied by the operator who started this "
                    "rotation (run 'glasskey reconcile' as them) or rolled back with --fresh")
            if not connector.verify(new):  # pending first: maybe a lost reply
                connector.set(old, new)
                if not connector.verify(new):
                    raise ConnectorError("the target did not accept the new value")
            if old is not None and not connector.verify_rejected(old):
                raise ConnectorError("the target still accepts the old value")
        except ConnectorError as exc:
            return str(exc)
        except Exception as exc:  # any failure inside a rotation is a failed rotation
            return f"the {connector.name or 'site'} connector failed ({type(exc).__name__})"
        return ""

    def _phase_two(self, session: Session, cred_id: str, req_id: str | None, version: int,
                   error: str) -> RotationResult:
        with self.store.transaction() as txn:
            cred = txn.table("credentials").get(cred_id)
            sealed = txn.table("sealed").get(cred_id)
            if cred is None or sealed is None:
                raise IntegrityError(f"credential {cred_id} vanished during rotation")
            pending = sealed.get("pending")
            req = request_doc(txn, req_id) if req_id else None
            if pending is None or int(pending["version"]) != version:
                # Someone else finished (or rolled back) this rotation meanwhile.
                if req is not None and req["state"] != S.CLOSED:
                    self._finish_request(txn, req, Outcome.COMMITTED, int(cred["version"]))
                return RotationResult(cred["name"], Outcome.NOTHING_TO_DO, int(cred["version"]))
            if error:
                cred["status"] = CredentialStatus.ROTATION_FAILED
                cred["failure"] = error
                cred["failed_at"] = self.now()
                txn.table("credentials").put(cred_id, cred)
                self.flag(txn, cred)
                if req is not None:
                    req["state"] = S.ROTATION_FAILED
                    req["rotation"] = {"outcome": Outcome.FAILED, "error": error, "at": self.now()}
                    self.requests.save(txn, req)
                txn.record(session.signer, "rotate.failed", cred["name"], {
                    "to_version": version, "error": error, "request": req_id,
                })
                self.reviews.queue(
                    txn, f"rot-{cred['name']}-v{version}", "rotation", cred["name"],
                    req["requester"] if req else "",
                    f"rotation of {cred['name']} to version {version} failed: {error}")
                return RotationResult(cred["name"], Outcome.FAILED, int(cred["version"]), error)
            self.promote(txn, session, cred, sealed, {"request": req_id})
            if req is not None:
                self._finish_request(txn, req, RotationOutcome.COMMITTED, version)
            return RotationResult(cred["name"], RotationOutcome.COMMITTED, version)

    def promote(self, txn: Transaction, session: Session, cred: dict[str, Any],
                 sealed: dict[str, Any], details: dict[str, Any]) -> None:
        pending = dict(checked(txn, cred["id"], sealed["pending"], cred["name"]))
        for key in ("resume", "apply", "apply_revealed_to", "intent_by", "holder", "reason"):
            pending.pop(key, None)
        sealed["current"] = pending
        sealed["pending"] = None
        txn.table("sealed").put(cred["id"], sealed)
        cred["version"] = int(pending["version"])
        cred["status"] = CredentialStatus.ACTIVE
        cred["failure"] = ""
        cred["rotated_at"] = self.now()
        cred["rotations"] = int(cred.get("rotations", 0)) + 1
        txn.table("credentials").put(cred["id"], cred)
        for kit in txn.table("kits").values():
            if cred["id"] in (kit.get("to_rotate") or {}):
                del kit["to_rotate"][cred["id"]]  # a burned kit opens nothing current here
                txn.table("kits").put(kit["id"], kit)
        self.flag(txn, cred)
        txn.record(session.signer, "rotate.commit", cred["name"], {
            "version": cred["version"], "connector": cred["connector"], **details,
        })

    def flag(self, txn: Transaction, cred: dict[str, Any]) -> None:
        """Keep the small index of credentials that need attention in step."""
        if cred["status"] in (CredentialStatus.ROTATION_FAILED, CredentialStatus.APPLY_PENDING):
            txn.table("flags").put(cred["id"], {"name": cred["name"], "status": cred["status"],
                                                "failure": cred.get("failure", "")})
        elif txn.table("flags").get(cred["id"]) is not None:
            txn.table("flags").delete(cred["id"])

    def flagged(self) -> list[dict[str, Any]]:
        """Credentials in ROTATION-FAILED or APPLY-PENDING (no scan of all credentials)."""
        with self.store.read() as txn:
            return [doc for _, doc in txn.table("flags").items()]

    def _finish_request(self, txn: Transaction, req: dict[str, Any], outcome: RotationOutcome,
                        version: int) -> None:
        req["rotation"] = {"outcome": outcome, "version": version, "at": self.now()}
        kind = req.get("kind", CheckoutKind.CHECKOUT)
        if (req.get("revealed_at") or req.get("released")) and kind == CheckoutKind.CHECKOUT:
            req["review"] = req.get("review") or {"status": "pending"}
            held = "held" if req.get("revealed_at") else \
                f"was released (approved, then {req.get('end_reason', 'closed')})"
            self.reviews.queue(
                txn, req["id"], "checkout", req["cred_name"], req["requester"],
                f"{req['requester']} {held} {req['cred_name']} ({req['ticket']}: "
                f"{req['reason']}); rotation {outcome}")
        self.requests.close(txn, req, req.get("end_reason") or "returned")

    # -- releases (an approval is a release) ------------------------------------------------
    def can_rotate_for(self, session: Session, req: dict[str, Any]) -> bool:
        """Whether this session may rotate ``req``'s credential now.

        The holder always can (their grants give the connector the old value).
        Anyone else only when the target needs no old value: the vault is the
        source of truth, or a person applies it. That is the rule for overdue
        leases, and for releases closed by someone other than the holder.
        """
        if req["requester"] == session.name:
            return True
        with self.store.read() as txn:
            cred = txn.table("credentials").get(req["cred_id"])
            if cred is None:
                return False
            connector = self.connector_for(cred, txn.roster)
        return connector.vault_is_source_of_truth or connector.needs_person

    def rotate_release(self, session: Session, req_id: str, quiet: bool = True) -> None:
        """Rotate a released request's credential, as check-in does.

        Never raises when ``quiet`` (the command that released it has done its
        part); the sweep passes ``quiet=False`` so that a failure is recorded.

        If this session cannot rotate it (see ``can_rotate_for``) the request
        stays ROTATING with ``released``: the credential stays taken, ``alerts``
        shows it, and the holder's next command (its sweep) or check-in rotates
        it. A failure to rotate is recorded by the rotation itself.
        """
        with self.store.read() as txn:
            req = txn.table("requests").get(req_id)
        if req is None or req["state"] != S.ROTATING or not req.get("released"):
            return
        if not self.can_rotate_for(session, req):
            return
        try:
            self.rotate(session, req["cred_id"], req_id,
                        reason=f"released-{req.get('end_reason', 'closed')}")
        except GlasskeyError:
            if not quiet:
                raise

    # -- manual targets --------------------------------------------------------------------
    def _apply_copies(self, txn: Transaction, cred_id: str, version: int, new: SecretValue,
                      holder: str | None) -> dict[str, str]:
        """The new value sealed to each active operator other than the holder."""
        copies = {}
        for m in txn.roster.members.values():
            if not m.active or m.name == holder:
                continue
            copies[m.id] = b64e(hpke.seal(b64d(m.hpke_pub), new.encode(),
                                          apply_info(self.vault_id, cred_id, version, m.id)))
        if not copies:
            raise PolicyError("no operator other than the holder can apply the new value")
        return copies

    def _await_person(self, session: Session, cred_id: str, req_id: str | None,
                      version: int) -> RotationResult:
        with self.store.transaction() as txn:
            cred = txn.table("credentials").get(cred_id)
            if cred is None:
                raise IntegrityError(f"credential {cred_id} vanished during rotation")
            if cred["status"] != CredentialStatus.APPLY_PENDING:
                cred["status"] = CredentialStatus.APPLY_PENDING
                cred["apply_since"] = self.now()
                txn.table("credentials").put(cred_id, cred)
                self.flag(txn, cred)
                txn.record(session.signer, "rotate.apply-pending", cred["name"],
                           {"to_version": version, "request": req_id})
            if req_id:
                req = request_doc(txn, req_id)
                if req["state"] != S.CLOSED:
                    self._finish_request(txn, req, RotationOutcome.APPLY_PENDING, version)
            return RotationResult(cred["name"], RotationOutcome.APPLY_PENDING, int(cred["version"]),
                                  "an operator other than the holder must apply it "
                                  f"('glasskey apply {cred['name']}')")

    def rotate_many(self, session: Session, names: Sequence[str],
                    progress: Callable[[int, int], None] | None = None
                    ) -> list[RotationResult]:
        """Rotate every named credential (offboarding sweeps), one at a time.

        A credential that is checked out is skipped (its holder's check-in
        rotates it); every failure is reported, none stops the sweep.
        """
        results = []
        for i, name in enumerate(names, 1):
            try:
                cred_id = self.ctx.cred_id_for(name)
                with self.store.read() as txn:
                    self.find_credential(txn, name)
                    busy = txn.table("active").get(cred_id)
                if busy:
                    results.append(RotationResult(name, RotationOutcome.SKIPPED, 0,
                                                  f"open checkout {busy['request']}"))
                else:
                    results.append(self.rotate(session, cred_id, None, reason="sweep"))
            except GlasskeyError as exc:
                results.append(RotationResult(name, RotationOutcome.FAILED, 0, str(exc)))
            if progress:
                progress(i, len(names))
        return results


