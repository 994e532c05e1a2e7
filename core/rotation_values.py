"""Values only the rotating process holds, and how it keeps them across a crash.

* ``current_value``: the value the target has now, opened from the holder's
  own share and the approvers' grants (kept until the checkout closes), so
  that the holder's client can hand it to the connector; never shown.
* the *resume* blob: the pending (and old) value sealed to the rotating
  operator alone, so that their next process can finish after a crash
  (deleted at commit; SECURITY.md explains this residual exposure).
* the *apply* copies of a manual target's value are sealed under ``apply_info``.
"""

from __future__ import annotations

from typing import Any

from glasskey.core import canonical
from glasskey.core.canonical import b64d, b64e
from glasskey.core.crypto import hpke
from glasskey.core.envelope import (
    decrypt_secret,
    grant_info,
    open_grant,
    open_own_share,
    recover_dek,
)
from glasskey.core.errors import DecryptError, IntegrityError
from glasskey.core.secret import SecretValue
from glasskey.core.session import Session

RESUME_LABEL = "glasskey/rotation-resume/v1"
APPLY_LABEL = "glasskey/rotation-apply/v1"


def apply_info(vault_id: str, cred_id: str, version: int, operator_id: str) -> bytes:
    """The HPKE ``info`` of a manual target's value sealed to ``operator_id``."""
    return hpke.info_for(APPLY_LABEL, vault_id, cred_id, version, operator_id)


def current_value(vault_id: str, session: Session, req: dict[str, Any] | None,
                  vdoc: dict[str, Any]) -> SecretValue | None:
    """The value the target has now, if this session is its holder (for self-rotation).

    Uses the holder's grants, kept until the checkout closes; the value is
    never shown, only handed to the connector.
    """
    if req is None or req.get("requester") != session.name:
        return None
    if int(req.get("version", -1)) != int(vdoc["version"]):
        return None
    try:
        shares = [open_own_share(vault_id, req["cred_id"], vdoc, session.operator_id,
                                 session.hpke_priv)]
        for a in req.get("approvals", []):
            if a.get("grant") is None:
                return None
            info = grant_info(vault_id, req["id"], req["cred_id"], int(req["version"]),
                              session.operator_id, a["approver_id"], float(a["expires"]))
            shares.append(open_grant(a["grant"], session.hpke_priv, info))
        dek = recover_dek(vault_id, req["cred_id"], vdoc, shares)
        return decrypt_secret(vault_id, req["cred_id"], vdoc, dek)
    except (DecryptError, IntegrityError):
        return None


def seal_resume(vault_id: str, session: Session, cred_id: str, version: int,
                new: SecretValue, old: SecretValue | None) -> dict[str, Any]:
    payload = canonical.dumps({"new": new.reveal(),
                               "old": old.reveal() if old is not None else None})
    blob = hpke.seal(hpke.public_from_private(session.hpke_priv), payload,
                     hpke.info_for(RESUME_LABEL, vault_id, cred_id, version,
                                   session.operator_id))
    return {"operator": session.operator_id, "blob": b64e(blob)}


def open_resume(vault_id: str, session: Session, cred_id: str, pending: dict[str, Any]
                ) -> tuple[SecretValue | None, SecretValue | None]:
    """The pending and old values from this operator's resume blob (None, None if not
    theirs or unreadable)."""
    resume = pending.get("resume")
    if not resume or resume.get("operator") != session.operator_id:
        return None, None
    try:
        raw = hpke.open_(session.hpke_priv, b64d(resume["blob"]),
                         hpke.info_for(RESUME_LABEL, vault_id, cred_id,
                                       int(pending["version"]), session.operator_id))
    except DecryptError:
        return None, None
    doc = canonical.loads(raw)
    old = doc.get("old")
    return SecretValue(doc["new"]), SecretValue(old) if old is not None else None
