"""Fixed-seed vectors for glasskey's own formats: how they are built.

Three formats outlive any one version of the code, so a refactor must not
change their bytes by accident (tests/test_format_vectors.py):

* a **sealed credential version** (core/envelope.py ``seal_version``): the
  secret under a fresh data key (AES-256-GCM, AAD binding vault, credential
  and version), the data key split (Shamir) with a commitment, and each share
  HPKE-sealed to one operator;
* a **grant** (``seal_grant``): an approver's share re-sealed to the requester,
  bound to the request, both operators and the expiry;
* **audit lines** (core/audit.py ``build_entry``): canonical JSON, its SHA-256,
  the actor's Ed25519 signature over it, and the two hash chains.

Every input is fixed: keys and the bytes handed out through the injected
``Random`` (``FixedRandom``: the exact bytes, and the vector checks that all
of them were used). The one source of randomness that does not go through
``Random`` is HPKE's ephemeral key, which ``cryptography`` draws inside its
Rust suite; ``fixed_ephemeral_keys`` swaps the module's suite object
(``glasskey.core.crypto.hpke._SUITE``, the narrowest point) for one that seals
with given ephemeral keys by the RFC 9180 reference in test_crypto_hpke.py
(itself checked against RFC 9180 A.1.1) and opens with the real suite.

Regenerate only for a deliberate format change (then old vaults need a
migration): ``.venv/bin/python tests/format_vectors.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from glasskey.core import audit, envelope
from glasskey.core.crypto import hpke, sign
from glasskey.core.secret import SecretValue
from test_crypto_hpke import _ref_seal

VECTORS = Path(__file__).parent / "vectors"
SEALED_FILE = VECTORS / "glasskey_sealed_version.json"
GRANT_FILE = VECTORS / "glasskey_grant.json"
AUDIT_FILE = VECTORS / "glasskey_audit_lines.json"

VAULT_ID = "v-0123456789abcdef"
CRED_ID = "c-fedcba9876543210"
VERSION = 3
#: Not ASCII and longer than one AES block: pins the UTF-8 encoding too.
SECRET = "pg-breakglass: Ünïcode ✓ 0123456789 abcdefghijklmnopqrstuvwxyz"
NOW = 1_800_000_123.75


def fixed(label: str, n: int) -> bytes:
    """``n`` bytes that depend only on ``label`` (SHA-256 in counter mode)."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"glasskey-vectors/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


class FixedRandom:
    """The ``Random`` of core/clock.py handing out exactly the given bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._used = 0

    def bytes(self, n: int) -> bytes:
        if self._used + n > len(self._data):
            raise AssertionError("the format drew more random bytes than the vector holds")
        out = self._data[self._used:self._used + n]
        self._used += n
        return out

    @property
    def left(self) -> int:
        return len(self._data) - self._used


class FixedEphemeralSuite:
    """Stands in for the HPKE suite object: seals with the given ephemeral
    private keys in order (RFC 9180 base mode), opens with the real suite."""

    def __init__(self, ephemerals: Sequence[bytes]) -> None:
        self._ephemerals = list(ephemerals)
        self._real = hpke._SUITE

    def encrypt(self, plaintext: bytes, public_key: X25519PublicKey,
                info: bytes | None = None) -> bytes:
        if not self._ephemerals:
            raise AssertionError("the format sealed more HPKE blobs than the vector holds")
        return _ref_seal(public_key.public_bytes_raw(), self._ephemerals.pop(0), plaintext,
                         info or b"")

    def decrypt(self, blob: bytes, private_key: Any, info: bytes | None = None) -> bytes:
        return self._real.decrypt(blob, private_key, info)

    @property
    def left(self) -> int:
        return len(self._ephemerals)


@contextlib.contextmanager
def fixed_ephemeral_keys(ephemerals: Sequence[bytes]) -> Iterator[FixedEphemeralSuite]:
    """``hpke.seal`` uses ``ephemerals`` (then the real suite again)."""
    real = hpke._SUITE
    suite = FixedEphemeralSuite(ephemerals)
    hpke._SUITE = suite  # type: ignore[assignment]  # test double of the Rust suite
    try:
        yield suite
    finally:
        hpke._SUITE = real


# -- operators ----------------------------------------------------------------------------------

OPERATORS = (("op-alice", 1), ("op-bob", 2), ("op-carol", 3))


def operator_keys() -> list[dict[str, Any]]:
    """Three operators with fixed X25519 keys (and Shamir x = 1, 2, 3)."""
    out = []
    for op_id, x in OPERATORS:
        priv = fixed(f"hpke/{op_id}", 32)
        out.append({"id": op_id, "x": x, "hpke_priv": priv.hex(),
                    "hpke_pub": hpke.public_from_private(priv).hex()})
    return out


def recipients(operators: list[dict[str, Any]]) -> list[envelope.Recipient]:
    return [envelope.Recipient(o["id"], int(o["x"]), bytes.fromhex(o["hpke_pub"]))
            for o in operators]


# -- a sealed credential version ----------------------------------------------------------------


def sealed_version_inputs() -> dict[str, Any]:
    k = 2
    # DEK (32) + GCM nonce (12) + Shamir coefficients ((k - 1) x 32)
    return {
        "vault_id": VAULT_ID, "cred_id": CRED_ID, "version": VERSION, "secret": SECRET,
        "k": k, "now": NOW, "operators": operator_keys(),
        "rng": fixed("sealed/rng", 32 + 12 + (k - 1) * 32).hex(),
        "ephemerals": [fixed(f"sealed/ephemeral/{i}", 32).hex()
                       for i in range(len(OPERATORS))],
    }


def build_sealed_version(inputs: dict[str, Any]) -> dict[str, Any]:
    """The version document ``seal_version`` writes for ``inputs``."""
    rng = FixedRandom(bytes.fromhex(inputs["rng"]))
    with fixed_ephemeral_keys([bytes.fromhex(e) for e in inputs["ephemerals"]]) as suite:
        doc = envelope.seal_version(
            inputs["vault_id"], inputs["cred_id"], inputs["version"],
            SecretValue(inputs["secret"]), inputs["k"], recipients(inputs["operators"]),
            rng, inputs["now"])
    assert rng.left == 0 and suite.left == 0, "the format drew less randomness than before"
    return doc


# -- a grant ------------------------------------------------------------------------------------

REQUEST_ID = "r-00112233445566778899"
EXPIRES = 1_800_003_723.0


def grant_inputs(sealed: dict[str, Any]) -> dict[str, Any]:
    """Bob approves Alice's request: his share of the sealed version, to her."""
    return {
        "vault_id": VAULT_ID, "request_id": REQUEST_ID, "cred_id": CRED_ID,
        "version": VERSION, "requester_id": "op-alice", "approver_id": "op-bob",
        "expires": EXPIRES, "ephemeral": fixed("grant/ephemeral", 32).hex(),
        "sealed_version": sealed,
    }


