"""Envelope encryption primitives (DESIGN §10, security.md §2.5), on `cryptography` only.

- Data keys (DEKs) are random 256-bit AES keys, stored only wrapped (RFC 3394 AES key wrap) by the
  key-encryption key (KEK), which is derived from a secret that never enters the database.
- A field is sealed with AES-256-GCM under one DEK with a fresh 96-bit nonce; the associated data
  names the table, column and row, so a value copied into another row does not decrypt.
- Sealed layout: b"\\x01" | key id (4 bytes, big-endian) | nonce (12) | ciphertext+tag.
"""

from __future__ import annotations

import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

FORMAT = 1
HEADER = struct.Struct(">BI")
NONCE_BYTES = 12


def derive_kek(secret: str) -> bytes:
    """A 256-bit KEK from the configured secret (any length, any alphabet)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"spis-kek-v1", info=b"data-key-wrapping"
    )
    return hkdf.derive(secret.encode())


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap(kek: bytes, data_key: bytes) -> bytes:
    return aes_key_wrap(kek, data_key)


def unwrap(kek: bytes, wrapped: bytes) -> bytes:
    return aes_key_unwrap(kek, wrapped)  # InvalidUnwrap when the KEK is wrong


def seal(key_id: int, data_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return HEADER.pack(FORMAT, key_id) + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)


def key_id_of(sealed: bytes) -> int:
    version, key_id = HEADER.unpack_from(sealed)
    if version != FORMAT:
        raise ValueError("not a sealed value")
    return int(key_id)


def open_sealed(data_key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Raises cryptography's InvalidTag when the value, the key or the associated data differ."""
    start = HEADER.size
    nonce = sealed[start : start + NONCE_BYTES]
    return AESGCM(data_key).decrypt(nonce, sealed[start + NONCE_BYTES :], aad)
