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
* the site's notification hook (``[notify] command`` in glasskey.toml) is run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.canonical import b64e
from core.crypto import hpke
from core.envelope import (
    Recipient,
    decrypt_secret,
    open_own_share,
    recover_dek,
)
from core.errors import (
    DecryptError,
    IntegrityError,
    PolicyError,
    UsageError,
)
from core.models import Checkout, CheckoutState, Policy, format_duration
from core.rotation import RotationOps
from core.secret import SecretValue
from core.session import Session
from core.store import Refused, Transaction
from core.text import cap_all

S = CheckoutState
CODE_PREFIX = "GK1"


@dataclass(frozen=True, repr=False)
class KitIssued:
    id: str
    fingerprint: str
    code: str  # printed once, for the safe; never stored

    def __repr__(self) -> str:
        return f"KitIssued({self.id!r}, {self.fingerprint!r})"


def fingerprint(pub: bytes) -> str:
    digest = hashlib.sha256(b"glasskey/kit/v1" + pub).hexdigest()[:20]
    return ":".join(digest[i:i + 4] for i in range(0, 20, 4))


def encode_code(priv: bytes) -> str:
    raw = priv + hashlib.sha256(priv).digest()[:3]
    text = base64.b32encode(raw).decode("ascii").rstrip("=")
    return CODE_PREFIX + "-" + "-".join(text[i:i + 5] for i in range(0, len(text), 5))


def decode_code(code: str) -> bytes:
    text = "".join((code or "").upper().split()).replace("-", "")
    if not text.startswith(CODE_PREFIX):
        raise UsageError("that is not a glasskey recovery code (it starts with GK1-)")
    body = text[len(CODE_PREFIX):]
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        raise UsageError("the recovery code has a typo (invalid characters)") from None
    priv, check = raw[:-3], raw[-3:]
    if len(priv) != 32 or hashlib.sha256(priv).digest()[:3] != check:
        raise UsageError("the recovery code has a typo (checksum mismatch)")
    return priv


