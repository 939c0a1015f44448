"""Crypto primitives used by the domains. Built on `cryptography`; nothing hand-rolled."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac


def blind_index(key: bytes, purpose: str, value: str) -> str:
    """Keyed HMAC-SHA256 of a normalised identifier: equality search without storing the value.

    `purpose` separates indexes (an NHS number index value is useless for any other lookup).
    """
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(purpose.encode() + b"\x00" + value.strip().replace(" ", "").encode())
    return mac.finalize().hex()
