"""Lookups and roster checks every service makes inside a transaction.

Plain functions over a ``Transaction``: a record by name or id, the current
share holders, the two-person rule, and the signatures a share set or a
credential's configuration must carry before anyone opens or re-seals it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from glasskey.core.canonical import b64d
from glasskey.core.envelope import Recipient, add_share, open_own_share, recover_dek
from glasskey.core.errors import NotFoundError, PolicyError
from glasskey.core.roster import Member, sign_seal, verify_config, verify_seal
from glasskey.core.session import Session
from glasskey.core.storage.interface import Transaction


def operator_doc(txn: Transaction, name: str) -> dict[str, Any]:
    doc = txn.table("operators").get(name)
    if doc is None:
        raise NotFoundError(f"there is no operator named {name!r}")
    return doc


def credential_doc(txn: Transaction, cred_id: str, name: str) -> dict[str, Any]:
    """The credential ``name`` (whose id is ``cred_id``, see VaultContext.cred_id_for)."""
    doc = txn.table("credentials").get(cred_id)
    if doc is None or doc.get("name") != name:
        raise NotFoundError(f"there is no credential named {name!r}")
    return doc


def request_doc(txn: Transaction, req_id: str) -> dict[str, Any]:
    doc = txn.table("requests").get(req_id)
    if doc is None:
        raise NotFoundError(f"there is no request {req_id!r}")
    return doc


def recipients(txn: Transaction) -> list[Recipient]:
    """Every share holder, as the *signed roster* says: active, enrolling and
    suspended operators, and the active emergency kit.

    Keys never come from the operator records in the store (an operator
    with write access could swap one for their own); the roster is folded
    from signatures each client verified (core/roster.py). Suspended
    operators keep receiving shares (suspension is reversible and their
    approvals stop counting at once); removed operators never do.
    """
    out = [
        Recipient(m.id, m.x, b64d(m.hpke_pub))
        for m in txn.roster.members.values()
        if m.status in ("active", "enrolling", "suspended")
    ]
    kit = txn.roster.active_kit()
    if kit is not None:
        out.append(Recipient(kit.id, kit.x, b64d(kit.hpke_pub)))
    return out


def require_active(txn: Transaction, session: Session, role: str | None = None) -> Member:
    """Re-check, inside the transaction and against the signed roster, that the
    session's operator may act now (roles and status are never read from flags)."""
    return txn.roster.require(session.name, session.operator_id, role)


def two_people(txn: Transaction, sessions: Sequence[Session], what: str,
               exclude: str | None = None) -> list[tuple[str, bytes]]:
    """Signers for a two-person roster change, checked against the signed roster."""
    distinct = {s.name: s for s in sessions if s.name != exclude}
    if len(distinct) < 2:
        raise PolicyError(f"{what} needs two different unlocked operators")
    members = [require_active(txn, s) for s in distinct.values()]
    if not any(m.has("admin") for m in members):
        raise PolicyError(f"{what} needs an admin among the operators")
    return [(s.name, s.sign_priv) for s in distinct.values()]


def seal(txn: Transaction, session: Session, cred_id: str,
         vdoc: dict[str, Any]) -> dict[str, Any]:
    """Sign a share set as sealed by ``session`` (binding every recipient's key)."""
    sign_seal(txn.roster, cred_id, vdoc, session.name, session.sign_priv)
    return vdoc


def checked(txn: Transaction, cred_id: str, vdoc: dict[str, Any], what: str
            ) -> dict[str, Any]:
    """A share set, verified before anyone opens or re-seals it."""
    verify_seal(txn.roster, cred_id, vdoc, what)
    return vdoc


def checked_config(txn: Transaction, cred: dict[str, Any]) -> dict[str, Any]:
    """A credential whose connector/target/options/policy/kind an admin signed."""
    verify_config(txn.roster, cred)
    return cred


def extend_shares(vault_id: str, txn: Transaction, sessions: Sequence[Session],
                  recipient: Recipient, progress: Callable[[int, int], None] | None) -> None:
    """Give ``recipient`` a share of every credential version (same polynomial).

    The unlocked operators' shares are checked against the DEK commitment
    first; the new share is a new point on the existing polynomial, so no
    other holder's share changes (operator enrolment, emergency kits).
    """
    sealed = txn.table("sealed")
    docs = list(sealed.values())
    for i, sdoc in enumerate(docs, 1):
        cred_id = sdoc["cred_id"]
        for slot in ("current", "pending"):
            vdoc = sdoc.get(slot)
            if not vdoc:
                continue
            k = int(vdoc["k"])
            usable = [s for s in sessions if s.operator_id in vdoc["shares"]][:k]
            if len(usable) < k:
                raise PolicyError(
                    f"a credential needs {k} unlocked operators to extend its key split; "
                    f"{len(usable)} are present")
            checked(txn, cred_id, vdoc, f"credential {cred_id}")
            shares = [open_own_share(vault_id, cred_id, vdoc, s.operator_id, s.hpke_priv)
                      for s in usable]
            recover_dek(vault_id, cred_id, vdoc, shares)  # commitment check
            sdoc[slot] = seal(txn, sessions[0], cred_id,
                              add_share(vault_id, cred_id, vdoc, shares, recipient))
        sealed.put(cred_id, sdoc)
        if progress:
            progress(i, len(docs))
