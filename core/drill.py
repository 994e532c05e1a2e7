"""Readiness drills: prove, before the outage, that each key holder can do their part.

``glasskey drill`` (share drill). The operator unlocks (passphrase + TOTP:
that is the first thing proven) and, for a chosen or a random credential:

1. the credential's configuration carries an admin's signature (verify_config);
2. the current version's share set carries its sealer's signature, binding the
   ciphertext, the DEK commitment, k and every recipient's key fingerprint
   (``roster.verify_seal``): the share set is the one a member sealed;
3. the operator's own share opens with their HPKE private key: HPKE is
   authenticated encryption, and its ``info`` binds vault, credential, version
   and operator, so a share that opens is the one sealed to them, unaltered;
4. the opened share is well-formed: its x is the operator's share index in the
   signed roster and its y is as long as a data key.

What a single-share drill does **not** prove: that the share lies on the same
polynomial as the others. The DEK commitment (``shamir.commitment``) can only
be checked on a recombined DEK, and a drill never combines shares (nothing is
released, nobody else's share is touched). A sealer who sealed a wrong share
would have signed it (step 2), so such a share is attributable, and every
reveal and approval checks the commitment on the combined DEK.

``glasskey drill --kit --check-code CODE`` (kit drill). The check code printed
with each kit part (``kit part``) is the kit's fingerprint: a digest of its
public key. The drill compares the code from the envelope in the safe with the
active kit of the signed roster, recomputing the fingerprint from the roster's
public key, without using (and so without burning) the kit.

Each drill is a signed audit entry, ``drill.passed`` or ``drill.failed``; the
custody report lists them (core/report.py, "Drills").
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from glasskey.core.canonical import b64d
from glasskey.core.context import Service
from glasskey.core.crypto import aead
from glasskey.core.envelope import open_own_share
from glasskey.core.errors import DecryptError, GlasskeyError, IntegrityError, PolicyError
from glasskey.core.lookups import checked, checked_config, require_active
from glasskey.core.session import Session
from glasskey.core.storage.interface import Refused, Transaction


@dataclass(frozen=True)
class DrillResult:
    kind: str  # "share" or "kit"
    subject: str  # credential name or kit id
    version: int | None
    checks: tuple[str, ...]


SHARE_CHECKS = ("unlock", "config-signature", "share-set-signature", "own-share-opens",
                "share-well-formed")
KIT_CHECKS = ("kit-active-in-signed-roster", "fingerprint-matches-public-key",
              "check-code-matches")


def normalise_code(code: str) -> str:
    return "".join(c for c in (code or "").lower() if c in "0123456789abcdef")


class DrillService(Service):
    """Share and kit drills: each proves one holder's part, nothing is released."""

    def _kit_fingerprint(self, pub: bytes) -> str:
        from glasskey.core.emergency import fingerprint

        return fingerprint(pub)

    def _random_credential(self, txn: Transaction, session: Session) -> dict[str, Any]:
        """A random credential whose current version holds a share for this operator
        (reads shards in a random order and stops at the first that has one)."""
        rand = secrets.SystemRandom()
        sealed = txn.table("sealed")
        order = list(range(sealed.partitions()))
        rand.shuffle(order)
        creds = txn.table("credentials")
        for index in order:  # one partition at a time: 10,000 credentials are not all read
            docs = sealed.partition(index)
            rand.shuffle(docs)
            for sdoc in docs:
                cur = sdoc.get("current") or {}
                if session.operator_id in (cur.get("shares") or {}):
                    cred = creds.get(sdoc["cred_id"])
                    if cred is not None and cred.get("status") != "revoked":
                        return cred
        raise PolicyError(f"{session.name} holds no share of any credential")

    def drill(self, session: Session, cred_name: str | None = None) -> DrillResult:
        """The share drill (module docstring). Nothing is combined or released."""
        with self.store.transaction() as txn:
            member = require_active(txn, session)
            cred = self.find_credential(txn, cred_name) if cred_name else \
                self._random_credential(txn, session)
            name = str(cred["name"])
            done = ["unlock"]
            version: int | None = None
            try:
                checked_config(txn, cred)
                done.append("config-signature")
                sdoc = txn.table("sealed").get(cred["id"])
                if sdoc is None or not sdoc.get("current"):
                    raise IntegrityError(f"{name} has no sealed value")
                vdoc = sdoc["current"]
                version = int(vdoc["version"])
                checked(txn, cred["id"], vdoc, name)
                done.append("share-set-signature")
                if session.operator_id not in vdoc["shares"]:
                    raise PolicyError(f"{session.name} holds no share of {name} "
                                      f"version {version}")
                share = open_own_share(self.vault_id, cred["id"], vdoc, session.operator_id,
                                       session.hpke_priv)
                done.append("own-share-opens")
                if share.x != member.x or len(share.y) != aead.KEY_LEN \
                        or len(b64d(vdoc["commitment"])) == 0:
                    raise IntegrityError(f"{session.name}'s share of {name} is malformed")
                done.append("share-well-formed")
            except (GlasskeyError, ValueError, KeyError) as exc:
                why = "the share does not open" if isinstance(exc, DecryptError) else str(exc)
                txn.record(session.signer, "drill.failed", name, {
                    "kind": "share", "version": version, "passed": done,
                    "failed": SHARE_CHECKS[len(done)], "why": why[:200]})
                error = exc if isinstance(exc, GlasskeyError) else IntegrityError(why)
                raise Refused(error) from None
            txn.record(session.signer, "drill.passed", name, {
                "kind": "share", "version": version, "k": int(vdoc["k"]),
                "checks": list(SHARE_CHECKS)})
        return DrillResult("share", name, version, SHARE_CHECKS)

    def kit_drill(self, session: Session, check_code: str) -> DrillResult:
        """The kit drill: the code printed with the kit names the active kit."""
        with self.store.transaction() as txn:
            require_active(txn, session)
            kit = txn.roster.active_kit()
            done: list[str] = []
            why = ""
            if kit is None:
                why = "no emergency kit is issued"
            else:
                done.append("kit-active-in-signed-roster")
                if self._kit_fingerprint(b64d(kit.hpke_pub)) != kit.fingerprint:
                    why = "the roster's kit fingerprint does not match its public key"
                else:
                    done.append("fingerprint-matches-public-key")
                    if normalise_code(check_code) != normalise_code(kit.fingerprint):
                        why = ("the check code does not match the active kit (an old or "
                               "foreign kit in the safe?)")
                    else:
                        done.append("check-code-matches")
            subject = kit.id if kit is not None else "kit"
            if why:
                txn.record(session.signer, "drill.failed", subject, {
                    "kind": "kit", "passed": done, "failed": KIT_CHECKS[len(done)],
                    "why": why})
                raise Refused(PolicyError(f"kit drill failed: {why}"))
            txn.record(session.signer, "drill.passed", subject, {
                "kind": "kit", "checks": list(KIT_CHECKS)})
        return DrillResult("kit", subject, None, KIT_CHECKS)
