"""Two-phase, crash-safe rotation after use.

Phase 1 (one transaction): a new value is generated to the credential's
policy, sealed as the *pending* version (fresh DEK, fresh shares for every
operator) and a ``rotate.intent`` audit entry is written. Nothing has touched
the target yet, so a crash here leaves the old value working and the pending
one ready to retry.

Phase 2: the connector sets the pending value on the target and verifies it
by a real login; only a verified value is promoted (``rotate.commit``) and
the old version discarded. A failure keeps both old and pending, marks the
credential ROTATION-FAILED (blocking new checkouts) and tells the operator.

Reconciliation (at check-in retry, sweep or by hand) finishes an unfinished
intent: the pending value is tried first, then the old one, against the
target; the intent is then committed, retried or rolled back.

Only the process that performs a rotation sees the new value (it has to give
it to the target). For targets outside the vault, a copy of the pending value
is sealed to the rotating operator alone so that *their* next process can
finish the rotation after a crash; it is deleted at commit. SECURITY.md
explains this residual exposure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.canonical import b64d, b64e
from core.checkout import CheckoutOps
from core.connectors import registry
from core.connectors.base import Connector, ConnectorSettings
from core.crypto import hpke
from core.envelope import (
    decrypt_secret,
    grant_info,
    open_grant,
    open_own_share,
    recover_dek,
    seal_version,
)
from core.errors import ConnectorError, DecryptError, IntegrityError, PolicyError
from core.models import CheckoutState, Policy
from core.passwords import generate
from core.secret import SecretValue
from core.session import Session
from core.store import Transaction

S = CheckoutState
RESUME_LABEL = "glasskey/rotation-resume/v1"

#: Site configuration lookup for connectors (set by the vault from its config file).
SiteLookup = Callable[[str], dict[str, str]]


@dataclass(frozen=True)
class RotationResult:
    credential: str
    outcome: str  # committed | failed | rolled-back | nothing-to-do
    version: int
    message: str = ""


class RotationOps(CheckoutOps):
    site_config: SiteLookup = staticmethod(lambda name: {})  # type: ignore[assignment]

    def connector_for(self, cred: dict[str, Any]) -> Connector:
        settings = ConnectorSettings(
            credential=cred["name"], target=cred.get("target"),
            options=dict(cred.get("options", {})), site=self.site_config(cred["connector"]),
        )
        return registry.make(cred["connector"], settings)

    def _resume_info(self, cred_id: str, version: int, operator_id: str) -> bytes:
        return hpke.info_for(RESUME_LABEL, self.vault_id, cred_id, version, operator_id)

    def _current_value(self, txn: Transaction, session: Session, req: dict[str, Any] | None,
                       vdoc: dict[str, Any]) -> SecretValue | None:
        """The value the target has now, if this session may know it (the holder)."""
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
        """End a checkout and rotate. Idempotent: re-running resumes an interrupted one."""
        with self.store.transaction() as txn:
            self._require_active(txn, session)
            req = self._request_doc(txn, req_id)
            if req["requester"] != session.name and not (
                    session.has("approver") or session.has("admin")):
                raise PolicyError("only the holder, an approver or an admin can check in")
            if req["state"] == S.CLOSED:
                raise PolicyError(f"checkout {req_id} is already closed")
            if req["state"] not in (S.CHECKED_OUT, S.ROTATING, S.ROTATION_FAILED):
                raise PolicyError(
                    f"request {req_id} is {req['state']}; only a revealed checkout is checked "
                    "in (use 'cancel' for one that was never revealed)")
            if req["state"] == S.CHECKED_OUT:
                req["ended_at"] = self.now()
                req["end_reason"] = "checkin"
                req["checked_in_by"] = session.name
                self._save(txn, req)
                txn.record(session.signer, "checkout.checked-in", req_id, {
                    "credential": req["cred_name"], "held_for": int(
                        self.now() - float(req.get("revealed_at") or self.now())),
                    "by": session.name,
                })
        return self.rotate(session, req["cred_id"], req_id, reason="checkin")

    # -- rotation -------------------------------------------------------------------------
    def rotate(self, session: Session, cred_id: str, req_id: str | None,
               reason: str) -> RotationResult:
        connector, new_value, version, current = self._phase_one(session, cred_id, req_id,
                                                                 reason)
        return self._phase_two(session, cred_id, req_id, connector, new_value, version, current)

    def _phase_one(self, session: Session, cred_id: str, req_id: str | None, reason: str
                   ) -> tuple[Connector, SecretValue | None, int, SecretValue | None]:
        with self.store.transaction() as txn:
            cred = txn.sharded("credentials").get(cred_id)
            sealed = txn.sharded("sealed").get(cred_id)
            if cred is None or sealed is None:
                raise IntegrityError(f"credential {cred_id} has no sealed versions")
            connector = self.connector_for(cred)
            req = self._request_doc(txn, req_id) if req_id else None
            current = self._current_value(txn, session, req, sealed["current"])
            pending = sealed.get("pending")
            new_value: SecretValue | None = None
            if pending is None:
                policy = Policy.from_doc(cred["policy"])
                new_value = generate(policy)
                version = int(sealed["current"]["version"]) + 1
                pending = seal_version(self.vault_id, cred_id, version, new_value, policy.k,
                                       self._recipients(txn), self.rng, self.now())
                if not connector.vault_is_source_of_truth:
                    pending["resume"] = {
                        "operator": session.operator_id,
                        "blob": b64e(hpke.seal(hpke.public_from_private(session.hpke_priv),
                                               new_value.encode(),
                                               self._resume_info(cred_id, version,
                                                                 session.operator_id))),
                    }
                pending["intent_by"] = session.name
                pending["reason"] = reason
                sealed["pending"] = pending
                txn.sharded("sealed").put(cred_id, sealed)
                txn.record(session.signer, "rotate.intent", cred["name"], {
                    "from_version": int(sealed["current"]["version"]), "to_version": version,
                    "connector": cred["connector"], "reason": reason, "request": req_id,
                })
            else:
                version = int(pending["version"])
                new_value = self._resume_value(session, cred_id, pending)
            if req is not None and req["state"] != S.ROTATING:
                req["state"] = S.ROTATING
                self._save(txn, req)
        return connector, new_value, version, current

    def _resume_value(self, session: Session, cred_id: str, pending: dict[str, Any]
                      ) -> SecretValue | None:
        resume = pending.get("resume")
        if not resume or resume.get("operator") != session.operator_id:
            return None
        try:
            raw = hpke.open_(session.hpke_priv, b64d(resume["blob"]),
                             self._resume_info(cred_id, int(pending["version"]),
                                               session.operator_id))
        except DecryptError:
            return None
        return SecretValue(raw)

    def _phase_two(self, session: Session, cred_id: str, req_id: str | None,
                   connector: Connector, new_value: SecretValue | None, version: int,
                   current: SecretValue | None) -> RotationResult:
        error = ""
        if not connector.vault_is_source_of_truth:
            try:
                if new_value is None:
                    raise ConnectorError(
                        "the pending value can only be applied by the operator who started "
                        "this rotation")
                if not connector.verify(new_value):
                    connector.set(current, new_value)
                    if not connector.verify(new_value):
                        raise ConnectorError("the target did not accept the new value")
                if current is not None and not connector.verify_rejected(current):
                    raise ConnectorError("the target still accepts the old value")
            except ConnectorError as exc:
                error = str(exc)
        with self.store.transaction() as txn:
            cred = txn.sharded("credentials").get(cred_id)
            sealed = txn.sharded("sealed").get(cred_id)
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
                txn.sharded("credentials").put(cred_id, cred)
                if req is not None:
                    req["state"] = S.ROTATION_FAILED
                    req["rotation"] = {"outcome": "failed", "error": error, "at": self.now()}
                    self._save(txn, req)
                txn.record(session.signer, "rotate.failed", cred["name"], {
                    "to_version": version, "error": error, "request": req_id,
                })
                return RotationResult(cred["name"], "failed", int(cred["version"]), error)
            pending.pop("resume", None)
            pending.pop("intent_by", None)
            pending.pop("reason", None)
            sealed["current"] = pending
            sealed["pending"] = None
            txn.sharded("sealed").put(cred_id, sealed)
            cred["version"] = version
            cred["status"] = "active"
            cred["failure"] = ""
            cred["rotated_at"] = self.now()
            cred["rotations"] = int(cred.get("rotations", 0)) + 1
            txn.sharded("credentials").put(cred_id, cred)
            txn.record(session.signer, "rotate.commit", cred["name"], {
                "version": version, "connector": cred["connector"], "request": req_id,
            })
            if req is not None:
                self._finish_request(txn, req, "committed", version)
            return RotationResult(cred["name"], "committed", version)

    def _finish_request(self, txn: Transaction, req: dict[str, Any], outcome: str,
                        version: int) -> None:
        req["rotation"] = {"outcome": outcome, "version": version, "at": self.now()}
        req["review"] = req.get("review") or {"status": "pending"}
        self._close(txn, req, req.get("end_reason") or "returned")

    # -- reconciliation -----------------------------------------------------------------
    def pending_rotations(self) -> list[tuple[str, str, int]]:
        """(credential name, id, pending version) of every unfinished intent."""
        with self.store.read() as txn:
            out = []
            for sdoc in txn.sharded("sealed").values():
                if sdoc.get("pending"):
                    cred = txn.sharded("credentials").get(sdoc["cred_id"])
                    name = cred["name"] if cred else sdoc["cred_id"]
                    out.append((name, sdoc["cred_id"], int(sdoc["pending"]["version"])))
            return sorted(out)

    def reconcile(self, session: Session, cred_name: str) -> RotationResult:
        """Finish or roll back an unfinished rotation of one credential."""
        cred_id = self.cred_id_for(cred_name)
        with self.store.read() as txn:
            active = txn.table("active").get(cred_id)
            sealed = txn.sharded("sealed").get(cred_id)
        if sealed is None or not sealed.get("pending"):
            return RotationResult(cred_name, "nothing-to-do", int(sealed["current"]["version"])
                                  if sealed else 0)
        req_id = active["request"] if active else None
        return self.rotate(session, cred_id, req_id, reason="reconcile")