def grant_info(inputs: dict[str, Any]) -> bytes:
    return envelope.grant_info(inputs["vault_id"], inputs["request_id"], inputs["cred_id"],
                               inputs["version"], inputs["requester_id"],
                               inputs["approver_id"], inputs["expires"])


def _operator(operators: list[dict[str, Any]], op_id: str) -> dict[str, Any]:
    return next(o for o in operators if o["id"] == op_id)


def build_grant(inputs: dict[str, Any], operators: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``approve`` stores: the approver's own share, sealed to the requester."""
    approver = _operator(operators, inputs["approver_id"])
    requester = _operator(operators, inputs["requester_id"])
    share = envelope.open_own_share(inputs["vault_id"], inputs["cred_id"],
                                    inputs["sealed_version"], approver["id"],
                                    bytes.fromhex(approver["hpke_priv"]))
    with fixed_ephemeral_keys([bytes.fromhex(inputs["ephemeral"])]):
        grant = envelope.seal_grant(share, bytes.fromhex(requester["hpke_pub"]),
                                    grant_info(inputs))
    return {"info": grant_info(inputs).hex(), "grant": grant}


# -- audit lines --------------------------------------------------------------------------------

AUDIT_EVENTS: list[dict[str, Any]] = [
    {"actor": "alice", "event": "credential.added", "subject": "pg-breakglass",
     "details": {"connector": "postgres", "version": 1, "zz": [3, 1.5, None, True],
                 "note": "café ✓"}, "now": NOW},
    {"actor": "system", "event": "auth.failed", "subject": "bob",
     "details": {"reason": "wrong factor"}, "now": NOW + 1.9},
    {"actor": "alice", "event": "checkout.requested", "subject": REQUEST_ID,
     "details": {"credential": "pg-breakglass", "ttl": 3600}, "now": NOW + 60},
]


def audit_inputs() -> dict[str, Any]:
    seed = fixed("audit/alice-ed25519", 32)
    return {"signers": {"alice": {"ed25519_priv": seed.hex(),
                                  "ed25519_pub": sign.public_from_private(seed).hex()}},
            "events": AUDIT_EVENTS}


def build_audit_lines(inputs: dict[str, Any]) -> list[str]:
    """The lines ``build_entry`` writes for the events, from the genesis head."""
    head = audit.Head()
    lines = []
    for e in inputs["events"]:
        signer = inputs["signers"].get(e["actor"])
        key = bytes.fromhex(signer["ed25519_priv"]) if signer else None
        line, head = audit.build_entry(head, audit.Signer(e["actor"], key), e["event"],
                                       e["subject"], e["details"], e["now"])
        lines.append(line.decode("utf-8"))
    return lines


# -- the files ----------------------------------------------------------------------------------


def all_vectors() -> dict[Path, dict[str, Any]]:
    """Each vector file's whole content, built from the fixed inputs."""
    sealed_in = sealed_version_inputs()
    sealed = build_sealed_version(sealed_in)
    grant_in = grant_inputs(sealed)
    audit_in = audit_inputs()
    note = ("glasskey format vector; built by tests/format_vectors.py, checked by "
            "tests/test_format_vectors.py. Never edit by hand.")
    return {
        SEALED_FILE: {"note": note, "inputs": sealed_in, "output": sealed},
        GRANT_FILE: {"note": note, "inputs": grant_in,
                     "output": build_grant(grant_in, sealed_in["operators"])},
        AUDIT_FILE: {"note": note, "inputs": audit_in,
                     "output": {"lines": build_audit_lines(audit_in)}},
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main() -> None:
    for path, doc in all_vectors().items():
        path.write_text(render(doc), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
