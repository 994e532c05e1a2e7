"""The authenticated roster: who the operators (and the emergency kit) are.

The attacker glasskey designs against is an operator with write access to the
vault and their own passphrase. Anything such a person can write is a claim,
not a fact: a public key, a role or a status in ``vault.json`` is believed only
when signed events in the audit log say so. This module is the fold that turns
those events into facts:

* **Founding** (``vault.founded``, entry 1) carries the founding record (label,
  creation time, KDF parameters, every founder's id, name, roles, share index
  and public keys) signed by *every* founder. The vault id is a digest of that
  record, so nobody can re-found a vault under the same identity, and every
  client pins the identity on first use.
* Every later change (enrolment, suspension, reactivation, removal, a kit's
  issue or burn, an operator's own activation) is a statement signed over the
  roster digest *before* the change, so a countersignature cannot be replayed
  in another context. Enrolment, suspension, reactivation, removal and kit
  issue need two distinct active operators, one of them an admin; activation
  is the enrolling operator's own; burning a kit (which only takes authority
  away) needs one active operator.

The roster is folded by every client as it verifies the log (core/chain.py)
and cached in the client's own checkpoint, so using it costs nothing per step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from glasskey.core import canonical
from glasskey.core.crypto import sign
from glasskey.core.errors import IntegrityError, PolicyError

FOUNDING_LABEL = b"glasskey/founding/v1"
ROSTER_LABEL = b"glasskey/roster/v1"
CONFIG_LABEL = b"glasskey/credential-config/v1"
SEAL_LABEL = b"glasskey/share-set/v1"
FOUNDED_EVENT = "vault.founded"


class OperatorStatus(StrEnum):
    ENROLLING = "enrolling"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REMOVED = "removed"


class Change(StrEnum):
    """The roster changes a signed statement can make, and the event that carries each."""

    ENROL = "enrol"
    ACTIVATE = "activate"
    SUSPEND = "suspend"
    REACTIVATE = "reactivate"
    REMOVE = "remove"
    KIT_ISSUE = "kit-issue"
    KIT_BURN = "kit-burn"


#: Which audit event carries which change (an event of these names without a
#: valid signed change is itself tampering: it would read as someone's act).
CHANGE_EVENTS: dict[str, Change] = {
    "operator.enrolled": Change.ENROL,
    "operator.activated": Change.ACTIVATE,
    "operator.suspended": Change.SUSPEND,
    "operator.reactivated": Change.REACTIVATE,
    "operator.removed": Change.REMOVE,
    "emergency.kit-issued": Change.KIT_ISSUE,
    "emergency.kit-burned": Change.KIT_BURN,
}
#: Changes that need two distinct active operators, one of them an admin.
TWO_PERSON = frozenset({Change.ENROL, Change.SUSPEND, Change.REACTIVATE, Change.REMOVE,
                        Change.KIT_ISSUE})
MEMBER_FIELDS = ("id", "name", "roles", "status", "x", "hpke_pub", "sign_pub")


@dataclass(frozen=True)
class Member:
    """An operator as the signed roster says they are."""

    id: str
    name: str
    roles: tuple[str, ...]
    status: str
    x: int
    hpke_pub: str
    sign_pub: str
    #: Held the admin role at some point: credential configurations they signed
    #: then stay valid after a later role change.
    ever_admin: bool = False

    @property
    def active(self) -> bool:
        return self.status == OperatorStatus.ACTIVE

    def has(self, role: str) -> bool:
        return role in self.roles

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "roles": list(self.roles),
                "status": self.status, "x": self.x, "hpke_pub": self.hpke_pub,
                "sign_pub": self.sign_pub}

    def to_doc(self) -> dict[str, Any]:
        return {**self.record(), "ever_admin": self.ever_admin}

    @classmethod
    def from_record(cls, doc: Mapping[str, Any], ever_admin: bool | None = None) -> Member:
        try:
            roles = tuple(str(r) for r in doc["roles"])
            member = cls(str(doc["id"]), str(doc["name"]), roles, str(doc["status"]),
                         int(doc["x"]), str(doc["hpke_pub"]), str(doc["sign_pub"]),
                         bool(doc.get("ever_admin", False)) if ever_admin is None
                         else ever_admin)
        except (KeyError, TypeError, ValueError):
            raise IntegrityError("a roster record is malformed") from None
        canonical.b64d(member.hpke_pub)
        canonical.b64d(member.sign_pub)
        return member


@dataclass(frozen=True)
class Kit:
    """An emergency kit as the signed roster says it is."""

    id: str
    x: int
    hpke_pub: str
    fingerprint: str
    status: str  # active | burned

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "x": self.x, "hpke_pub": self.hpke_pub,
                "fingerprint": self.fingerprint, "status": self.status}

    @classmethod
    def from_record(cls, doc: Mapping[str, Any]) -> Kit:
        try:
            return cls(str(doc["id"]), int(doc["x"]), str(doc["hpke_pub"]),
                       str(doc["fingerprint"]), str(doc["status"]))
        except (KeyError, TypeError, ValueError):
            raise IntegrityError("a kit record is malformed") from None


@dataclass(frozen=True)
class Roster:
    """The verified set of operators and kits at one position of the log."""

    vault_id: str = ""
    members: Mapping[str, Member] = field(default_factory=dict)
    kits: Mapping[str, Kit] = field(default_factory=dict)

    # -- lookups ------------------------------------------------------------------------
    @property
    def founded(self) -> bool:
        return bool(self.vault_id)

    def get(self, name: str) -> Member | None:
        return self.members.get(name)

    def by_id(self, op_id: str) -> Member | None:
        return next((m for m in self.members.values() if m.id == op_id), None)

    def sign_key(self, name: str) -> bytes | None:
        """The key an entry by ``name`` must verify under (None: not a member)."""
        return self._sign_keys.get(name)

    @cached_property
    def _sign_keys(self) -> dict[str, bytes]:
        return {n: canonical.b64d(m.sign_pub) for n, m in self.members.items()
                if m.status != OperatorStatus.REMOVED}

    def active_kit(self) -> Kit | None:
        return next((k for k in self.kits.values() if k.status == "active"), None)

    def require(self, name: str, op_id: str | None = None, role: str | None = None) -> Member:
        """The member ``name`` if active (and holding ``role``), else a PolicyError."""
        m = self.members.get(name)
        if m is None or (op_id is not None and m.id != op_id) or not m.active:
            raise PolicyError(f"operator {name} is not active")
        if role is not None and role not in m.roles:
            raise PolicyError(f"operator {name} does not hold the {role} role")
        return m

    def digest(self) -> str:
        """A digest of the whole roster: what every change statement signs over."""
        body = {"vault": self.vault_id,
                "members": {n: m.to_doc() for n, m in sorted(self.members.items())},
                "kits": {k: v.record() for k, v in sorted(self.kits.items())}}
        return hashlib.sha256(canonical.dumps(body)).hexdigest()

    # -- checkpoint cache ---------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {"vault": self.vault_id,
                "members": [m.to_doc() for _, m in sorted(self.members.items())],
                "kits": [k.record() for _, k in sorted(self.kits.items())]}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Roster:
        try:
            members = {str(d["name"]): Member.from_record(d) for d in doc["members"]}
            kits = {str(d["id"]): Kit.from_record(d) for d in doc["kits"]}
            return cls(str(doc["vault"]), members, kits)
        except (KeyError, TypeError):
            raise IntegrityError("the roster cache is malformed") from None


# -- founding -------------------------------------------------------------------------------

def vault_id_for(founding: Mapping[str, Any]) -> str:
    """The vault's identity: a digest of its founding record."""
    return "v" + hashlib.sha256(FOUNDING_LABEL + canonical.dumps(founding)).hexdigest()[:32]


