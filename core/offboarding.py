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

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from glasskey.core.clock import Random, SystemRandom
from glasskey.core.context import Service, VaultContext
from glasskey.core.envelope import Recipient, open_own_share, recover_dek, reseal_for
from glasskey.core.errors import NotFoundError, PolicyError, UsageError
from glasskey.core.lookups import checked, recipients, seal, two_people
from glasskey.core.models import CheckoutState, CredentialStatus, OperatorStatus
from glasskey.core.requests import Requests
from glasskey.core.roster import Change, change_details
from glasskey.core.session import Session

S = CheckoutState


PARALLEL_FROM = 1000  # sealed documents; below this one process is quicker


def resplit_doc(vault_id: str, sdoc: dict[str, Any], keys: list[tuple[str, bytes]],
                recipients: list[Recipient], leaver_id: str, rng: Random
                ) -> tuple[str, dict[str, Any], bool]:
    """One credential's versions re-split among ``recipients`` (fresh polynomials)."""
    cred_id = sdoc["cred_id"]
    sdoc = dict(sdoc)
    touched = False
    for slot in ("current", "pending"):
        vdoc = sdoc.get(slot)
        if not vdoc:
            continue
        touched = touched or leaver_id in vdoc["shares"]
        k = int(vdoc["k"])
        usable = [(op, priv) for op, priv in keys if op in vdoc["shares"]][:k]
        if len(usable) < k:
            raise PolicyError(f"a credential needs {k} unlocked operators to be re-split; "
                              f"{len(usable)} are present")
        shares = [open_own_share(vault_id, cred_id, vdoc, op, priv) for op, priv in usable]
        dek = recover_dek(vault_id, cred_id, vdoc, shares)
        new = reseal_for(vault_id, cred_id, vdoc, dek, recipients, rng)
        if (vdoc.get("resume") or {}).get("operator") == leaver_id:
            new.pop("resume", None)
        if "apply" in new:
            new["apply"] = {op: blob for op, blob in new["apply"].items() if op != leaver_id}
        sdoc[slot] = new
    return cred_id, sdoc, touched


def _resplit_chunk(args: tuple[str, list[dict[str, Any]], list[tuple[str, bytes]],
                               list[Recipient], str]) -> list[tuple[str, dict[str, Any], bool]]:
    vault_id, docs, keys, recipients, leaver_id = args
    rng = SystemRandom()
    return [resplit_doc(vault_id, d, keys, recipients, leaver_id, rng) for d in docs]


class OffboardingService(Service):
    """Removing an operator: a fresh key split without them."""

    def __init__(self, ctx: VaultContext, requests: Requests) -> None:
        super().__init__(ctx)
        self.requests = requests

    def _resplit_all(self, docs: list[dict[str, Any]], keys: list[tuple[str, bytes]],
                     recipients: list[Recipient], leaver_id: str
                     ) -> Iterator[tuple[str, dict[str, Any], bool]]:
        """Re-split every document; on large vaults across all cores (HPKE dominates)."""
        workers = os.cpu_count() or 1
        if len(docs) < PARALLEL_FROM or workers < 2:
            for d in docs:
                yield resplit_doc(self.vault_id, d, keys, recipients, leaver_id, self.ctx.rng)
            return
        size = max(100, len(docs) // (workers * 8))
        chunks = [(self.vault_id, docs[i:i + size], keys, recipients, leaver_id)
                  for i in range(0, len(docs), size)]
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for result in pool.map(_resplit_chunk, chunks):
                yield from result

    def remove_operator(self, sessions: Sequence[Session], name: str,
                        progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Re-split every DEK without ``name``; return the credentials they could reach."""
        if name in {s.name for s in sessions}:
            raise PolicyError("an operator cannot take part in their own removal")
        if len({s.name for s in sessions}) < 2:
            raise PolicyError("removing an operator needs two other unlocked operators")
        reachable: list[str] = []
        with self.store.transaction() as txn:
            signers = two_people(txn, sessions, "removing an operator", exclude=name)
            member = txn.roster.get(name)
            if member is None:
                raise NotFoundError(f"there is no operator named {name!r}")
            if member.status == OperatorStatus.REMOVED:
                raise UsageError(f"operator {name} was already removed")
            left = [m for m in txn.roster.members.values() if m.name != name and m.active]
            if len(left) < 2:
                raise PolicyError("removal would leave fewer than two active operators")
            details, roster = change_details(
                txn.roster, Change.REMOVE, name, member.record(), signers,
                {"countersigned_by": sorted(n for n, _ in signers)})
            txn.roster = roster  # sealing below goes to the roster without the leaver
            leaver = txn.table("operators").get(name)
            if leaver is not None:
                leaver["status"] = OperatorStatus.REMOVED
                leaver["removed_at"] = self.now()
                txn.table("operators").put(name, leaver)
            holders = recipients(txn)  # now without the leaver
            sealed = txn.table("sealed")
            docs = list(sealed.values())
            for sdoc in docs:
                for slot in ("current", "pending"):
                    if sdoc.get(slot):
                        checked(txn, sdoc["cred_id"], sdoc[slot],
                                      f"credential {sdoc['cred_id']}")
            keys = [(s.operator_id, s.hpke_priv) for s in sessions]
            signer = next(s for s in sessions if s.name == signers[0][0])
            for i, (cred_id, new_doc, touched) in enumerate(self._resplit_all(
                    docs, keys, holders, member.id), 1):
                for slot in ("current", "pending"):
                    if new_doc.get(slot):
                        seal(txn, signer, cred_id, new_doc[slot])
                sealed.put(cred_id, new_doc)
                if touched:
                    cred = txn.table("credentials").get(cred_id)
                    if cred is not None and cred["status"] != CredentialStatus.REVOKED:
                        reachable.append(cred["name"])
                if progress:
                    progress(i, len(docs))
            # the leaver's open requests end; their approvals stop counting by status
            for _cred, entry in txn.table("active").items():
                req = txn.table("requests").get(entry["request"])
                if req and req["requester"] == name and req["state"] in (
                        S.REQUESTED, S.APPROVED):
                    self.requests.close(txn, req, "requester-removed")
            details.update(resplit=len(docs), reachable=len(reachable))
            txn.record_change(signer.signer, "operator.removed", name, details, roster)
        return sorted(reachable)
