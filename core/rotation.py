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

from glasskey.core import canonical
from glasskey.core import config as site_config
from glasskey.core.canonical import b64d, b64e
from glasskey.core.checkout import CheckoutOps
from glasskey.core.connectors import registry
from glasskey.core.connectors.base import Connector, ConnectorSettings
from glasskey.core.crypto import hpke
from glasskey.core.envelope import (
    decrypt_secret,
    grant_info,
    open_grant,
    open_own_share,
    recover_dek,
    seal_version,
)
from glasskey.core.errors import (
    ConnectorError,
    DecryptError,
    GlasskeyError,
    IntegrityError,
    PolicyError,
)
from glasskey.core.models import CheckoutState, Policy
from glasskey.core.passwords import generate
from glasskey.core.reviews import ReviewOps
from glasskey.core.roster import Roster, config_digest, verify_config
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.store import Refused, Transaction

S = CheckoutState
RESUME_LABEL = "glasskey/rotation-resume/v1"
APPLY_LABEL = "glasskey/rotation-apply/v1"


@dataclass(frozen=True)
class RotationResult:
    credential: str
    #: committed | failed | apply-pending | rolled-back | nothing-to-do
    outcome: str
    version: int
    message: str = ""


class RotationOps(CheckoutOps, ReviewOps):
    def site_config(self, connector: str) -> dict[str, str]:
        return {}

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
            options=dict(cred.get("options", {})), site=self.site_config(cred["connector"]),
        )
        return registry.make(cred["connector"], settings)

    def _info(self, label: str, cred_id: str, version: int, operator_id: str) -> bytes:
        return hpke.info_for(label, self.vault_id, cred_id, version, operator_id)

    def _current_value(self, session: Session, req: dict[str, Any] | None,
                       vdoc: dict[str, Any]) -> SecretValue | None:
        """The value the target has now, if this session is its holder (for self-rotation).

        Uses the holder's grants, kept until the checkout closes; the value is
        never shown, only handed to the connector.
        """
        if req is None or req.get("requester") != session.name:
            return None
        if int(req.get("version", -1)) != int(vdoc["version"]):
            return None
        try:
            shares = [open_own_share(self.vault_id, req["cred_id"], vdoc, session.operator_id,
                                     session.hpke_priv)]
            for a in req.get("approvals", []):
                if a.get("grant") is None:
                    return None
                info = grant_info(self.vault_id, req["id"], req["cred_id"], int(req["version"]),
                                  session.operator_id, a["approver_id"], float(a["expires"]))
                shares.append(open_grant(a["grant"], session.hpke_priv, info))
            dek = recover_dek(self.vault_id, req["cred_id"], vdoc, shares)
            return decrypt_secret(self.vault_id, req["cred_id"], vdoc, dek)
        except (DecryptError, IntegrityError):
            return None

    # -- check-in -------------------------------------------------------------------------
    def checkin(self, session: Session, req_id: str) -> RotationResult:
        """End a checkout and rotate. Idempotent: re-running resumes an interrupted one.

        The check-in record and the rotation intent share one transaction; for
        a credential whose value lives only in the vault the commit joins them
        too (nothing outside can fail in between), so a check-in is one write.
        """
        with self.store.read() as txn:
            req = self._request_doc(txn, req_id)
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
        if req.get("kind") == "onboarding":
            raise PolicyError("an onboarding secret ends with 'onboard activate', not check-in")
        if req["state"] == S.CHECKED_OUT:
            req["ended_at"] = self.now()
            req["end_reason"] = "checkin"
            req["checked_in_by"] = session.name
            self._save(txn, req)
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
            self._require_active(txn, session)
            req = self._request_doc(txn, req_id) if req_id else None
            if checkin and req is not None:
                self._check_in(txn, session, req)
            cred = txn.table("credentials").get(cred_id)
            sealed = txn.table("sealed").get(cred_id)
            if cred is None or sealed is None:
                raise IntegrityError(f"credential {cred_id} has no sealed versions")
            connector = self.connector_for(cred, txn.roster)
            pending = sealed.get("pending")
            if pending is None:
                self._checked(txn, cred_id, sealed["current"], cred["name"])
                old = self._current_value(session, req, sealed["current"])
                policy = Policy.from_doc(cred["policy"])
                new = generate(policy)
                version = int(sealed["current"]["version"]) + 1
                pending = self._seal(txn, session, cred_id, seal_version(
                    self.vault_id, cred_id, version, new, policy.k, self._recipients(txn),
                    self.rng, self.now()))
                pending["intent_by"] = session.name
                pending["holder"] = req["requester"] if req else None
                pending["reason"] = reason
                if connector.needs_person:
                    pending["apply"] = self._apply_copies(txn, cred_id, version, new,
                                                          pending["holder"])
                elif not connector.vault_is_source_of_truth:
                    pending["resume"] = self._seal_resume(session, cred_id, version, new, old)
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
                    self._promote(txn, session, cred, sealed, {"request": req_id})
                    if req is not None:
                        self._finish_request(txn, req, "committed", version)
                    return connector, None, None, version, RotationResult(
                        cred["name"], "committed", version)
            else:
                version = int(pending["version"])
                new_value, old = self._open_resume(session, cred_id, pending)
                if old is None:
                    old = self._current_value(session, req, sealed["current"])
            if req is not None and req["state"] not in (S.ROTATING, S.CLOSED):
                req["state"] = S.ROTATING
                self._save(txn, req)
        return connector, new_value, old, version, None

    def _seal_resume(self, session: Session, cred_id: str, version: int, new: SecretValue,
                     old: SecretValue | None) -> dict[str, Any]:
        payload = canonical.dumps({"new": new.reveal(),
                                   "old": old.reveal() if old is not None else None})
        blob = hpke.seal(hpke.public_from_private(session.hpke_priv), payload,
                         self._info(RESUME_LABEL, cred_id, version, session.operator_id))
        return {"operator": session.operator_id, "blob": b64e(blob)}

    def _open_resume(self, session: Session, cred_id: str, pending: dict[str, Any]
                     ) -> tuple[SecretValue | None, SecretValue | None]:
        resume = pending.get("resume")
        if not resume or resume.get("operator") != session.operator_id:
            return None, None
        try:
            raw = hpke.open_(session.hpke_priv, b64d(resume["blob"]),
                             self._info(RESUME_LABEL, cred_id, int(pending["version"]),
                                        session.operator_id))
        except DecryptError:
            return None, None
        doc = canonical.loads(raw)
        old = doc.get("old")
        return SecretValue(doc["new"]), SecretValue(old) if old is not None else None

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
            req = self._request_doc(txn, req_id) if req_id else None
            if pending is None or int(pending["version"]) != version:
                # Someone else finished (or rolled back) this rotation meanwhile.
                if req is not None and req["state"] != S.CLOSED:
                    self._finish_request(txn, req, "committed", int(cred["version"]))
                return RotationResult(cred["name"], "nothing-to-do", int(cred["version"]))
            if error:
                cred["status"] = "rotation-failed"
                cred["failure"] = error
                cred["failed_at"] = self.now()
                txn.table("credentials").put(cred_id, cred)
                self._flag(txn, cred)
                if req is not None:
                    req["state"] = S.ROTATION_FAILED
                    req["rotation"] = {"outcome": "failed", "error": error, "at": self.now()}
                    self._save(txn, req)
                txn.record(session.signer, "rotate.failed", cred["name"], {
                    "to_version": version, "error": error, "request": req_id,
                })
                self._queue_review(
                    txn, f"rot-{cred['name']}-v{version}", "rotation", cred["name"],
                    req["requester"] if req else "",
                    f"rotation of {cred['name']} to version {version} failed: {error}")
                return RotationResult(cred["name"], "failed", int(cred["version"]), error)
            self._promote(txn, session, cred, sealed, {"request": req_id})
            if req is not None:
                self._finish_request(txn, req, "committed", version)
            return RotationResult(cred["name"], "committed", version)

    def _promote(self, txn: Transaction, session: Session, cred: dict[str, Any],
                 sealed: dict[str, Any], details: dict[str, Any]) -> None:
        pending = dict(self._checked(txn, cred["id"], sealed["pending"], cred["name"]))
        for key in ("resume", "apply", "apply_revealed_to", "intent_by", "holder", "reason"):
            pending.pop(key, None)
        sealed["current"] = pending
        sealed["pending"] = None
        txn.table("sealed").put(cred["id"], sealed)
        cred["version"] = int(pending["version"])
        cred["status"] = "active"
        cred["failure"] = ""
        cred["rotated_at"] = self.now()
        cred["rotations"] = int(cred.get("rotations", 0)) + 1
        txn.table("credentials").put(cred["id"], cred)
        for kit in txn.table("kits").values():
            if cred["id"] in (kit.get("to_rotate") or {}):
                del kit["to_rotate"][cred["id"]]  # a burned kit opens nothing current here
                txn.table("kits").put(kit["id"], kit)
        self._flag(txn, cred)
        txn.record(session.signer, "rotate.commit", cred["name"], {
            "version": cred["version"], "connector": cred["connector"], **details,
        })

    def _flag(self, txn: Transaction, cred: dict[str, Any]) -> None:
        """Keep the small index of credentials that need attention in step."""
        if cred["status"] in ("rotation-failed", "apply-pending"):
            txn.table("flags").put(cred["id"], {"name": cred["name"], "status": cred["status"],
                                                "failure": cred.get("failure", "")})
        elif txn.table("flags").get(cred["id"]) is not None:
            txn.table("flags").delete(cred["id"])

    def flagged(self) -> list[dict[str, Any]]:
        """Credentials in ROTATION-FAILED or APPLY-PENDING (no scan of all credentials)."""
        with self.store.read() as txn:
            return [doc for _, doc in txn.table("flags").items()]

    def _finish_request(self, txn: Transaction, req: dict[str, Any], outcome: str,
                        version: int) -> None:
        req["rotation"] = {"outcome": outcome, "version": version, "at": self.now()}
        kind = req.get("kind", "checkout")
        if (req.get("revealed_at") or req.get("released")) and kind == "checkout":
            req["review"] = req.get("review") or {"status": "pending"}
            held = "held" if req.get("revealed_at") else \
                f"was released (approved, then {req.get('end_reason', 'closed')})"
            self._queue_review(
                txn, req["id"], "checkout", req["cred_name"], req["requester"],
                f"{req['requester']} {held} {req['cred_name']} ({req['ticket']}: "
                f"{req['reason']}); rotation {outcome}")
        self._close(txn, req, req.get("end_reason") or "returned")

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

    def _rotate_release(self, session: Session, req_id: str, quiet: bool = True) -> None:
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
                                          self._info(APPLY_LABEL, cred_id, version, m.id)))
        if not copies:
            raise PolicyError("no operator other than the holder can apply the new value")
        return copies

    def _await_person(self, session: Session, cred_id: str, req_id: str | None,
                      version: int) -> RotationResult:
        with self.store.transaction() as txn:
            cred = txn.table("credentials").get(cred_id)
            if cred is None:
                raise IntegrityError(f"credential {cred_id} vanished during rotation")
            if cred["status"] != "apply-pending":
                cred["status"] = "apply-pending"
                cred["apply_since"] = self.now()
                txn.table("credentials").put(cred_id, cred)
                self._flag(txn, cred)
                txn.record(session.signer, "rotate.apply-pending", cred["name"],
                           {"to_version": version, "request": req_id})
            if req_id:
                req = self._request_doc(txn, req_id)
                if req["state"] != S.CLOSED:
                    self._finish_request(txn, req, "apply-pending", version)
            return RotationResult(cred["name"], "apply-pending", int(cred["version"]),
                                  "an operator other than the holder must apply it "
                                  f"('glasskey apply {cred['name']}')")

    def reveal_apply(self, session: Session, cred_name: str) -> SecretValue:
        """Show a manual credential's pending value to the operator who will apply it."""
        with self.store.transaction() as txn:
            self._require_active(txn, session)
            cred = self._credential_doc(txn, cred_name)
            sealed = txn.table("sealed").get(cred["id"]) or {}
            pending = sealed.get("pending")
            if not pending or "apply" not in pending:
                raise PolicyError(f"{cred_name} has no value waiting to be applied")
            if pending.get("holder") == session.name:
                raise Refused(PolicyError("the holder of the last checkout cannot apply its "
                                          "rotation; another operator must"))
            blob = pending["apply"].get(session.operator_id)
            if blob is None:
                raise PolicyError(f"{session.name} holds no copy of the value to apply")
            value = SecretValue(hpke.open_(session.hpke_priv, b64d(blob), self._info(
                APPLY_LABEL, cred["id"], int(pending["version"]), session.operator_id)))
            if session.name not in pending.setdefault("apply_revealed_to", []):
                pending["apply_revealed_to"].append(session.name)
                txn.table("sealed").put(cred["id"], sealed)
            txn.record(session.signer, "rotate.apply-revealed", cred_name,
                       {"version": int(pending["version"])})
        return value

    def confirm_applied(self, session: Session, cred_name: str) -> RotationResult:
        """The applier confirms the target now has the pending value: promote it."""
        with self.store.transaction() as txn:
            self._require_active(txn, session)
            cred = self._credential_doc(txn, cred_name)
            sealed = txn.table("sealed").get(cred["id"])
            pending = (sealed or {}).get("pending")
            if not sealed or not pending:
                raise PolicyError(f"{cred_name} has no rotation waiting to be confirmed")
            if pending.get("holder") == session.name:
                raise PolicyError("the holder of the last checkout cannot confirm its rotation")
            if "apply" in pending and session.name not in pending.get("apply_revealed_to", []):
                raise PolicyError(f"{session.name} has not fetched the value to apply "
                                  f"('glasskey apply {cred_name}')")
            self._promote(txn, session, cred, sealed, {"applied_by": session.name})
            return RotationResult(cred_name, "committed", int(cred["version"]))

    # -- reconciliation -----------------------------------------------------------------
    def pending_rotations(self) -> list[tuple[str, str, int]]:
        """(credential name, id, pending version) of every unfinished intent."""
        with self.store.read() as txn:
            out = []
            for sdoc in txn.table("sealed").values():
                if sdoc.get("pending"):
                    cred = txn.table("credentials").get(sdoc["cred_id"])
                    name = cred["name"] if cred else sdoc["cred_id"]
                    out.append((name, sdoc["cred_id"], int(sdoc["pending"]["version"])))
            return sorted(out)

    def reconcile(self, session: Session, cred_name: str, *, fresh: bool = False
                  ) -> RotationResult:
        """Finish an unfinished rotation; with ``fresh``, roll it back and start anew.

        Rolling back is safe only when the target provably still accepts the
        current value (or the vault is the source of truth): otherwise the
        pending value may be the one the target has, and discarding it could
        lock everyone out.
        """
        cred_id = self.cred_id_for(cred_name)
        with self.store.read() as txn:
            cred = self._checked_config(txn, self._credential_doc(txn, cred_name))
            active = txn.table("active").get(cred_id)
            sealed = txn.table("sealed").get(cred_id)
            roster = txn.roster
        req_id = active["request"] if active else None
        if sealed is None or not sealed.get("pending"):
            return RotationResult(cred_name, "nothing-to-do", int(cred["version"]))
        if fresh:
            self._roll_back(session, cred, sealed, req_id, roster)
        return self.rotate(session, cred_id, req_id, reason="reconcile")

    def _roll_back(self, session: Session, cred: dict[str, Any], sealed: dict[str, Any],
                   req_id: str | None, roster: Roster) -> None:
        connector = self.connector_for(cred, roster)
        if not connector.vault_is_source_of_truth:
            req = None
            if req_id:
                with self.store.read() as txn:
                    req = txn.table("requests").get(req_id)
            pending = sealed["pending"]
            new, old = self._open_resume(session, cred["id"], pending)
            old = old or self._current_value(session, req, sealed["current"])
            try:
                if new is not None and connector.verify(new):
                    raise PolicyError("the target already accepts the pending value; "
                                      "reconcile without --fresh to commit it")
                if old is None or not connector.verify(old):
                    raise PolicyError("cannot prove the target still accepts the current "
                                      "value, so the pending one must not be discarded")
            except ConnectorError as exc:
                raise PolicyError(f"cannot reach the target to check: {exc}") from None
        with self.store.transaction() as txn:
            fresh_sealed = txn.table("sealed").get(cred["id"])
            if not fresh_sealed or not fresh_sealed.get("pending"):
                return
            dropped = int(fresh_sealed["pending"]["version"])
            fresh_sealed["pending"] = None
            txn.table("sealed").put(cred["id"], fresh_sealed)
            txn.record(session.signer, "rotate.rollback", cred["name"],
                       {"dropped_version": dropped, "request": req_id})

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
                cred_id = self.cred_id_for(name)
                with self.store.read() as txn:
                    self._credential_doc(txn, name)
                    busy = txn.table("active").get(cred_id)
                if busy:
                    results.append(RotationResult(name, "skipped", 0,
                                                  f"open checkout {busy['request']}"))
                else:
                    results.append(self.rotate(session, cred_id, None, reason="sweep"))
            except GlasskeyError as exc:
                results.append(RotationResult(name, "failed", 0, str(exc)))
            if progress:
                progress(i, len(names))
        return results


