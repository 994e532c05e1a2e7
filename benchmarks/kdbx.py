"""A minimal KDBX 4 writer, so the peer database uses Argon2id at *our* parameters.

``keepassxc-cli db-create``/``import`` (2.7) pick the KDF themselves (AES-KDF
calibrated by time, no flag for Argon2id), so the benchmark writes the file
directly: KDBX 4.0 outer header with AES-256-CBC and an Argon2id KDF
(VariantDictionary: $UUID, S, P, M, I, V), header SHA-256 and HMAC-SHA-256,
HMAC block stream, gzip payload with an inner header (ChaCha20 stream; all
values are stored unprotected, which KeePassXC reads fine), and the XML
entries. Format: https://keepass.info/help/kb/kdbx_4.html.
``keepassxc-cli db-info`` then reports "KDF: Argon2id (...)" for it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import os
import struct
import uuid
from collections.abc import Iterable
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

SIG = struct.pack("<IIHH", 0x9AA2D903, 0xB54BFB67, 0, 4)  # KDBX 4.0
AES256_UUID = uuid.UUID("31c1f2e6-bf71-4350-be58-05216afc5aff").bytes
ARGON2ID_UUID = uuid.UUID("9e298b19-56db-4773-b23d-fc3ec6f0a1e6").bytes
BLOCK = 1 << 20


def _field(fid: int, data: bytes) -> bytes:
    return struct.pack("<BI", fid, len(data)) + data


def _variant_dict(items: list[tuple[int, str, bytes]]) -> bytes:
    out = struct.pack("<H", 0x0100)
    for vtype, key, value in items:
        k = key.encode()
        out += struct.pack("<B", vtype) + struct.pack("<i", len(k)) + k
        out += struct.pack("<i", len(value)) + value
    return out + b"\x00"


def _block_key(hmac_key: bytes, index: int) -> bytes:
    return hashlib.sha512(struct.pack("<Q", index) + hmac_key).digest()


def _xml(entries: Iterable[tuple[str, str, str]]) -> bytes:
    def uid() -> str:
        return base64.b64encode(os.urandom(16)).decode()

    parts = ['<?xml version="1.0" encoding="utf-8" standalone="yes"?>',
             "<KeePassFile><Meta><Generator>glasskey-bench</Generator>"
             "<DatabaseName>bench</DatabaseName></Meta><Root>",
             f"<Group><UUID>{uid()}</UUID><Name>Root</Name>"]
    for title, user, password in entries:
        parts.append(
            f"<Entry><UUID>{uid()}</UUID>"
            f"<String><Key>Title</Key><Value>{escape(title)}</Value></String>"
            f"<String><Key>UserName</Key><Value>{escape(user)}</Value></String>"
            f"<String><Key>Password</Key><Value>{escape(password)}</Value></String>"
            f"<String><Key>URL</Key><Value></Value></String>"
            f"<String><Key>Notes</Key><Value>break-glass</Value></String></Entry>")
    parts.append("</Group></Root></KeePassFile>")
    return "".join(parts).encode("utf-8")


def write(path: str, password: str, entries: Iterable[tuple[str, str, str]], *,
          memory_kib: int, iterations: int, lanes: int) -> None:
    master_seed, iv, salt = os.urandom(32), os.urandom(16), os.urandom(32)
    kdf_params = _variant_dict([
        (0x42, "$UUID", ARGON2ID_UUID),
        (0x42, "S", salt),
        (0x04, "P", struct.pack("<I", lanes)),
        (0x05, "M", struct.pack("<Q", memory_kib * 1024)),
        (0x05, "I", struct.pack("<Q", iterations)),
        (0x04, "V", struct.pack("<I", 0x13)),
    ])
    header = SIG + b"".join([
        _field(2, AES256_UUID),
        _field(3, struct.pack("<I", 1)),  # gzip
        _field(4, master_seed),
        _field(7, iv),
        _field(11, kdf_params),
        _field(0, b"\r\n\r\n"),
    ])
    composite = hashlib.sha256(hashlib.sha256(password.encode()).digest()).digest()
    transformed = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes,
                           memory_cost=memory_kib).derive(composite)
    enc_key = hashlib.sha256(master_seed + transformed).digest()
    hmac_key = hashlib.sha512(master_seed + transformed + b"\x01").digest()
    header_hmac = hmac.new(_block_key(hmac_key, 0xFFFFFFFFFFFFFFFF), header,
                           hashlib.sha256).digest()
    inner = (_field(1, struct.pack("<I", 3)) + _field(2, os.urandom(64)) + _field(0, b""))
    payload = gzip.compress(inner + _xml(entries), compresslevel=6)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(payload) + padder.finalize()
    enc = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
    ct = enc.update(padded) + enc.finalize()
    blocks = []
    index = 0
    for start in range(0, len(ct), BLOCK):
        chunk = ct[start:start + BLOCK]
        mac = hmac.new(_block_key(hmac_key, index),
                       struct.pack("<QI", index, len(chunk)) + chunk, hashlib.sha256).digest()
        blocks.append(mac + struct.pack("<I", len(chunk)) + chunk)
        index += 1
    mac = hmac.new(_block_key(hmac_key, index), struct.pack("<QI", index, 0),
                   hashlib.sha256).digest()
    blocks.append(mac + struct.pack("<I", 0))
    with open(path, "wb") as fh:
        fh.write(header + hashlib.sha256(header).digest() + header_hmac + b"".join(blocks))
