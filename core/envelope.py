"""Sealing a credential version: secret under a DEK, DEK split and sealed per operator.

Every label below is versioned; every binding (vault, credential, version,
operator, request) goes into AEAD associated data or HPKE ``info`` so a blob
moved anywhere else fails to open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from glasskey.core.canonical import b64d, b64e
from glasskey.core.clock import Random
from glasskey.core.crypto import aead, hpke, shamir
from glasskey.core.errors import DecryptError, IntegrityError
from glasskey.core.secret import SecretValue

SECRET_LABEL = "glasskey/secret/v1"
SHARE_LABEL = "glasskey/share/v1"
GRANT_LABEL = "glasskey/grant/v1"
DEK_LABEL = "glasskey/dek/v1"


@dataclass(frozen=True)
class Recipient:
    """An operator as far as sealing is concerned: id, Shamir x, HPKE public key."""

    id: str
    x: int
    hpke_pub: bytes


def secret_aad(vault_id: str, cred_id: str, version: int) -> bytes:
    return aead.aad_for(SECRET_LABEL, vault_id, cred_id, version)


def share_info(vault_id: str, cred_id: str, version: int, operator_id: str) -> bytes:
    return hpke.info_for(SHARE_LABEL, vault_id, cred_id, version, operator_id)


def dek_context(vault_id: str, cred_id: str, version: int) -> bytes:
    return aead.aad_for(DEK_LABEL, vault_id, cred_id, version)


def grant_info(vault_id: str, request_id: str, cred_id: str, version: int,
               requester_id: str, approver_id: str, expires: float) -> bytes:
    return hpke.info_for(GRANT_LABEL, vault_id, request_id, cred_id, version,
                         requester_id, approver_id, int(expires))


def _share_bytes(share: shamir.Share) -> bytes:
    return bytes([share.x]) + share.y


def _share_from(raw: bytes) -> shamir.Share:
    if len(raw) < 2:
        raise IntegrityError("a key share is malformed")
    return shamir.Share(raw[0], raw[1:])


def seal_version(vault_id: str, cred_id: str, version: int, secret: SecretValue, k: int,
                 recipients: Iterable[Recipient], rng: Random, now: float) -> dict[str, Any]:
    """A new version document: ciphertext, DEK commitment and one sealed share each."""
    recips = list(recipients)
    if len(recips) < k:
        raise IntegrityError(
            f"cannot seal to {len(recips)} operator(s) with a threshold of {k}"
        )
    dek = rng.bytes(aead.KEY_LEN)
    ct = aead.encrypt(dek, secret.encode(), secret_aad(vault_id, cred_id, version), rng)
    shares = shamir.split(dek, len(recips), k, rng, xs=[r.x for r in recips])
    sealed = {
        r.id: b64e(hpke.seal(r.hpke_pub, _share_bytes(s), share_info(vault_id, cred_id, version,
                                                                     r.id)))
        for r, s in zip(recips, shares, strict=True)
    }
    return {
        "version": version,
        "ct": b64e(ct),
        "commitment": b64e(shamir.commitment(dek, dek_context(vault_id, cred_id, version))),
        "k": k,
        "shares": sealed,
        "created": now,
    }


def open_own_share(vault_id: str, cred_id: str, version_doc: Mapping[str, Any],
                   operator_id: str, hpke_priv: bytes) -> shamir.Share:
    sealed = version_doc["shares"].get(operator_id)
    if sealed is None:
        raise DecryptError("this operator holds no share of that credential version")
    raw = hpke.open_(hpke_priv, b64d(sealed),
                     share_info(vault_id, cred_id, int(version_doc["version"]), operator_id))
    return _share_from(raw)


def seal_grant(share: shamir.Share, requester_pub: bytes, info: bytes) -> str:
    return b64e(hpke.seal(requester_pub, _share_bytes(share), info))


def open_grant(grant: str, hpke_priv: bytes, info: bytes) -> shamir.Share:
    return _share_from(hpke.open_(hpke_priv, b64d(grant), info))


def recover_dek(vault_id: str, cred_id: str, version_doc: Mapping[str, Any],
                shares: list[shamir.Share]) -> bytes:
    version = int(version_doc["version"])
    return shamir.combine_checked(shares, b64d(version_doc["commitment"]),
                                  dek_context(vault_id, cred_id, version))


def decrypt_secret(vault_id: str, cred_id: str, version_doc: Mapping[str, Any],
                   dek: bytes) -> SecretValue:
    version = int(version_doc["version"])
    raw = aead.decrypt(dek, b64d(version_doc["ct"]), secret_aad(vault_id, cred_id, version))
    return SecretValue(raw)


def reseal_for(vault_id: str, cred_id: str, version_doc: Mapping[str, Any], dek: bytes,
               recipients: Iterable[Recipient], rng: Random) -> dict[str, Any]:
    """Re-split an already recovered DEK for a new set of operators (enrol/offboard)."""
    recips = list(recipients)
    k = int(version_doc["k"])
    version = int(version_doc["version"])
    shares = shamir.split(dek, len(recips), k, rng, xs=[r.x for r in recips])
    doc = dict(version_doc)
    doc["shares"] = {
        r.id: b64e(hpke.seal(r.hpke_pub, _share_bytes(s), share_info(vault_id, cred_id, version,
                                                                     r.id)))
        for r, s in zip(recips, shares, strict=True)
    }
    return doc


def add_share(vault_id: str, cred_id: str, version_doc: Mapping[str, Any],
              known: list[shamir.Share], recipient: Recipient) -> dict[str, Any]:
    """Give one new operator a share of the *same* polynomial (k known shares needed)."""
    version = int(version_doc["version"])
    share = shamir.evaluate_at(known, recipient.x)
    doc = dict(version_doc)
    doc["shares"] = dict(version_doc["shares"])
    doc["shares"][recipient.id] = b64e(
        hpke.seal(recipient.hpke_pub, _share_bytes(share),
                  share_info(vault_id, cred_id, version, recipient.id)))
    return doc
