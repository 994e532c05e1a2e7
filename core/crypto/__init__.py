"""The cryptographic core: every primitive glasskey uses, behind a small bytes-in/bytes-out API.

Why a separate package: the rest of the tree (vault, checkout, audit, UI) must
never touch ``cryptography`` directly, so there is exactly one place to review
for nonce handling, key validation, parameter limits and error opacity.

- ``aead``   AES-256-GCM envelope for secrets (one random data key per version).
- ``hpke``   RFC 9180 base mode, seals Shamir shares to operators' X25519 keys.
- ``shamir`` k-of-n split of a data key over GF(2^8), with a hash commitment so
  mismatched shares raise instead of yielding a wrong key.
- ``kdf``    Argon2id passphrase keys with floor/ceiling limits and
  authenticated parameters, used to wrap operators' private keys.
- ``sign``   Ed25519 for the audit log.

Every "cannot decrypt" surfaces as one opaque ``DecryptError``; every
tampered/invalid input that is not a decryption surfaces as ``IntegrityError``;
programming mistakes (bad parameters) as ``UsageError``.
"""