def founding_statement(founding: Mapping[str, Any]) -> bytes:
    return FOUNDING_LABEL + canonical.dumps({"vault": vault_id_for(founding),
                                             "founding": founding})


def sign_founding(founding: Mapping[str, Any], keys: Mapping[str, bytes]) -> dict[str, str]:
    """Every founder's signature over the founding record (name -> b64 signature)."""
    msg = founding_statement(founding)
    return {name: canonical.b64e(sign.sign(priv, msg)) for name, priv in sorted(keys.items())}


def apply_founding(vault_id: str, details: Mapping[str, Any]) -> Roster:
    """The first roster, from a ``vault.founded`` entry; every founder must have signed."""
    founding = details.get("founding")
    sigs = details.get("sigs")
    if not isinstance(founding, dict) or not isinstance(sigs, dict):
        raise IntegrityError("the founding entry is malformed")
    if vault_id_for(founding) != vault_id:
        raise IntegrityError("the founding record does not match the vault's identity")
    founders = founding.get("founders")
    if not isinstance(founders, list) or len(founders) < 2:
        raise IntegrityError("the founding record names fewer than two founders")
    members: dict[str, Member] = {}
    for rec in founders:
        if not isinstance(rec, dict):
            raise IntegrityError("the founding record is malformed")
        m = Member.from_record(rec, ever_admin="admin" in rec.get("roles", []))
        if m.name in members or m.status not in (OperatorStatus.ACTIVE,
                                                  OperatorStatus.ENROLLING):
            raise IntegrityError("the founding record is malformed")
        members[m.name] = m
    msg = founding_statement(founding)
    for name, m in members.items():
        if not _sig_ok(m, msg, sigs.get(name)):
            raise IntegrityError(f"the founding record is not signed by founder {name}")
    if set(sigs) - set(members):
        raise IntegrityError("the founding record carries signatures of non-founders")
    return Roster(vault_id, members, {})


