"""The emergency kit: break-glass when no approver can be reached.

The kit is an extra HPKE identity that holds one share of every data key, like
an operator. Its private key is printed once as a recovery code (and QR) for a
physical safe; only its fingerprint stays in the vault. Requester + kit can
open a credential without an approver. Every use is a loud, separate event:

* ``emergency.used`` in the audit log, and a banner for every operator until
  **two** approvers have reviewed it;
* the kit is burned in the same transaction (its shares are removed from every
  credential) and must be re-issued;
* the credential it opened is checked out to the requester and rotated at
  check-in like any other;
* every notification channel (``[notify]`` in glasskey.toml, core/notify.py) tells
  everyone with the approver role.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from glasskey.core.canonical import b64d, b64e
from glasskey.core.context import Service, VaultContext
from glasskey.core.crypto import hpke
from glasskey.core.envelope import (
    Recipient,
    decrypt_secret,
    open_own_share,
    recover_dek,
)
from glasskey.core.errors import (
    DecryptError,
    IntegrityError,
    PolicyError,
    UsageError,
)
from glasskey.core.lookups import (
    checked,
    checked_config,
    extend_shares,
    require_active,
    seal,
)
from glasskey.core.models import (
    Checkout,
    CheckoutKind,
    CheckoutState,
    CredentialStatus,
    Policy,
    format_duration,
)
from glasskey.core.requests import Requests
from glasskey.core.reviews import ReviewService
from glasskey.core.roster import Change, change_details
from glasskey.core.rotation import RotationResult, RotationService
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session
from glasskey.core.storage.interface import Refused, Transaction
from glasskey.core.text import cap_all

S = CheckoutState
CODE_PREFIX = "GK2"
KEY_LABEL = b"glasskey/kit-key/v2"
PART_LABEL = "glasskey/kit-part/v2"
PART_LEN = 32
#: Base32 letters of one part's body: its number, the part and a 3-byte checksum.
BODY_LEN = len(base64.b32encode(bytes(1 + PART_LEN + 3)).rstrip(b"="))


@dataclass(frozen=True)
class KitIssued:
    """A new kit: its id and fingerprint, and who holds its two parts (never a code)."""

    id: str
    fingerprint: str
    holders: tuple[str, ...]


def fingerprint(pub: bytes) -> str:
    digest = hashlib.sha256(b"glasskey/kit/v1" + pub).hexdigest()[:20]
    return ":".join(digest[i:i + 4] for i in range(0, 20, 4))


def kit_key(part1: bytes, part2: bytes) -> bytes:
    """The kit's HPKE private key: both parts are needed, either alone says nothing."""
    return hashlib.sha256(KEY_LABEL + part1 + part2).digest()


def encode_part(number: int, part: bytes) -> str:
    raw = bytes([number]) + part + hashlib.sha256(bytes([number]) + part).digest()[:3]
    text = base64.b32encode(raw).decode("ascii").rstrip("=")
    return f"{CODE_PREFIX}-{number}-" + "-".join(text[i:i + 5] for i in range(0, len(text), 5))


def decode_parts(code: str) -> bytes:
    """Both parts (in any order, spaces and dashes ignored) -> the kit's private key."""
    compact = "".join((code or "").upper().split()).replace("-", "")
    if compact.startswith("GK1"):
        raise UsageError("that is a single-part kit code of glasskey 0.1; kits now come in "
                         "two parts held by two people: issue a new kit")
    if not compact.startswith(CODE_PREFIX):
        raise UsageError("that is not a glasskey kit part (they start with GK2-1- and GK2-2-)")
    parts: dict[int, bytes] = {}
    # Parts have a fixed length, so the code is cut by length, not at each "GK2": a part's
    # base32 body can itself contain "GK2" (one in ~600 parts does).
    step = len(CODE_PREFIX) + 1 + BODY_LEN
    for at in range(0, len(compact), step):
        if not compact.startswith(CODE_PREFIX, at):
            raise UsageError("a kit part has a typo (each part is GK2-, its number, then "
                             f"{BODY_LEN} letters and digits)")
        chunk = compact[at + len(CODE_PREFIX):at + step]
        body = chunk[1:]
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError:
            raise UsageError("a kit part has a typo (invalid characters)") from None
        number, part, check = raw[0], raw[1:-3], raw[-3:]
        if chunk[:1] not in ("1", "2") or number != int(chunk[0]) or len(part) != PART_LEN \
                or hashlib.sha256(raw[:-3]).digest()[:3] != check:
            raise UsageError("a kit part has a typo (checksum mismatch)")
        parts[number] = part
    if set(parts) != {1, 2}:
        raise UsageError("an emergency use needs both parts of the kit (GK2-1-... and "
                         "GK2-2-...), from the two envelopes in the safe")
    return kit_key(parts[1], parts[2])


