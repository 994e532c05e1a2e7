"""Removing an operator: re-split every data key without them, then sweep.

Suspension stops someone acting; removal also takes away their share. Every
credential version is re-split with a *fresh* polynomial among the remaining
share holders, so a share the leaver kept (a backup of the vault, their own
key) no longer combines with anyone's current share. What they could have
decrypted before (old versions, with a colluder) is worthless only once it is
rotated: ``remove_operator`` returns every credential the leaver could reach,
and the CLI offers the "leaver sweep" that rotates them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.envelope import open_own_share, recover_dek, reseal_for
from core.errors import PolicyError, UsageError
from core.models import CheckoutState
from core.rotation import RotationOps
from core.session import Session

S = CheckoutState


class OffboardingOps(RotationOps):
    def remove_operator(self, sessions: Sequence[Session], name: str,
                        progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Re-split every DEK without ``name``; return the credentials they could reach."""
        if name in {s.name for s in sessions}:
            raise PolicyError("an operator cannot take part in their own removal")
        if len({s.name for s in sessions}) < 2:
            raise PolicyError("removing an operator needs two other unlocked operators")
        reachable: list[str] = []
        with self.store.transaction() as txn:
            for s in sessions:
                self._require_active(txn, s)
            if not any(s.has("admin") for s in sessions):
                raise PolicyError("removing an operator needs an admin")
            leaver = self._operator_doc(txn, name)
            if leaver["status"] == "removed":
                raise UsageError(f"operator {name} was already removed")
            left = [d for d in txn.table("operators").values()
                    if d["name"] != name and d["status"] == "active"]
            if len(left) < 2:
                raise PolicyError("removal would leave fewer than two active operators")
            leaver["status"] = "removed"
            leaver["removed_at"] = self.now()
            txn.table("operators").put(name, leaver)
            recipients = self._recipients(txn)  # now without the leaver
            sealed = txn.sharded("sealed")
            docs = list(sealed.values())
            for i, sdoc in enumerate(docs, 1):
                cred_id = sdoc["cred_id"]
                touched = False
                for slot in ("current", "pending"):
                    vdoc = sdoc.get(slot)
                    if not vdoc:
                        continue
                    if leaver["id"] in vdoc["shares"]:
                        touched = True
                    k = int(vdoc["k"])
                    usable = [s for s in sessions if s.operator_id in vdoc["shares"]][:k]
                    if len(usable) < k:
                        raise PolicyError(f"a credential needs {k} unlocked operators to be "
                                          f"re-split; {len(usable)} are present")
                    shares = [open_own_share(self.vault_id, cred_id, vdoc, s.operator_id,
                                             s.hpke_priv) for s in usable]
                    dek = recover_dek(self.vault_id, cred_id, vdoc, shares)
                    new = reseal_for(self.vault_id, cred_id, vdoc, dek, recipients, self.rng)
                    if (vdoc.get("resume") or {}).get("operator") == leaver["id"]:
                        new.pop("resume", None)
                    if "apply" in new:
                        new["apply"] = {k2: v for k2, v in new["apply"].items()
                                        if k2 != leaver["id"]}
                    sdoc[slot] = new
                sealed.put(cred_id, sdoc)
                if touched:
                    cred = txn.sharded("credentials").get(cred_id)
                    if cred is not None and cred["status"] != "revoked":
                        reachable.append(cred["name"])
                if progress:
                    progress(i, len(docs))
            # the leaver's open requests end; their approvals stop counting by status
            for _cred, entry in txn.table("active").items():
                req = txn.sharded("requests").get(entry["request"])
                if req and req["requester"] == name and req["state"] in (
                        S.REQUESTED, S.APPROVED):
                    self._close(txn, req, "requester-removed")
            txn.record(sessions[0].signer, "operator.removed", name, {
                "countersigned_by": sorted(s.name for s in sessions),
                "resplit": len(docs), "reachable": len(reachable),
            })
        return sorted(reachable)
