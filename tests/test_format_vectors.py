"""Fixed-seed vectors pin glasskey's own formats (tests/format_vectors.py).

(a) Built again from the fixed inputs, every vector file comes out byte for
byte as stored: a refactor that changes a label, an AAD layout, the share
encoding, the canonical JSON or the audit hash input fails here.
(b) The stored blobs open and the stored lines verify with today's code and
the real HPKE suite: vaults written by earlier versions stay readable.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from format_vectors import (
    AUDIT_FILE,
    GRANT_FILE,
    SEALED_FILE,
    all_vectors,
    grant_info,
    render,
)
from glasskey.core import audit, canonical, envelope
from glasskey.core.crypto import hpke, sign
from glasskey.core.errors import DecryptError, IntegrityError


def stored(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


# -- (a) re-derived byte for byte ---------------------------------------------------------------


@pytest.mark.parametrize("path", [SEALED_FILE, GRANT_FILE, AUDIT_FILE], ids=lambda p: p.stem)
def test_vector_is_rebuilt_byte_for_byte(path: Path) -> None:
    rebuilt = render(all_vectors()[path])
    assert rebuilt == path.read_text(encoding="utf-8"), (
        f"{path.name} no longer comes out of the same inputs: a glasskey format changed. "
        "If deliberate, regenerate (python tests/format_vectors.py) and plan a migration.")


def test_the_rebuild_uses_the_fixed_ephemeral_keys_not_the_system_random() -> None:
    """Two rebuilds agree, and the real suite is back in place afterwards."""
    real = hpke._SUITE
    first = all_vectors()
    assert all_vectors() == first
    assert hpke._SUITE is real


# -- (b) the stored vectors open and verify -----------------------------------------------------


def _keys(operators: list[dict[str, Any]]) -> dict[str, bytes]:
    return {o["id"]: bytes.fromhex(o["hpke_priv"]) for o in operators}


def test_stored_sealed_version_opens_with_any_k_shares() -> None:
    vec = stored(SEALED_FILE)
    inputs, doc = vec["inputs"], vec["output"]
    keys = _keys(inputs["operators"])
    vid, cid = inputs["vault_id"], inputs["cred_id"]
    assert doc["k"] == 2 and sorted(doc["shares"]) == sorted(keys)
    shares = {op: envelope.open_own_share(vid, cid, doc, op, priv) for op, priv in keys.items()}
    for pair in (("op-alice", "op-bob"), ("op-bob", "op-carol"), ("op-alice", "op-carol")):
        dek = envelope.recover_dek(vid, cid, doc, [shares[p] for p in pair])
        assert dek == bytes.fromhex(inputs["rng"])[:32]  # the first 32 random bytes
        assert envelope.decrypt_secret(vid, cid, doc, dek).reveal() == inputs["secret"]
    # bound to where it lives: another version or credential does not open
    with pytest.raises(DecryptError):
        envelope.open_own_share(vid, cid, {**doc, "version": doc["version"] + 1},
                                "op-alice", keys["op-alice"])
    dek = envelope.recover_dek(vid, cid, doc, [shares["op-alice"], shares["op-bob"]])
    with pytest.raises(DecryptError):
        envelope.decrypt_secret(vid, "c-other", doc, dek)
    with pytest.raises(IntegrityError):
        envelope.recover_dek(vid, "c-other", doc, [shares["op-alice"], shares["op-bob"]])


def test_stored_grant_lets_the_requester_recover_the_secret() -> None:
    vec = stored(GRANT_FILE)
    inputs, out = vec["inputs"], vec["output"]
    sealed = inputs["sealed_version"]
    assert sealed == stored(SEALED_FILE)["output"]
    assert out["info"] == grant_info(inputs).hex()
    keys = _keys(stored(SEALED_FILE)["inputs"]["operators"])
    alice = keys[inputs["requester_id"]]
    vid, cid = inputs["vault_id"], inputs["cred_id"]
    granted = envelope.open_grant(out["grant"], alice, bytes.fromhex(out["info"]))
    own = envelope.open_own_share(vid, cid, sealed, "op-alice", alice)
    dek = envelope.recover_dek(vid, cid, sealed, [own, granted])
    secret = stored(SEALED_FILE)["inputs"]["secret"]
    assert envelope.decrypt_secret(vid, cid, sealed, dek).reveal() == secret
    # bound to request, operators and expiry; only the requester opens it
    for field, other in (("request_id", "r-other"), ("approver_id", "op-carol"),
                         ("expires", inputs["expires"] + 1)):
        with pytest.raises(DecryptError):
            envelope.open_grant(out["grant"], alice, grant_info({**inputs, field: other}))
    with pytest.raises(DecryptError):
        envelope.open_grant(out["grant"], keys["op-bob"], bytes.fromhex(out["info"]))


def test_stored_audit_lines_verify() -> None:
    vec = stored(AUDIT_FILE)
    signers = vec["inputs"]["signers"]
    events = vec["inputs"]["events"]
    lines = [line.encode("utf-8") for line in vec["output"]["lines"]]
    assert len(lines) == len(events)
    prev, actor_prev = audit.GENESIS, dict[str, str]()
    for seq, (raw, event) in enumerate(zip(lines, events, strict=True), start=1):
        entry = canonical.loads_canonical(raw)
        canonical.require_fields(entry, audit.ENTRY_FIELDS, "audit entry")
        assert canonical.dumps(entry) == raw  # canonical: sorted keys, no spaces, UTF-8
        assert (entry["seq"], entry["actor"], entry["event"], entry["subject"]) == (
            seq, event["actor"], event["event"], event["subject"])
        assert entry["details"] == event["details"]
        assert entry["time"] == time.strftime(  # whole seconds, UTC
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["now"]))
        assert entry["prev"] == prev
        assert entry["actor_prev"] == actor_prev.get(entry["actor"], audit.GENESIS)
        body = {k: v for k, v in entry.items() if k not in ("hash", "sig")}
        assert entry["hash"] == hashlib.sha256(canonical.dumps(body)).hexdigest()
        signer = signers.get(entry["actor"])
        if signer is None:
            assert entry["actor"] == audit.SYSTEM and entry["sig"] is None
        else:
            pub = bytes.fromhex(signer["ed25519_pub"])
            sig = canonical.b64d(entry["sig"])
            assert sign.verify(pub, bytes.fromhex(entry["hash"]), sig)
            assert not sign.verify(pub, hashlib.sha256(b"other").digest(), sig)
        prev = audit.line_hash(raw)
        actor_prev[entry["actor"]] = prev