class EmergencyOps(RotationOps):
    def active_kit(self) -> dict[str, Any] | None:
        with self.store.read() as txn:
            for doc in txn.table("kits").values():
                if doc["status"] == "active":
                    return doc
        return None

    def issue_kit(self, sessions: Sequence[Session],
                  progress: Callable[[int, int], None] | None = None) -> KitIssued:
        """A new kit (burning any active one): needs two operators, one an admin."""
        if len({s.name for s in sessions}) < 2:
            raise PolicyError("issuing an emergency kit needs two different operators")
        priv = hpke.generate_private()
        pub = hpke.public_from_private(priv)
        with self.store.transaction() as txn:
            for s in sessions:
                self._require_active(txn, s)
            if not any(s.has("admin") for s in sessions):
                raise PolicyError("issuing an emergency kit needs an admin")
            for old in txn.table("kits").values():
                if old["status"] == "active":
                    self._burn(txn, sessions[0], old, "re-issued")
            meta = txn.meta
            kit_id = self.new_id("k-")
            x = int(meta["next_x"])
            meta["next_x"] = x + 1
            txn.set_meta(meta)
            self._extend_shares(txn, sessions, Recipient(kit_id, x, pub), progress)
            fp = fingerprint(pub)
            txn.table("kits").put(kit_id, {
                "id": kit_id, "fingerprint": fp, "hpke_pub": b64e(pub), "x": x,
                "status": "active", "issued_at": self.now(),
                "issued_by": sorted(s.name for s in sessions),
            })
            txn.record(sessions[0].signer, "emergency.kit-issued", kit_id, {
                "fingerprint": fp, "countersigned_by": sorted(s.name for s in sessions),
            })
        return KitIssued(kit_id, fp, encode_code(priv))

    def _burn(self, txn: Transaction, session: Session, kit: dict[str, Any], why: str
              ) -> None:
        """Remove the kit's shares everywhere and mark it burned."""
        sealed = txn.sharded("sealed")
        for sdoc in list(sealed.values()):
            changed = False
            for slot in ("current", "pending"):
                vdoc = sdoc.get(slot)
                if vdoc and kit["id"] in vdoc["shares"]:
                    vdoc = dict(vdoc)
                    vdoc["shares"] = {k: v for k, v in vdoc["shares"].items()
                                      if k != kit["id"]}
                    sdoc[slot] = vdoc
                    changed = True
            if changed:
                sealed.put(sdoc["cred_id"], sdoc)
        kit["status"] = "burned"
        kit["burned_at"] = self.now()
        kit["burned_because"] = why
        txn.table("kits").put(kit["id"], kit)
        txn.record(session.signer, "emergency.kit-burned", kit["id"],
                   {"fingerprint": kit["fingerprint"], "why": why})

    def emergency_reveal(self, session: Session, cred_name: str, code: str, reason: str,
                         ticket: str, duration: int) -> tuple[Checkout, SecretValue]:
        """Requester + kit: release a credential without an approver, loudly."""
        reason, ticket = (reason or "").strip(), (ticket or "").strip()
        cap_all(reason=reason, ticket=ticket)
        if not (reason and ticket):
            raise UsageError("an emergency use needs --reason and --ticket")
        priv = decode_code(code)
        pub = hpke.public_from_private(priv)
        with self.store.transaction() as txn:
            self._require_active(txn, session, "requester")
            kit = next((k for k in txn.table("kits").values()
                        if k["hpke_pub"] == b64e(pub)), None)
            if kit is None or kit["status"] != "active":
                txn.record(session.signer, "emergency.refused", cred_name, {
                    "why": "unknown-kit" if kit is None else "kit-burned",
                    "fingerprint": fingerprint(pub)})
                raise Refused(PolicyError(
                    "that emergency kit is not the active one (burned or never issued)"))
            cred = self._credential_doc(txn, cred_name)
            policy = Policy.from_doc(cred["policy"])
            if policy.k > 2:
                raise PolicyError(f"{cred_name} needs {policy.k} people; the kit stands in "
                                  "for one approver only")
            if duration > policy.max_duration:
                raise UsageError(f"duration exceeds {format_duration(policy.max_duration)}")
            if cred["status"] in ("rotation-failed", "revoked"):
                raise PolicyError(f"{cred_name} is {cred['status']}")
            busy = txn.table("active").get(cred["id"])
            if busy is not None:
                raise PolicyError(f"{cred_name} already has an open checkout "
                                  f"{busy['request']}; one holder at a time")
            sealed = txn.sharded("sealed").get(cred["id"])
            if sealed is None:
                raise IntegrityError(f"{cred_name} has no sealed value")
            vdoc = sealed["current"]
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
            now = self.now()
            req: dict[str, Any] = {
                "id": self.new_id("e-"), "kind": "emergency", "cred_id": cred["id"],
                "cred_name": cred_name, "requester": session.name,
                "requester_id": session.operator_id, "reason": reason, "ticket": ticket,
                "duration": int(duration), "created": now, "state": S.CHECKED_OUT,
                "needed": 0, "policy": policy.to_doc(), "approvals": [],
                "version": int(vdoc["version"]), "revealed_at": now,
                "lease_expires": now + duration, "kit": kit["id"],
            }
            self._save(txn, req)
            txn.record(session.signer, "emergency.used", req["id"], {
                "credential": cred_name, "kit": kit["id"], "fingerprint": kit["fingerprint"],
                "reason": reason, "ticket": ticket, "lease_expires": req["lease_expires"],
            })
            self._burn(txn, session, kit, "used")
            self._queue_review(txn, req["id"], "emergency", cred_name, session.name,
                               f"EMERGENCY: {session.name} opened {cred_name} with the kit "
                               f"({ticket}: {reason})", required=2)
            event = {"event": "emergency.used", "request": req["id"],
                     "credential": cred_name, "requester": session.name, "ticket": ticket,
                     "time": now}
            txn.after_commit.append(lambda: self.notify(session, event))
        return Checkout.from_doc(req), secret

    def notify(self, session: Session, event: dict[str, Any]) -> None:
        """Run the site's notification hook with the event as JSON on stdin.

        A failing hook is recorded, never fatal: the emergency already happened
        and is in the audit log; the hook only makes it louder.
        """
        command = self.site_setting("notify", "command")
        if not command:
            return
        try:
            subprocess.run([command], input=json.dumps(event).encode(), timeout=30,
                           check=True, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            with self.store.transaction() as txn:
                txn.record(session.signer, "emergency.notify-failed", str(event["request"]),
                           {"why": type(exc).__name__})

    def site_setting(self, section: str, key: str) -> str | None:
        return None

    def alerts(self) -> list[str]:
        """What every operator's screen must show until it is dealt with."""
        now = self.now()
        out = []
        for item in self.review_queue():
            if item.kind == "emergency":
                out.append(f"EMERGENCY KIT USED: {item.summary} — needs review by "
                           f"{item.required - len(item.reviews)} more approver(s)")
            elif item.overdue(now):
                out.append(f"review overdue: {item.summary}")
        for flag in self.flagged():
            if flag["status"] == "rotation-failed":
                out.append(f"ROTATION-FAILED: {flag['name']}: {flag['failure']}")
            elif flag["status"] == "apply-pending":
                out.append(f"APPLY-PENDING: {flag['name']} waits for an operator to apply its "
                           "new value")
        for co in self.checkouts(open_only=True):
            if co.display_state(now) == "overdue":
                out.append(f"OVERDUE: {co.cred_name} held by {co.requester} ({co.id})")
        if self.active_kit() is None:
            out.append("no emergency kit is issued ('glasskey kit issue')")
        return out
