"""What every vault service shares: the store, time, randomness and lookups."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import platformdirs
from glasskey.core.canonical import b64d
from glasskey.core.clock import Clock, Random, SystemClock, SystemRandom
from glasskey.core.envelope import Recipient, add_share, open_own_share, recover_dek
from glasskey.core.errors import NotFoundError, PolicyError
from glasskey.core.models import Checkout, Credential, Operator
from glasskey.core.roster import Member, sign_seal, verify_config, verify_seal
from glasskey.core.session import Session
from glasskey.core.storage import open_store
from glasskey.core.storage.interface import Store, Transaction


def default_vault_dir() -> Path:
    env = os.environ.get("GLASSKEY_VAULT")
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("glasskey")) / "vault"


def weak_kdf_allowed() -> bool:
    """Tests and benchmarks may use tiny Argon2id parameters; never a vault file."""
    return os.environ.get("GLASSKEY_INSECURE_FAST_KDF") == "1"


class VaultBase:
    """State and helpers shared by the operator, credential, checkout and rotation services."""

    def __init__(self, root: Path | str | Store, clock: Clock | None = None,
                 rng: Random | None = None, *, lock_timeout: float = 10.0) -> None:
        """``root`` is a vault directory or a ``postgresql://`` URL (opened by
        core/storage.open_store) or any ``Store`` (core/storage/interface.py): the
        services never build one."""
        self.store: Store = root if not isinstance(root, (str, Path)) \
            else open_store(root, lock_timeout=lock_timeout)
        self.root = Path(self.store.root)
        self.clock: Clock = clock or SystemClock()
        self.rng: Random = rng or SystemRandom()
        self.store.now = self.clock.now
        self.allow_weak_kdf = weak_kdf_allowed()
        self._vault_id: str | None = None

    # -- identity -----------------------------------------------------------------
    @property
    def vault_id(self) -> str:
        if self._vault_id is None:
            with self.store.read() as txn:
                self._vault_id = str(txn.meta["vault_id"])
        return self._vault_id

    def now(self) -> float:
        return self.clock.now()

    def new_id(self, prefix: str) -> str:
        alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
        raw = self.rng.bytes(10)
        return prefix + "".join(alphabet[b % len(alphabet)] for b in raw)

    def cred_id_for(self, name: str) -> str:
        return "c" + hashlib.sha256(f"{self.vault_id}\x00{name}".encode()).hexdigest()[:20]

    # -- lookups inside a transaction ------------------------------------------------
    def _operator_doc(self, txn: Transaction, name: str) -> dict[str, Any]:
        doc = txn.table("operators").get(name)
        if doc is None:
            raise NotFoundError(f"there is no operator named {name!r}")
        return doc

    def _credential_doc(self, txn: Transaction, name: str) -> dict[str, Any]:
        doc = txn.table("credentials").get(self.cred_id_for(name))
        if doc is None or doc.get("name") != name:
            raise NotFoundError(f"there is no credential named {name!r}")
        return doc

    def _request_doc(self, txn: Transaction, req_id: str) -> dict[str, Any]:
        doc = txn.table("requests").get(req_id)
        if doc is None:
            raise NotFoundError(f"there is no request {req_id!r}")
        return doc

    def _recipients(self, txn: Transaction) -> list[Recipient]:
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

    def _require_active(self, txn: Transaction, session: Session,
                        role: str | None = None) -> Member:
        """Re-check, inside the transaction and against the signed roster, that the
        session's operator may act now (roles and status are never read from flags)."""
        return txn.roster.require(session.name, session.operator_id, role)

    def _two_people(self, txn: Transaction, sessions: Sequence[Session], what: str,
                    exclude: str | None = None) -> list[tuple[str, bytes]]:
        """Signers for a two-person roster change, checked against the signed roster."""
        distinct = {s.name: s for s in sessions if s.name != exclude}
        if len(distinct) < 2:
            raise PolicyError(f"{what} needs two different unlocked operators")
        members = [self._require_active(txn, s) for s in distinct.values()]
        if not any(m.has("admin") for m in members):
            raise PolicyError(f"{what} needs an admin among the operators")
        return [(s.name, s.sign_priv) for s in distinct.values()]

    def _seal(self, txn: Transaction, session: Session, cred_id: str,
              vdoc: dict[str, Any]) -> dict[str, Any]:
        """Sign a share set as sealed by ``session`` (binding every recipient's key)."""
        sign_seal(txn.roster, cred_id, vdoc, session.name, session.sign_priv)
        return vdoc

    def _checked(self, txn: Transaction, cred_id: str, vdoc: dict[str, Any], what: str
                 ) -> dict[str, Any]:
        """A share set, verified before anyone opens or re-seals it."""
        verify_seal(txn.roster, cred_id, vdoc, what)
        return vdoc

    def _checked_config(self, txn: Transaction, cred: dict[str, Any]) -> dict[str, Any]:
        """A credential whose connector/target/options/policy/kind an admin signed."""
        verify_config(txn.roster, cred)
        return cred

    def _extend_shares(self, txn: Transaction, sessions: Sequence[Session],
                       recipient: Recipient,
                       progress: Callable[[int, int], None] | None) -> None:
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
                self._checked(txn, cred_id, vdoc, f"credential {cred_id}")
                shares = [open_own_share(self.vault_id, cred_id, vdoc, s.operator_id,
                                         s.hpke_priv) for s in usable]
                recover_dek(self.vault_id, cred_id, vdoc, shares)  # commitment check
                sdoc[slot] = self._seal(txn, sessions[0], cred_id,
                                        add_share(self.vault_id, cred_id, vdoc, shares,
                                                  recipient))
            sealed.put(cred_id, sdoc)
            if progress:
                progress(i, len(docs))

    # -- read views (no authentication: nothing a reader of the files lacks) ----------
    def operators(self) -> list[Operator]:
        """The operators the signed roster knows (records nobody signed are never listed)."""
        with self.store.read() as txn:
            docs = {d["name"]: d for d in txn.table("operators").values()}
            return [Operator.from_member(m, docs.get(m.name))
                    for m in txn.roster.members.values()]

    def credentials(self) -> list[Credential]:
        with self.store.read() as txn:
            docs = list(txn.table("credentials").values())
        return sorted((Credential.from_doc(d) for d in docs), key=lambda c: c.name)

    def credential(self, name: str) -> Credential:
        with self.store.read() as txn:
            return Credential.from_doc(self._credential_doc(txn, name))

    def checkout(self, req_id: str) -> Checkout:
        with self.store.read() as txn:
            return Checkout.from_doc(self._request_doc(txn, req_id))

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

    def seq(self) -> int:
        return self.store.seq()

    def meta(self) -> dict[str, Any]:
        with self.store.read() as txn:
            return dict(txn.meta)