# -- changes --------------------------------------------------------------------------------

def change_statement(roster: Roster, change: Mapping[str, Any]) -> bytes:
    return ROSTER_LABEL + canonical.dumps({"vault": roster.vault_id, "before": roster.digest(),
                                           "change": change})


def sign_change(roster: Roster, change: Mapping[str, Any],
                signers: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    msg = change_statement(roster, change)
    return {name: canonical.b64e(sign.sign(priv, msg)) for name, priv in signers}


def _sig_ok(member: Member, msg: bytes, sig: Any) -> bool:
    if not isinstance(sig, str):
        return False
    try:
        return sign.verify(canonical.b64d(member.sign_pub), msg, canonical.b64d(sig))
    except IntegrityError:
        return False


def _check_signers(roster: Roster, kind: Change, subject: str, msg: bytes,
                   sigs: Mapping[str, Any]) -> None:
    valid = []
    for name, sig in sigs.items():
        m = roster.members.get(name)
        if m is None or not m.active or not _sig_ok(m, msg, sig):
            raise IntegrityError(
                f"the {kind} of {subject} carries a signature that is not an active "
                f"operator's ({name})")
        valid.append(m)
    if kind in TWO_PERSON:
        if len(valid) < 2 or not any(m.has("admin") for m in valid):
            raise IntegrityError(
                f"the {kind} of {subject} is not signed by two active operators, one an admin")
    elif kind == Change.KIT_BURN and not valid:
        raise IntegrityError(f"the burn of kit {subject} is not signed by an active operator")


def apply_change(roster: Roster, details: Mapping[str, Any], expect: Change) -> Roster:
    """The roster after one signed change; any flaw is an IntegrityError naming it."""
    change = details.get("roster")
    sigs = details.get("sigs")
    if not isinstance(change, dict) or not isinstance(sigs, dict):
        raise IntegrityError(f"a roster event ({expect}) carries no signed change")
    kind = change.get("op")
    subject = change.get("subject")
    record = change.get("record")
    if kind != expect or not isinstance(subject, str) or not isinstance(record, dict):
        raise IntegrityError(f"a roster event ({expect}) carries a malformed change")
    msg = change_statement(roster, change)
    members = dict(roster.members)
    kits = dict(roster.kits)
    if kind == Change.ACTIVATE:
        m = members.get(subject)
        if m is None or m.status != OperatorStatus.ENROLLING or set(sigs) != {subject} \
                or not _sig_ok(m, msg, sigs[subject]):
            raise IntegrityError(f"the activation of {subject} is not their own")
        members[subject] = replace(m, status=OperatorStatus.ACTIVE)
        return Roster(roster.vault_id, members, kits)
    _check_signers(roster, Change(kind), subject, msg, sigs)
    if kind == Change.ENROL:
        new = Member.from_record(record, ever_admin="admin" in record.get("roles", []))
        if new.name != subject or subject in members or new.status not in (
                OperatorStatus.ACTIVE, OperatorStatus.ENROLLING):
            raise IntegrityError(f"the enrolment of {subject} is malformed or a duplicate")
        taken = {m.x for m in members.values()} | {k.x for k in kits.values()}
        if new.x in taken or any(m.id == new.id for m in members.values()):
            raise IntegrityError(f"the enrolment of {subject} reuses a share index or id")
        members[subject] = new
    elif kind in (Change.SUSPEND, Change.REACTIVATE, Change.REMOVE):
        m = members.get(subject)
        want = {Change.SUSPEND: (OperatorStatus.ACTIVE, OperatorStatus.SUSPENDED),
                Change.REACTIVATE: (OperatorStatus.SUSPENDED, OperatorStatus.ACTIVE),
                Change.REMOVE: (None, OperatorStatus.REMOVED)}[Change(kind)]
        if m is None or m.status == OperatorStatus.REMOVED or (
                want[0] is not None and m.status != want[0]):
            raise IntegrityError(f"the {kind} of {subject} does not fit their status")
        members[subject] = replace(m, status=want[1])
    elif kind == Change.KIT_ISSUE:
        kit = Kit.from_record(record)
        taken = {m.x for m in members.values()} | {k.x for k in kits.values()}
        if kit.id != subject or subject in kits or kit.x in taken or kit.status != "active":
            raise IntegrityError(f"the issue of kit {subject} is malformed or a duplicate")
        kits = {k: (replace(v, status="burned") if v.status == "active" else v)
                for k, v in kits.items()}
        kits[subject] = kit
    elif kind == Change.KIT_BURN:
        kit_now = kits.get(subject)
        if kit_now is None or kit_now.status != "active":
            raise IntegrityError(f"kit {subject} is not active; it cannot be burned")
        kits[subject] = replace(kit_now, status="burned")
    return Roster(roster.vault_id, members, kits)


def change_details(roster: Roster, kind: Change, subject: str, record: Mapping[str, Any],
                   signers: Sequence[tuple[str, bytes]], extra: Mapping[str, Any] | None = None,
                   ) -> tuple[dict[str, Any], Roster]:
    """Audit details for a signed change, and the roster after it (checked like a reader)."""
    change = {"op": str(kind), "subject": subject, "record": dict(record)}
    details = {**(extra or {}), "roster": change, "sigs": sign_change(roster, change, signers)}
    return details, apply_change(roster, details, kind)


# -- what the roster vouches for ----------------------------------------------------------------

def check_table(roster: Roster, operators: Iterable[Mapping[str, Any]],
                kits: Iterable[Mapping[str, Any]]) -> None:
    """The store's operator and kit records must say what the roster says."""
    for doc in operators:
        name = str(doc.get("name"))
        m = roster.members.get(name)
        if m is None:
            raise IntegrityError(
                f"operator record {name!r} is not backed by a signed enrolment (tampered)")
        if {f: doc.get(f) for f in MEMBER_FIELDS} != m.record():
            raise IntegrityError(
                f"operator record {name!r} differs from the signed roster (keys, roles or "
                "status were edited)")
    # A member without a record (an enrolment whose state commit was lost) can
    # simply not unlock: that grants nothing, so it is not refused here.
    for doc in kits:
        kid = str(doc.get("id"))
        k = roster.kits.get(kid)
        if k is None or doc.get("hpke_pub") != k.hpke_pub or int(doc.get("x", -1)) != k.x \
                or doc.get("status") != k.status:
            raise IntegrityError(
                f"emergency kit record {kid!r} differs from the signed roster (tampered)")


def adopt_status(roster: Roster, operators: Iterable[dict[str, Any]],
                 kits: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                          list[dict[str, Any]]]:
    """Records whose roles/status lag the roster after adopting an uncommitted tail.

    The log is durable before the state; a kill in between leaves signed roster
    changes whose state update never landed. Those records are brought to what
    the signed roster says (never the other way round). Returns the changed ones.
    """
    ops_out, kits_out = [], []
    for doc in operators:
        m = roster.members.get(str(doc.get("name")))
        if m is not None and (doc.get("status"), doc.get("roles")) != (m.status, list(m.roles)):
            doc["status"], doc["roles"] = m.status, list(m.roles)
            ops_out.append(doc)
    for doc in kits:
        k = roster.kits.get(str(doc.get("id")))
        if k is not None and doc.get("status") != k.status:
            doc["status"] = k.status
            kits_out.append(doc)
    return ops_out, kits_out


def config_body(vault_id: str, cred: Mapping[str, Any]) -> dict[str, Any]:
    """What an admin vouches for about a credential: where values go and who must agree."""
    return {"vault": vault_id, "id": cred.get("id"), "name": cred.get("name"),
            "kind": cred.get("kind"), "connector": cred.get("connector"),
            "target": cred.get("target"), "options": cred.get("options", {}),
            "policy": cred.get("policy"),
            **({"template": cred["template"]} if "template" in cred else {})}


def config_digest(vault_id: str, cred: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical.dumps(config_body(vault_id, cred))).hexdigest()


def sign_config(vault_id: str, cred: Mapping[str, Any], name: str, priv: bytes
                ) -> dict[str, str]:
    msg = CONFIG_LABEL + canonical.dumps(config_body(vault_id, cred))
    return {"by": name, "sig": canonical.b64e(sign.sign(priv, msg))}


def verify_config(roster: Roster, cred: Mapping[str, Any]) -> None:
    """A credential's connector, target, options, policy and kind: signed by an admin."""
    stamp = cred.get("config_sig")
    name = cred.get("name")
    if not isinstance(stamp, dict):
        raise IntegrityError(f"credential {name}'s configuration is not signed (tampered)")
    signer = roster.members.get(str(stamp.get("by")))
    msg = CONFIG_LABEL + canonical.dumps(config_body(roster.vault_id, cred))
    # A requester may issue a one-time onboarding secret whose value lives only in
    # the vault (or is applied by hand); only an admin says where values go.
    # A site template (checked against the site policy before it runs, see
    # RotationService.connector_for) also vouches for an onboarding secret's target.
    onboarding = cred.get("kind") == "onboarding"
    harmless = onboarding and cred.get("connector") in (
        "generated", "manual") and cred.get("target") is None
    templated = onboarding and isinstance(cred.get("template"), str)
    allowed = signer is not None and (signer.ever_admin or harmless or templated)
    if signer is None or not allowed or not _sig_ok(signer, msg, stamp.get("sig")):
        raise IntegrityError(
            f"credential {name}'s configuration (connector, target, options, policy or kind) "
            "does not carry an admin's valid signature: it was edited")


def _fingerprint(pub: str) -> str:
    return hashlib.sha256(pub.encode("ascii")).hexdigest()[:32]


def seal_body(vault_id: str, cred_id: str, vdoc: Mapping[str, Any],
              keys: Mapping[str, str]) -> bytes:
    """The share set as signed: ciphertext, commitment, k and each share to each key."""
    shares = vdoc.get("shares", {})
    body = {
        "vault": vault_id, "cred": cred_id, "version": vdoc.get("version"), "k": vdoc.get("k"),
        "ct": hashlib.sha256(str(vdoc.get("ct")).encode()).hexdigest(),
        "commitment": vdoc.get("commitment"),
        "shares": {rid: {"key": _fingerprint(keys.get(rid, "")),
                         "share": hashlib.sha256(str(s).encode()).hexdigest()}
                   for rid, s in sorted(shares.items())},
    }
    return SEAL_LABEL + canonical.dumps(body)


def recipient_keys(roster: Roster) -> dict[str, str]:
    """Recipient id -> HPKE public key, for every member and kit the roster knows."""
    out = {m.id: m.hpke_pub for m in roster.members.values()}
    out.update({k.id: k.hpke_pub for k in roster.kits.values()})
    return out


def sign_seal(roster: Roster, cred_id: str, vdoc: dict[str, Any], name: str, priv: bytes
              ) -> None:
    """Stamp a version document with its sealer's signature (in place)."""
    vdoc.pop("seal_sig", None)
    msg = seal_body(roster.vault_id, cred_id, vdoc, recipient_keys(roster))
    vdoc["seal_sig"] = {"by": name, "sig": canonical.b64e(sign.sign(priv, msg))}


def verify_seal(roster: Roster, cred_id: str, vdoc: Mapping[str, Any], what: str) -> None:
    """Before opening or re-sealing: the share set is as a member sealed it, to roster keys."""
    stamp = vdoc.get("seal_sig")
    if not isinstance(stamp, dict):
        raise IntegrityError(f"the sealed shares of {what} are not signed (tampered)")
    keys = recipient_keys(roster)
    unknown = [rid for rid in vdoc.get("shares", {}) if rid not in keys]
    if unknown:
        raise IntegrityError(
            f"the sealed shares of {what} name a recipient the roster does not know")
    signer = roster.members.get(str(stamp.get("by")))
    body = {k: v for k, v in vdoc.items() if k != "seal_sig"}
    msg = seal_body(roster.vault_id, cred_id, body, keys)
    if signer is None or not _sig_ok(signer, msg, stamp.get("sig")):
        raise IntegrityError(
            f"the sealed shares of {what} do not carry a member's valid signature "
            "(a share, key or ciphertext was swapped)")
