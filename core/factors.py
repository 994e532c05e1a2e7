"""An operator's own factors: a new passphrase (``operator passwd``) and a new TOTP key
(``operator totp-reset``, countersigned by another operator).

Neither changes the operator's keys, so nothing is re-sealed and the signed
roster is untouched: only the key wrap (core/operators.py) is redone.
"""

from __future__ import annotations

from typing import Any

from glasskey.core import canonical, totp
from glasskey.core.canonical import b64e
from glasskey.core.context import Service, VaultContext
from glasskey.core.crypto import kdf
from glasskey.core.errors import AuthError, DecryptError, IntegrityError, PolicyError, UsageError
from glasskey.core.lookups import require_active
from glasskey.core.models import OperatorStatus
from glasskey.core.operators import AUTH_FAILED, Enrolment, OperatorService
from glasskey.core.roster import Member
from glasskey.core.session import Session
from glasskey.core.storage.interface import Transaction


class FactorService(Service):
    def __init__(self, ctx: VaultContext, operators: OperatorService) -> None:
        super().__init__(ctx)
        self.operators = operators

    def _rewrap(self, txn: Transaction, doc: dict[str, Any], member: Member, passphrase: str,
                keys: dict[str, Any], seed: str) -> None:
        """Wrap the same private keys (and ``seed``) under ``passphrase`` with a fresh salt."""
        params = self.operators.kdf_params(txn.meta)
        payload = canonical.dumps({"hpke": b64e(keys["hpke"]), "sign": b64e(keys["sign"]),
                                   "totp": seed})
        doc["kdf"] = params.to_dict()
        doc["wrapped"] = b64e(kdf.wrap(
            payload, passphrase, params,
            self.operators.wrap_aad(member.id, member.hpke_pub, member.sign_pub),
            allow_weak=self.ctx.allow_weak_kdf))

    def change_passphrase(self, name: str, old: str, code: str, new: str) -> None:
        """``operator passwd``: the operator's own keys under a new passphrase.

        A full unlock first (passphrase + TOTP, counted like any attempt); the
        keys and TOTP seed do not change, so nothing is re-sealed and the roster
        is untouched.
        """
        kdf.check_passphrase_policy(new)
        if new == old:
            raise UsageError("the new passphrase is the same as the old one")
        session = self.operators.unlock(name, old, code)
        with self.store.transaction() as txn:
            member, doc = self.operators.member(txn, name)
            require_active(txn, session)
            keys = {"hpke": session.hpke_priv, "sign": session.sign_priv}
            self._rewrap(txn, doc, member, new, keys, session.totp_seed)
            txn.table("operators").put(name, doc)
            txn.record(session.signer, "operator.passphrase-changed", name, {})

    def reset_totp(self, witness_session: Session, name: str, passphrase: str) -> Enrolment:
        """``operator totp-reset``: a new TOTP key for ``name`` (a lost authenticator).

        ``name`` proves their passphrase; a second, different active operator,
        unlocked with their own passphrase and TOTP, countersigns. The new key is
        shown once (QR); the old one stops working at once. Failed passphrases
        count towards ``name``'s lockout like any other attempt.
        """
        if witness_session.name == name:
            raise PolicyError("a TOTP reset is countersigned by another operator")
        with self.store.read() as txn:
            member, doc = self.operators.member(txn, name)
            require_active(txn, witness_session)
            if member.status not in (OperatorStatus.ACTIVE, OperatorStatus.ENROLLING):
                raise PolicyError(f"operator {name} is {member.status}")
            if float(doc["totp"].get("locked_until", 0.0)) > self.now():
                raise AuthError(f"operator {name} is locked after repeated failures")
        try:
            keys = self.operators.unwrap(doc, member, passphrase)
        except (DecryptError, IntegrityError):
            with self.store.transaction() as txn:
                _, fdoc = self.operators.member(txn, name)
                fdoc["totp"]["failures"] = int(fdoc["totp"]["failures"]) + 1
                txn.table("operators").put(name, fdoc)
            self.operators.record_failure(name, "totp-reset")
            raise AuthError(AUTH_FAILED) from None
        seed = totp.new_seed(self.ctx.rng.bytes(20))
        with self.store.transaction() as txn:
            member, doc = self.operators.member(txn, name)
            require_active(txn, witness_session)
            self._rewrap(txn, doc, member, passphrase, keys, seed)
            doc["totp"] = {"last_step": 0, "failures": 0, "locked_until": 0.0}
            txn.table("operators").put(name, doc)
            own = Session(member.id, name, member.roles, keys["hpke"], keys["sign"])
            txn.record(own.signer, "operator.totp-reset", name,
                       {"countersigned_by": [witness_session.name]})
            txn.record(witness_session.signer, "operator.totp-reset-witnessed", name, {})
            label = str(txn.meta.get("label", "vault"))
        return Enrolment(name, seed, totp.provisioning_uri(seed, name, label), member.status)