class KitService(Service):
    """The emergency kit: issue, print a part, burn, sweep, and the break-glass use."""

    def __init__(self, ctx: VaultContext, requests: Requests, reviews: ReviewService,
                 rotation: RotationService) -> None:
        super().__init__(ctx)
        self.requests = requests
        self.reviews = reviews
        self.rotation = rotation

    def active_kit(self) -> dict[str, Any] | None:
        """The active kit's record, as the signed roster says (none if it says none)."""
        with self.store.read() as txn:
            kit = txn.roster.active_kit()
            return txn.table("kits").get(kit.id) if kit is not None else None

    def _part_info(self, kit_id: str, number: int, operator_id: str) -> bytes:
        return hpke.info_for(PART_LABEL, self.vault_id, kit_id, number, operator_id)

    def issue_kit(self, sessions: Sequence[Session],
                  progress: Callable[[int, int], None] | None = None) -> KitIssued:
        """A new kit (burning any active one): two operators, one an admin, each of whom
        is given one part sealed to their own key; nobody ever holds both.

        The issuing process holds both parts for a moment (it derives the kit's
        public key); each part then exists only sealed to its holder, who
        prints it on their own terminal with ``glasskey kit part``.
        """
        distinct = list({s.name: s for s in sessions}.values())
        if len(distinct) < 2:
            raise PolicyError("issuing an emergency kit needs two different operators")
        part1, part2 = self.ctx.rng.bytes(PART_LEN), self.ctx.rng.bytes(PART_LEN)
        priv = kit_key(part1, part2)
        pub = hpke.public_from_private(priv)
        with self.store.transaction() as txn:
            members = [require_active(txn, s) for s in distinct]
            if not any(m.has("admin") for m in members):
                raise PolicyError("issuing an emergency kit needs an admin")
            old = txn.roster.active_kit()
            if old is not None:
                self._burn(txn, distinct[0], old.id, "re-issued")
            meta = txn.meta
            kit_id = self.ctx.new_id("k-")
            x = int(meta["next_x"])
            meta["next_x"] = x + 1
            txn.set_meta(meta)
            fp = fingerprint(pub)
            record = {"id": kit_id, "x": x, "hpke_pub": b64e(pub), "fingerprint": fp,
                      "status": "active"}
            holders = distinct[:2]
            details, roster = change_details(
                txn.roster, Change.KIT_ISSUE, kit_id, record,
                [(s.name, s.sign_priv) for s in holders],
                {"fingerprint": fp, "countersigned_by": sorted(s.name for s in holders),
                 "part_holders": [s.name for s in holders]})
            txn.roster = roster
            extend_shares(self.vault_id, txn, distinct, Recipient(kit_id, x, pub), progress)
            parts = {}
            for number, (s, part) in enumerate(zip(holders, (part1, part2), strict=True), 1):
                parts[s.name] = {"number": number, "blob": b64e(hpke.seal(
                    hpke.public_from_private(s.hpke_priv), part,
                    self._part_info(kit_id, number, s.operator_id)))}
            txn.table("kits").put(kit_id, {
                **record, "issued_at": self.now(),
                "issued_by": sorted(s.name for s in holders), "parts": parts,
            })
            txn.record_change(holders[0].signer, "emergency.kit-issued", kit_id, details, roster)
        return KitIssued(kit_id, fp, tuple(s.name for s in holders))

    def kit_part(self, session: Session) -> str:
        """This operator's part of the active kit, once, for the safe (then erased here)."""
        with self.store.transaction() as txn:
            require_active(txn, session)
            kit = txn.roster.active_kit()
            doc = txn.table("kits").get(kit.id) if kit is not None else None
            if kit is None or doc is None:
                raise PolicyError("no emergency kit is issued")
            mine = (doc.get("parts") or {}).get(session.name)
            if mine is None:
                raise PolicyError(f"{session.name} holds no unprinted part of kit {kit.id}")
            number = int(mine["number"])
            part = hpke.open_(session.hpke_priv, b64d(mine["blob"]),
                              self._part_info(kit.id, number, session.operator_id))
            del doc["parts"][session.name]
            txn.table("kits").put(kit.id, doc)
            txn.record(session.signer, "emergency.kit-part-printed", kit.id,
                       {"part": number, "fingerprint": kit.fingerprint})
        return encode_part(number, part)

    def burn_kit(self, session: Session, why: str = "exposed") -> list[str]:
        """Burn the active kit now (suspected exposure); returns what must be rotated."""
        with self.store.transaction() as txn:
            require_active(txn, session)
            kit = txn.roster.active_kit()
            if kit is None:
                raise PolicyError("no emergency kit is issued")
            return self._burn(txn, session, kit.id, why)

    def _burn(self, txn: Transaction, session: Session, kit_id: str, why: str) -> list[str]:
        """Remove the kit's shares everywhere, mark it burned (a signed roster change)
        and remember every credential whose value it could open until each is rotated:
        copies of old sealed files plus both parts would still open those values."""
        exposed: dict[str, int] = {}
        sealed = txn.table("sealed")
        for sdoc in list(sealed.values()):
            changed = False
            for slot in ("current", "pending"):
                vdoc = sdoc.get(slot)
                if vdoc and kit_id in vdoc["shares"]:
                    checked(txn, sdoc["cred_id"], vdoc, f"credential {sdoc['cred_id']}")
                    vdoc = dict(vdoc)
                    vdoc["shares"] = {k: v for k, v in vdoc["shares"].items() if k != kit_id}
                    sdoc[slot] = seal(txn, session, sdoc["cred_id"], vdoc)
                    changed = True
                    if slot == "current":
                        exposed[sdoc["cred_id"]] = int(vdoc["version"])
            if changed:
                sealed.put(sdoc["cred_id"], sdoc)
        kit = txn.roster.kits[kit_id]
        details, roster = change_details(
            txn.roster, Change.KIT_BURN, kit_id, kit.record(), [(session.name,
                                                                 session.sign_priv)],
            {"fingerprint": kit.fingerprint, "why": why, "to_rotate": len(exposed)})
        doc = txn.table("kits").get(kit_id) or {}
        doc.update(status="burned", burned_at=self.now(), burned_because=why,
                   to_rotate=exposed if why != "re-issued" else {}, parts={})
        txn.table("kits").put(kit_id, doc)
        txn.record_change(session.signer, "emergency.kit-burned", kit_id, details, roster)
        names = []
        for cred_id in exposed:
            cred = txn.table("credentials").get(cred_id)
            if cred is not None:
                names.append(cred["name"])
        return sorted(names)

    def kit_exposure(self) -> list[str]:
        """Credentials a burned (used or exposed) kit could still open from old copies."""
        with self.store.read() as txn:
            out: set[str] = set()
            for doc in txn.table("kits").values():
                out.update(doc.get("to_rotate") or {})
            return sorted(out)

    def kit_sweep(self, session: Session,
                  progress: Callable[[int, int], None] | None = None) -> list[RotationResult]:
        """Rotate everything a burned kit could open (the alert stays until this is done)."""
        names = []
        with self.store.read() as txn:
            for cred_id in sorted(self.kit_exposure()):
                cred = txn.table("credentials").get(cred_id)
                if cred is not None and cred.get("status") != CredentialStatus.REVOKED:
                    names.append(cred["name"])
        return self.rotation.rotate_many(session, names, progress)

    def emergency_reveal(self, session: Session, cred_name: str, code: str, reason: str,
                         ticket: str, duration: int) -> tuple[Checkout, SecretValue]:
        """Requester + kit: release a credential without an approver, loudly."""
        reason, ticket = (reason or "").strip(), (ticket or "").strip()
        cap_all(reason=reason, ticket=ticket)
        if not (reason and ticket):
            raise UsageError("an emergency use needs --reason and --ticket")
        priv = decode_parts(code)
        pub = hpke.public_from_private(priv)
        with self.store.transaction() as txn:
            require_active(txn, session, "requester")
            found = next((k for k in txn.roster.kits.values() if k.hpke_pub == b64e(pub)),
                         None)
            if found is None or found.status != "active":
                txn.record(session.signer, "emergency.refused", cred_name, {
                    "why": "unknown-kit" if found is None else "kit-burned",
                    "fingerprint": fingerprint(pub)})
                raise Refused(PolicyError(
                    "that emergency kit is not the active one (burned or never issued)"))
            kit = {"id": found.id, "fingerprint": found.fingerprint}
            cred = checked_config(txn, self.find_credential(txn, cred_name))
            policy = Policy.from_doc(cred["policy"])
            if policy.k > 2:
                raise PolicyError(f"{cred_name} needs {policy.k} people; the kit stands in "
                                  "for one approver only")
            if duration > policy.max_duration:
                raise UsageError(f"duration exceeds {format_duration(policy.max_duration)}")
            if cred["status"] in (CredentialStatus.ROTATION_FAILED, CredentialStatus.REVOKED):
                raise PolicyError(f"{cred_name} is {cred['status']}")
            busy = txn.table("active").get(cred["id"])
            if busy is not None:
                raise PolicyError(f"{cred_name} already has an open checkout "
                                  f"{busy['request']}; one holder at a time")
            sealed = txn.table("sealed").get(cred["id"])
            if sealed is None:
                raise IntegrityError(f"{cred_name} has no sealed value")
            vdoc = checked(txn, cred["id"], sealed["current"], cred_name)
            try:
                shares = [
                    open_own_share(self.vault_id, cred["id"], vdoc, session.operator_id,
                                   session.hpke_priv),
                    open_own_share(self.vault_id, cred["id"], vdoc, kit["id"], priv),
                ]
                dek = recover_dek(self.vault_id, cred["id"], vdoc, shares)
                secret = decrypt_secret(self.vault_id, cred["id"], vdoc, dek)
            except (DecryptError, IntegrityError):
                raise IntegrityError("the kit's share does not open this credential") from None
            now = txn.entry_time()  # clock rules: the lease starts at the entry's time
            req: dict[str, Any] = {
                "id": self.ctx.new_id("e-"), "kind": CheckoutKind.EMERGENCY, "cred_id": cred["id"],
                "cred_name": cred_name, "requester": session.name,
                "requester_id": session.operator_id, "reason": reason, "ticket": ticket,
                "duration": int(duration), "created": now, "state": S.CHECKED_OUT,
                "needed": 0, "policy": policy.to_doc(), "approvals": [],
                "version": int(vdoc["version"]), "revealed_at": now,
                "lease_expires": now + duration, "kit": kit["id"],
            }
            self.requests.save(txn, req)
            txn.record(session.signer, "emergency.used", req["id"], {
                "credential": cred_name, "kit": kit["id"], "fingerprint": kit["fingerprint"],
                "reason": reason, "ticket": ticket, "lease_expires": req["lease_expires"],
            })
            self._burn(txn, session, kit["id"], "used")
            self.reviews.queue(txn, req["id"], "emergency", cred_name, session.name,
                               f"EMERGENCY: {session.name} opened {cred_name} with the kit "
                               f"({ticket}: {reason})", required=2)
        # Notified (webhook, command hook, e-mail) by core/notify.py from the signed
        # emergency.used entry, after the lock is released, without holding the secret.
        return Checkout.from_doc(req), secret
