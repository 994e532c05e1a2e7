"""Operators: founding a vault, enrolment, unlocking (passphrase + TOTP), suspension.

An operator's HPKE and Ed25519 private keys and TOTP seed are wrapped together
under an Argon2id key from their passphrase; the wrap's associated data binds
the vault, the operator id and both public keys, so swapping a public key in
vault.json makes the wrap fail to open instead of silently re-routing shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import canonical, totp
from core.audit import SYSTEM_SIGNER
from core.base import VaultBase
from core.canonical import b64d, b64e
from core.crypto import aead, hpke, kdf, sign
from core.envelope import Recipient
from core.errors import AuthError, DecryptError, IntegrityError, PolicyError, UsageError
from core.models import ROLES, check_name
from core.session import Session
from core.store import Refused, Transaction

WRAP_LABEL = "glasskey/operator-keys/v1"
AUTH_FAILED = "passphrase or TOTP code is wrong (or that code was already used)"


@dataclass(frozen=True, repr=False)
class OperatorSpec:
    """A new operator as given by a person or an operators file."""

    name: str
    roles: tuple[str, ...]
    passphrase: str
    totp_secret: str | None = None

    def __repr__(self) -> str:
        return f"OperatorSpec({self.name!r}, roles={self.roles!r})"

    @classmethod
    def from_doc(cls, doc: Any) -> OperatorSpec:
        if not isinstance(doc, dict):
            raise UsageError("each operator must be a JSON object {name, roles, passphrase}")
        unknown = set(doc) - {"name", "roles", "passphrase", "totp_secret"}
        if unknown:
            raise UsageError(f"unknown operator field(s): {', '.join(sorted(unknown))}")
        try:
            roles = doc["roles"]
            if isinstance(roles, str):
                roles = [r.strip() for r in roles.split(",") if r.strip()]
            return cls(str(doc["name"]), tuple(roles), str(doc["passphrase"]),
                       doc.get("totp_secret"))
        except KeyError as exc:
            raise UsageError(f"an operator lacks the field {exc.args[0]!r}") from None


@dataclass(frozen=True)
class Enrolment:
    """What a new operator needs to set up their authenticator (shown once)."""

    name: str
    totp_secret: str = field(repr=False)
    uri: str = field(repr=False)
    status: str = "enrolling"


def check_operator_spec(spec: OperatorSpec) -> None:
    """Validate a new operator before anyone else has to authenticate for it."""
    _check_spec(spec)


def _check_spec(spec: OperatorSpec) -> None:
    check_name(spec.name, "operator")
    if spec.name == "system":
        raise UsageError("'system' is reserved for the vault's own audit entries")
    bad = [r for r in spec.roles if r not in ROLES]
    if bad or not spec.roles:
        got = ", ".join(bad) or "none"
        raise UsageError(f"roles must be some of {', '.join(ROLES)} (got {got})")
    kdf.check_passphrase_policy(spec.passphrase)
    if spec.totp_secret is not None:
        try:
            totp.code_at(spec.totp_secret, 0)
        except Exception:  # pyotp raises assorted errors on bad base32
            raise UsageError(
                f"the TOTP secret of {spec.name} is not base32 of at least 112 bits"
            ) from None


class OperatorOps(VaultBase):
    kdf_target_seconds = 0.5

    # -- keys -------------------------------------------------------------------------
    def _kdf_params(self, meta: dict[str, Any]) -> kdf.KdfParams:
        base = meta.get("kdf")
        salt = self.rng.bytes(kdf.SALT_MIN)
        if base is None:
            return kdf.KdfParams(65536, 3, 2, salt)
        return kdf.KdfParams(int(base["memory_kib"]), int(base["iterations"]),
                             int(base["lanes"]), salt)

    def _wrap_aad(self, op_id: str, hpke_pub: str, sign_pub: str) -> bytes:
        return aead.aad_for(WRAP_LABEL, self.vault_id, op_id, hpke_pub, sign_pub)

    def _new_operator_doc(self, spec: OperatorSpec, x: int, meta: dict[str, Any],
                          status: str) -> tuple[dict[str, Any], Enrolment, Session]:
        op_id = self.new_id("o")
        hpke_priv = hpke.generate_private()
        sign_priv = sign.generate_private()
        hpke_pub = b64e(hpke.public_from_private(hpke_priv))
        sign_pub = b64e(sign.public_from_private(sign_priv))
        seed = spec.totp_secret or totp.new_seed(self.rng.bytes(20))
        params = self._kdf_params(meta)
        payload = canonical.dumps({"hpke": b64e(hpke_priv), "sign": b64e(sign_priv),
                                   "totp": seed})
        wrapped = kdf.wrap(payload, spec.passphrase, params,
                           self._wrap_aad(op_id, hpke_pub, sign_pub),
                           allow_weak=self.allow_weak_kdf)
        doc = {
            "id": op_id, "name": spec.name, "roles": list(spec.roles), "status": status,
            "x": x, "hpke_pub": hpke_pub, "sign_pub": sign_pub, "kdf": params.to_dict(),
            "wrapped": b64e(wrapped), "created": self.now(),
            "totp": {"last_step": 0, "failures": 0, "locked_until": 0.0},
        }
        label = str(meta.get("label", "vault"))
        enrolment = Enrolment(spec.name, seed, totp.provisioning_uri(seed, spec.name, label),
                              status)
        return doc, enrolment, Session(op_id, spec.name, spec.roles, hpke_priv, sign_priv)

    def _enrol_details(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {"roles": doc["roles"], "sign_pub": doc["sign_pub"], "hpke_pub": doc["hpke_pub"],
                "x": doc["x"], "status": doc["status"]}

    # -- founding ---------------------------------------------------------------------
    def initialise(self, founders: Sequence[OperatorSpec], *, label: str = "vault",
                   kdf_params: kdf.KdfParams | None = None) -> list[Enrolment]:
        """Create the vault with its founding operators (at least two)."""
        if len(founders) < 2:
            raise UsageError("a vault needs at least two founding operators (dual control)")
        names = [f.name for f in founders]
        if len(set(names)) != len(names):
            raise UsageError("founding operator names must be distinct")
        for spec in founders:
            _check_spec(spec)
        if not any("approver" in f.roles for f in founders):
            raise UsageError("at least one founding operator needs the approver role")
        if not any("admin" in f.roles for f in founders):
            raise UsageError("at least one founding operator needs the admin role")
        if kdf_params is None:
            kdf_params = kdf.calibrate(self.kdf_target_seconds)
        kdf.check_params(kdf_params, allow_weak=self.allow_weak_kdf)
        vault_id = "v" + self.rng.bytes(12).hex()
        self.store.create({
            "vault_id": vault_id, "label": label, "created": self.now(),
            "kdf": {k: v for k, v in kdf_params.to_dict().items() if k != "salt"},
            "next_x": 1,
        })
        self._vault_id = vault_id
        enrolments = []
        with self.store.transaction() as txn:
            meta = txn.meta
            for spec in founders:
                status = "active" if spec.totp_secret else "enrolling"
                doc, enrolment, own = self._new_operator_doc(spec, int(meta["next_x"]), meta,
                                                             status)
                meta["next_x"] = int(meta["next_x"]) + 1
                txn.table("operators").put(spec.name, doc)
                enrolments.append(enrolment)
                # Each founder signs their own enrolment: no one exists yet to vouch.
                txn.record(own.signer, "operator.enrolled", spec.name,
                           dict(self._enrol_details(doc), founder=True, vault=vault_id))
            txn.set_meta(meta)
        return enrolments

    # -- unlocking -------------------------------------------------------------------
    def _unwrap(self, doc: dict[str, Any], passphrase: str) -> dict[str, Any]:
        params = kdf.KdfParams.from_dict(doc["kdf"])
        raw = kdf.unwrap(b64d(doc["wrapped"]), passphrase, params,
                         self._wrap_aad(doc["id"], doc["hpke_pub"], doc["sign_pub"]),
                         allow_weak=self.allow_weak_kdf)
        payload = canonical.loads(raw)
        return {"hpke": b64d(payload["hpke"]), "sign": b64d(payload["sign"]),
                "totp": str(payload["totp"])}

    def _record_failure(self, name: str, why: str) -> None:
        """Log a failed attempt and apply the back-off; the count was already raised."""
        with self.store.transaction() as txn:
            doc = txn.table("operators").get(name)
            if doc is None:
                return
            state = doc["totp"]
            lock = totp.lockout_seconds(int(state["failures"]))
            if lock:
                state["locked_until"] = max(float(state["locked_until"]), self.now() + lock)
            txn.table("operators").put(name, doc)
            txn.record(SYSTEM_SIGNER, "auth.failed", name,
                       {"failures": state["failures"], "why": why,
                        "locked_for": int(lock)})

    def _refuse_if_locked(self, txn: Transaction, name: str, state: dict[str, Any]) -> None:
        wait = float(state["locked_until"]) - self.now()
        if wait > 0:
            txn.record(SYSTEM_SIGNER, "auth.locked", name, {"retry_in": int(wait) + 1})
            raise Refused(AuthError(
                f"operator {name} is locked after repeated failures; "
                f"try again in {int(wait) + 1} s"))

    def unlock(self, name: str, passphrase: str, code: str) -> Session:
        """Passphrase + TOTP -> a session. Failures are counted before the answer."""
        # 1. Count the attempt durably first: a kill during a failed attempt
        #    never lowers the counter (RELIABILITY.md A4).
        with self.store.transaction() as txn:
            doc = self._operator_doc(txn, name)
            if doc["status"] in ("suspended", "removed"):
                raise PolicyError(f"operator {name} is {doc['status']}")
            state = doc["totp"]
            self._refuse_if_locked(txn, name, state)
            state["failures"] = int(state["failures"]) + 1
            # Provisional back-off: if this attempt dies before it is answered, the
            # lockout it would have earned still stands (success lifts it).
            lock = totp.lockout_seconds(int(state["failures"]))
            if lock:
                state["locked_until"] = max(float(state["locked_until"]), self.now() + lock)
            txn.table("operators").put(name, doc)
        # 2. The slow part (Argon2id) runs outside the lock.
        try:
            keys = self._unwrap(doc, passphrase)
        except (DecryptError, IntegrityError):
            self._record_failure(name, "credentials")
            raise AuthError(AUTH_FAILED) from None
        step = totp.matching_step(keys["totp"], code, self.now())
        if step is None:
            self._record_failure(name, "credentials")
            raise AuthError(AUTH_FAILED)
        # 3. Accept the step at most once, under the lock (replay across processes).
        with self.store.transaction() as txn:
            doc = self._operator_doc(txn, name)
            state = doc["totp"]
            replay = step <= int(state["last_step"])
            if not replay:
                state["last_step"] = step
                state["failures"] = 0
                state["locked_until"] = 0.0
                activated = doc["status"] == "enrolling"
                if activated:
                    doc["status"] = "active"
                txn.table("operators").put(name, doc)
                if activated:
                    signer = Session(doc["id"], name, tuple(doc["roles"]), keys["hpke"],
                                     keys["sign"]).signer
                    txn.record(signer, "operator.activated", name, {"totp": "confirmed"})
        if replay:
            self._record_failure(name, "replay")
            raise AuthError(AUTH_FAILED)
        return Session(doc["id"], name, tuple(doc["roles"]), keys["hpke"], keys["sign"],
                       keys["totp"])

    def confirm_totp(self, session: Session, code: str) -> None:
        """Step up an unlocked session with a fresh TOTP code (no passphrase).

        Same rules as unlocking: counted before the answer, each step once and
        only later than the last one, back-off lockout, failures audited.
        """
        if not session.totp_seed:
            raise AuthError("this session cannot step up; unlock again")
        name = session.name
        with self.store.transaction() as txn:
            doc = self._operator_doc(txn, name)
            if doc["id"] != session.operator_id or doc["status"] != "active":
                raise PolicyError(f"operator {name} is not active")
            state = doc["totp"]
            self._refuse_if_locked(txn, name, state)
            step = totp.matching_step(session.totp_seed, code, self.now())
            if step is not None and step > int(state["last_step"]):
                state["last_step"] = step
                state["failures"] = 0
                state["locked_until"] = 0.0
                txn.table("operators").put(name, doc)
                return
            state["failures"] = int(state["failures"]) + 1
            lock = totp.lockout_seconds(int(state["failures"]))
            if lock:
                state["locked_until"] = self.now() + lock
            txn.table("operators").put(name, doc)
            txn.record(SYSTEM_SIGNER, "auth.failed", name,
                       {"failures": state["failures"], "why": "step-up",
                        "locked_for": int(lock)})
            raise Refused(AuthError("that TOTP code is wrong or was already used"))

    # -- enrolment of further operators ------------------------------------------------
    def add_operator(self, sessions: Sequence[Session], spec: OperatorSpec,
                     progress: Callable[[int, int], None] | None = None) -> Enrolment:
        """Enrol a new operator: two (or k) unlocked operators extend every key split.

        The new operator's share of each data key is a new point on the same
        polynomial, computed from the unlocked operators' shares (checked
        against the DEK commitment first), so no other operator's share changes.
        """
        _check_spec(spec)
        names = {s.name for s in sessions}
        if len(names) < 2:
            raise PolicyError("enrolling an operator needs two different unlocked operators")
        with self.store.transaction() as txn:
            for s in sessions:
                self._require_active(txn, s)
            if not any(s.has("admin") for s in sessions):
                raise PolicyError("enrolling an operator needs an admin among the operators")
            if txn.table("operators").get(spec.name) is not None:
                raise UsageError(f"an operator named {spec.name!r} already exists")
            meta = txn.meta
            doc, enrolment, _ = self._new_operator_doc(
                spec, int(meta["next_x"]), meta, "active" if spec.totp_secret else "enrolling")
            meta["next_x"] = int(meta["next_x"]) + 1
            recipient = Recipient(doc["id"], int(doc["x"]), b64d(doc["hpke_pub"]))
            self._extend_shares(txn, sessions, recipient, progress)
            txn.table("operators").put(spec.name, doc)
            txn.set_meta(meta)
            signer = sessions[0].signer
            txn.record(signer, "operator.enrolled", spec.name,
                       dict(self._enrol_details(doc), countersigned_by=sorted(names)))
        return enrolment

    def suspend_operator(self, session: Session, name: str, reason: str = "") -> None:
        with self.store.transaction() as txn:
            self._require_active(txn, session, "admin")
            doc = self._operator_doc(txn, name)
            if doc["status"] == "suspended":
                raise UsageError(f"operator {name} is already suspended")
            active_left = [
                d for d in txn.table("operators").values()
                if d["status"] == "active" and d["name"] != name
            ]
            if len(active_left) < 2:
                raise PolicyError("suspending would leave fewer than two active operators")
            doc["status"] = "suspended"
            txn.table("operators").put(name, doc)
            txn.record(session.signer, "operator.suspended", name, {"reason": reason})

    def reactivate_operator(self, session: Session, name: str) -> None:
        with self.store.transaction() as txn:
            self._require_active(txn, session, "admin")
            doc = self._operator_doc(txn, name)
            if doc["status"] != "suspended":
                raise UsageError(f"operator {name} is not suspended")
            doc["status"] = "active"
            txn.table("operators").put(name, doc)
            txn.record(session.signer, "operator.reactivated", name, {})



