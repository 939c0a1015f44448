"""Crypto primitives used by the domains. Built on `cryptography`; nothing hand-rolled."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def blind_index(key: bytes, purpose: str, value: str) -> str:
    """Keyed HMAC-SHA256 of a normalised identifier: equality search without storing the value.

    `purpose` separates indexes (an NHS number index value is useless for any other lookup).
    """
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(purpose.encode() + b"\x00" + value.strip().replace(" ", "").encode())
    return mac.finalize().hex()


def tenant_key(key: bytes, tenant: str) -> bytes:
    """The tenant's own blind-index key, derived (HKDF-SHA256) from the service's key."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"spis-blind-index-tenant-v1",
        info=b"tenant\x00" + tenant.encode(),
    )
    return hkdf.derive(key)


def tenant_blind_index(key: bytes, tenant: str, purpose: str, value: str) -> str:
    """A blind index that differs per tenant, so the same person at two practices does not link.

    The tenant's key is applied to the service-wide index value rather than to the identifier
    itself: values stored before indexes were per tenant can then be re-keyed in place, without
    the identifiers (migration 20261128_0008)."""
    return blind_index(tenant_key(key, tenant), purpose, blind_index(key, purpose, value))
