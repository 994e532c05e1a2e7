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

from glasskey.core import canonical, totp
from glasskey.core.audit import SYSTEM_SIGNER
from glasskey.core.canonical import b64d, b64e
from glasskey.core.context import Service
from glasskey.core.crypto import aead, hpke, kdf, sign
from glasskey.core.envelope import Recipient
from glasskey.core.errors import (
    AuthError,
    DecryptError,
    IntegrityError,
    NotFoundError,
    PolicyError,
    UsageError,
)
from glasskey.core.lookups import extend_shares, require_active, two_people
from glasskey.core.models import ROLES, Operator, OperatorStatus, check_name
from glasskey.core.roster import (
    FOUNDED_EVENT,
    Change,
    Member,
    apply_founding,
    change_details,
    sign_founding,
    vault_id_for,
)
from glasskey.core.session import Session
from glasskey.core.storage.interface import Refused, Transaction

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


@dataclass(frozen=True, repr=False)
class _Keys:
    """A new operator's key pairs and TOTP seed, before they are wrapped."""

    op_id: str
    hpke_priv: bytes
    sign_priv: bytes
    hpke_pub: str
    sign_pub: str
    seed: str


@dataclass(frozen=True)
class Enrolment:
    """What a new operator needs to set up their authenticator (shown once)."""

    name: str
    totp_secret: str = field(repr=False)
    uri: str = field(repr=False)
    status: str = "enrolling"


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


