"""Envelope encryption primitives (DESIGN §10, security.md §2.5), on `cryptography` only.

- Data keys (DEKs) are random 256-bit AES keys, stored only wrapped (RFC 3394 AES key wrap) by the
  key-encryption key (KEK), which is derived from a secret that never enters the database.
- A field is sealed with AES-256-GCM under one DEK with a fresh 96-bit nonce; the associated data
  names the table, column, row and tenant, so a value copied into another row, or a row moved to
  another organisation, does not decrypt.
- Sealed layout: format (1 byte) | key id (4 bytes, big-endian) | nonce (12) | ciphertext+tag.
  Format 2 values bind the tenant; format 1 (LEGACY_FORMAT) values were sealed before it was, and
  still open, with the older associated data, until re-encryption re-seals them as format 2.
"""

from __future__ import annotations

import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

FORMAT = 2
LEGACY_FORMAT = 1
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
    return seal_with(key_id, AESGCM(data_key), plaintext, aad)


def seal_with(key_id: int, cipher: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """`seal` with the key's AESGCM already made (see `open_with`); a fresh nonce every time."""
    nonce = os.urandom(NONCE_BYTES)
    return HEADER.pack(FORMAT, key_id) + nonce + cipher.encrypt(nonce, plaintext, aad)


def key_id_of(sealed: bytes) -> int:
    return int(HEADER.unpack_from(sealed)[1])


def format_of(sealed: bytes) -> int:
    version = int(HEADER.unpack_from(sealed)[0])
    if version not in (FORMAT, LEGACY_FORMAT):
        raise ValueError("not a sealed value")
    return version


def header(key_id: int) -> bytes:
    """The first bytes of every value sealed now under `key_id` (what re-encryption looks for)."""
    return HEADER.pack(FORMAT, key_id)


def open_sealed(data_key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Raises cryptography's InvalidTag when the value, the key or the associated data differ."""
    return open_with(AESGCM(data_key), sealed, aad)


def open_with(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    """`open_sealed` with the key's AESGCM already made: making one checks and sets up the key,
    which cost more than decrypting a resource (a search page opens 50 under one key)."""
    start = HEADER.size
    nonce = sealed[start : start + NONCE_BYTES]
    return cipher.decrypt(nonce, sealed[start + NONCE_BYTES :], aad)
