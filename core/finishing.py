"""Rotations someone finishes later: a manual target's new value, applied by a person,
and an unfinished intent, reconciled (core/rotation.py describes the two phases).

For a manual target the new value waits, sealed to each active operator other
than the holder; one of them fetches it (``glasskey apply``), sets it on the
target and confirms. An intent whose second phase never ran (a crash, a target
that was down) is finished by ``reconcile``, or rolled back with ``fresh``
when the target provably still accepts the current value.
"""

from __future__ import annotations

from typing import Any

from glasskey.core.canonical import b64d
from glasskey.core.context import Service, VaultContext
from glasskey.core.crypto import hpke
from glasskey.core.errors import ConnectorError, PolicyError
from glasskey.core.lookups import checked_config, require_active
from glasskey.core.models import RotationOutcome
from glasskey.core.roster import Roster
from glasskey.core.rotation import RotationResult, RotationService
from glasskey.core.rotation_values import apply_info, current_value, open_resume
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.storage.interface import Refused


class RotationFinisher(Service):
    """``apply`` / ``apply --confirm`` for manual targets; ``reconcile`` for intents."""

    def __init__(self, ctx: VaultContext, rotation: RotationService) -> None:
        super().__init__(ctx)
        self.rotation = rotation

    # -- manual targets --------------------------------------------------------------------
    def reveal_apply(self, session: Session, cred_name: str) -> SecretValue:
        """Show a manual credential's pending value to the operator who will apply it."""
        with self.store.transaction() as txn:
            require_active(txn, session)
            cred = self.find_credential(txn, cred_name)
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
            value = SecretValue(hpke.open_(session.hpke_priv, b64d(blob), apply_info(
                self.vault_id, cred["id"], int(pending["version"]), session.operator_id)))
            if session.name not in pending.setdefault("apply_revealed_to", []):
                pending["apply_revealed_to"].append(session.name)
                txn.table("sealed").put(cred["id"], sealed)
            txn.record(session.signer, "rotate.apply-revealed", cred_name,
                       {"version": int(pending["version"])})
        return value

    def confirm_applied(self, session: Session, cred_name: str) -> RotationResult:
        """The applier confirms the target now has the pending value: promote it."""
        with self.store.transaction() as txn:
            require_active(txn, session)
            cred = self.find_credential(txn, cred_name)
            sealed = txn.table("sealed").get(cred["id"])
            pending = (sealed or {}).get("pending")
            if not sealed or not pending:
                raise PolicyError(f"{cred_name} has no rotation waiting to be confirmed")
            if pending.get("holder") == session.name:
                raise PolicyError("the holder of the last checkout cannot confirm its rotation")
            if "apply" in pending and session.name not in pending.get("apply_revealed_to", []):
                raise PolicyError(f"{session.name} has not fetched the value to apply "
                                  f"('glasskey apply {cred_name}')")
            self.rotation.promote(txn, session, cred, sealed, {"applied_by": session.name})
            return RotationResult(cred_name, RotationOutcome.COMMITTED, int(cred["version"]))

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
        cred_id = self.ctx.cred_id_for(cred_name)
        with self.store.read() as txn:
            cred = checked_config(txn, self.find_credential(txn, cred_name))
            active = txn.table("active").get(cred_id)
            sealed = txn.table("sealed").get(cred_id)
            roster = txn.roster
        req_id = active["request"] if active else None
        if sealed is None or not sealed.get("pending"):
            return RotationResult(cred_name, RotationOutcome.NOTHING_TO_DO, int(cred["version"]))
        if fresh:
            self._roll_back(session, cred, sealed, req_id, roster)
        return self.rotation.rotate(session, cred_id, req_id, reason="reconcile")

    def _roll_back(self, session: Session, cred: dict[str, Any], sealed: dict[str, Any],
                   req_id: str | None, roster: Roster) -> None:
        connector = self.rotation.connector_for(cred, roster)
        if not connector.vault_is_source_of_truth:
            req = None
            if req_id:
                with self.store.read() as txn:
                    req = txn.table("requests").get(req_id)
            pending = sealed["pending"]
            new, old = open_resume(self.vault_id, session, cred["id"], pending)
            old = old or current_value(self.vault_id, session, req, sealed["current"])
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