class OperatorService(Service):
    """Founding, enrolment, unlocking, suspension and an operator's own factors."""

    kdf_target_seconds = 0.5

    def operators(self) -> list[Operator]:
        """The operators the signed roster knows (records nobody signed are never listed)."""
        with self.store.read() as txn:
            docs = {d["name"]: d for d in txn.table("operators").values()}
            return [Operator.from_member(m, docs.get(m.name))
                    for m in txn.roster.members.values()]

    # -- keys -------------------------------------------------------------------------
    def kdf_params(self, meta: dict[str, Any]) -> kdf.KdfParams:
        base = meta.get("kdf")
        salt = self.ctx.rng.bytes(kdf.SALT_MIN)
        if base is None:
            return kdf.KdfParams(65536, 3, 2, salt)
        return kdf.KdfParams(int(base["memory_kib"]), int(base["iterations"]),
                             int(base["lanes"]), salt)

    def wrap_aad(self, op_id: str, hpke_pub: str, sign_pub: str) -> bytes:
        return aead.aad_for(WRAP_LABEL, self.vault_id, op_id, hpke_pub, sign_pub)

    def _new_keys(self, spec: OperatorSpec) -> _Keys:
        hpke_priv = hpke.generate_private(self.ctx.rng)
        sign_priv = sign.generate_private(self.ctx.rng)
        return _Keys(self.ctx.new_id("o"), hpke_priv, sign_priv,
                     b64e(hpke.public_from_private(hpke_priv)),
                     b64e(sign.public_from_private(sign_priv)),
                     spec.totp_secret or totp.new_seed(self.ctx.rng.bytes(20)))

    @staticmethod
    def _record(keys: _Keys, spec: OperatorSpec, x: int, status: str) -> dict[str, Any]:
        """What the signed roster says about a new operator."""
        return {"id": keys.op_id, "name": spec.name, "roles": list(spec.roles),
                "status": status, "x": x, "hpke_pub": keys.hpke_pub,
                "sign_pub": keys.sign_pub}

    def _wrapped_doc(self, keys: _Keys, spec: OperatorSpec, record: dict[str, Any],
                     meta: dict[str, Any]) -> tuple[dict[str, Any], Enrolment, Session]:
        params = self.kdf_params(meta)
        payload = canonical.dumps({"hpke": b64e(keys.hpke_priv), "sign": b64e(keys.sign_priv),
                                   "totp": keys.seed})
        wrapped = kdf.wrap(payload, spec.passphrase, params,
                           self.wrap_aad(keys.op_id, keys.hpke_pub, keys.sign_pub),
                           allow_weak=self.ctx.allow_weak_kdf)
        doc = {**record, "kdf": params.to_dict(), "wrapped": b64e(wrapped),
               "created": self.now(),
               "totp": {"last_step": 0, "failures": 0, "locked_until": 0.0}}
        label = str(meta.get("label", "vault"))
        enrolment = Enrolment(spec.name, keys.seed,
                              totp.provisioning_uri(keys.seed, spec.name, label),
                              record["status"])
        session = Session(keys.op_id, spec.name, spec.roles, keys.hpke_priv, keys.sign_priv)
        return doc, enrolment, session

    # -- founding ---------------------------------------------------------------------
    def initialise(self, founders: Sequence[OperatorSpec], *, label: str = "vault",
                   kdf_params: kdf.KdfParams | None = None) -> list[Enrolment]:
        """Create the vault with its founding operators (at least two).

        The founding record (label, time, KDF parameters, every founder's keys,
        roles and share index) is signed by every founder, and the vault's id is
        its digest: the trust root no single operator can rewrite.
        """
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
        kdf.check_params(kdf_params, allow_weak=self.ctx.allow_weak_kdf)
        kdf_doc = {k: v for k, v in kdf_params.to_dict().items() if k != "salt"}
        keys = [self._new_keys(spec) for spec in founders]
        records = [self._record(k, spec, x, "active" if spec.totp_secret else "enrolling")
                   for x, (k, spec) in enumerate(zip(keys, founders, strict=True), 1)]
        founding = {"label": label, "created": self.now(), "kdf": kdf_doc,
                    "founders": records}
        vault_id = vault_id_for(founding)
        sigs = sign_founding(founding, {spec.name: k.sign_priv
                                        for k, spec in zip(keys, founders, strict=True)})
        self.store.create({"vault_id": vault_id, "label": label,
                           "created": founding["created"], "kdf": kdf_doc,
                           "next_x": len(founders) + 1})
        self.ctx.vault_id = vault_id
        enrolments = []
        with self.store.transaction() as txn:
            meta = txn.meta
            first: Session | None = None
            for k, spec, record in zip(keys, founders, records, strict=True):
                doc, enrolment, own = self._wrapped_doc(k, spec, record, meta)
                txn.table("operators").put(spec.name, doc)
                enrolments.append(enrolment)
                first = first or own
            assert first is not None
            details = {"founding": founding, "sigs": sigs}
            txn.record_change(first.signer, FOUNDED_EVENT, vault_id, details,
                              apply_founding(vault_id, details))
        return enrolments

    # -- unlocking -------------------------------------------------------------------
    def unwrap(self, doc: dict[str, Any], member: Member, passphrase: str) -> dict[str, Any]:
        """Open the key wrap; its associated data binds the *roster's* keys for this id."""
        params = kdf.KdfParams.from_dict(doc["kdf"])
        raw = kdf.unwrap(b64d(doc["wrapped"]), passphrase, params,
                         self.wrap_aad(member.id, member.hpke_pub, member.sign_pub),
                         allow_weak=self.ctx.allow_weak_kdf)
        payload = canonical.loads(raw)
        return {"hpke": b64d(payload["hpke"]), "sign": b64d(payload["sign"]),
                "totp": str(payload["totp"])}

    def member(self, txn: Transaction, name: str) -> tuple[Member, dict[str, Any]]:
        """The signed roster's member ``name`` and their record (wrapped keys, counters)."""
        member = txn.roster.get(name)
        doc = txn.table("operators").get(name)
        if member is None or doc is None:
            raise NotFoundError(f"there is no operator named {name!r}")
        return member, doc

    def record_failure(self, name: str, why: str) -> None:
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
        #    never lowers the counter.
        with self.store.transaction() as txn:
            member, doc = self.member(txn, name)
            if member.status in (OperatorStatus.SUSPENDED, OperatorStatus.REMOVED):
                raise PolicyError(f"operator {name} is {member.status}")
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
            keys = self.unwrap(doc, member, passphrase)
        except (DecryptError, IntegrityError):
            self.record_failure(name, "credentials")
            raise AuthError(AUTH_FAILED) from None
        step = totp.matching_step(keys["totp"], code, self.now())
        if step is None:
            self.record_failure(name, "credentials")
            raise AuthError(AUTH_FAILED)
        # 3. Accept the step at most once, under the lock (replay across processes).
        with self.store.transaction() as txn:
            member, doc = self.member(txn, name)
            state = doc["totp"]
            replay = step <= int(state["last_step"])
            if not replay:
                state["last_step"] = step
                state["failures"] = 0
                state["locked_until"] = 0.0
                if member.status == OperatorStatus.ENROLLING:
                    # The operator's own signature turns their enrolment active.
                    details, roster = change_details(
                        txn.roster, Change.ACTIVATE, name, member.record(),
                        [(name, keys["sign"])], {"totp": "confirmed"})
                    doc["status"] = OperatorStatus.ACTIVE
                    signer = Session(member.id, name, member.roles, keys["hpke"],
                                     keys["sign"]).signer
                    txn.record_change(signer, "operator.activated", name, details, roster)
                    member = roster.members[name]
                txn.table("operators").put(name, doc)
        if replay:
            self.record_failure(name, "replay")
            raise AuthError(AUTH_FAILED)
        return Session(member.id, name, member.roles, keys["hpke"], keys["sign"],
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
            require_active(txn, session)
            _, doc = self.member(txn, name)
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

    # -- roster changes: two people, one an admin ------------------------------------------
    def add_operator(self, sessions: Sequence[Session], spec: OperatorSpec,
                     progress: Callable[[int, int], None] | None = None) -> Enrolment:
        """Enrol a new operator: two (or k) unlocked operators extend every key split.

        The enrolment is a roster change signed by both operators (one an admin)
        over the roster as it was; every client verifies it before sealing to
        the new key. The new operator's share of each data key is a new point
        on the same polynomial, computed from the unlocked operators' shares
        (checked against the DEK commitment first).
        """
        _check_spec(spec)
        with self.store.transaction() as txn:
            signers = two_people(txn, sessions, "enrolling an operator")
            if txn.roster.get(spec.name) is not None or \
                    txn.table("operators").get(spec.name) is not None:
                raise UsageError(f"an operator named {spec.name!r} already exists")
            meta = txn.meta
            keys = self._new_keys(spec)
            record = self._record(keys, spec, int(meta["next_x"]),
                                  "active" if spec.totp_secret else "enrolling")
            doc, enrolment, _ = self._wrapped_doc(keys, spec, record, meta)
            meta["next_x"] = int(meta["next_x"]) + 1
            details, roster = change_details(
                txn.roster, Change.ENROL, spec.name, record, signers,
                {"roles": record["roles"], "countersigned_by": sorted(n for n, _ in signers)})
            txn.roster = roster  # the new share sets are signed to the new roster
            recipient = Recipient(keys.op_id, int(record["x"]), b64d(keys.hpke_pub))
            extend_shares(self.vault_id, txn, sessions, recipient, progress)
            txn.table("operators").put(spec.name, doc)
            txn.set_meta(meta)
            txn.record_change(sessions[0].signer, "operator.enrolled", spec.name, details,
                              roster)
        return enrolment

    def _set_status(self, sessions: Sequence[Session], name: str, kind: Change,
                    extra: dict[str, Any]) -> None:
        event = {Change.SUSPEND: "operator.suspended",
                 Change.REACTIVATE: "operator.reactivated"}[kind]
        with self.store.transaction() as txn:
            signers = two_people(txn, sessions, f"the {kind} of an operator",
                                       exclude=name)
            member, doc = self.member(txn, name)
            if kind == Change.SUSPEND:
                if member.status == OperatorStatus.SUSPENDED:
                    raise UsageError(f"operator {name} is already suspended")
                left = [m for m in txn.roster.members.values()
                        if m.active and m.name != name]
                if len(left) < 2:
                    raise PolicyError("suspending would leave fewer than two active operators")
            elif member.status != OperatorStatus.SUSPENDED:
                raise UsageError(f"operator {name} is not suspended")
            details, roster = change_details(
                txn.roster, kind, name, member.record(), signers,
                {**extra, "countersigned_by": sorted(n for n, _ in signers)})
            doc["status"] = roster.members[name].status
            txn.table("operators").put(name, doc)
            signer = next(s for s in sessions if s.name == signers[0][0]).signer
            txn.record_change(signer, event, name, details, roster)

    def suspend_operator(self, sessions: Sequence[Session], name: str,
                         reason: str = "") -> None:
        """Suspend ``name``: signed by two other active operators, one an admin."""
        self._set_status(sessions, name, Change.SUSPEND, {"reason": reason})

    def reactivate_operator(self, sessions: Sequence[Session], name: str) -> None:
        """Reactivate ``name``: signed by two other active operators, one an admin."""
        self._set_status(sessions, name, Change.REACTIVATE, {})
