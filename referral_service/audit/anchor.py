"""Anchoring the audit chain outside the database.

The chain alone shows edits, gaps and reordering, but someone who can write the table can
rewrite every row from N onward with fresh hashes and the walk still passes. An anchor is the
head (seq and hash) at a moment, signed with SPIS's own signing key (ES384, the key published at
/.well-known/jwks.json) and kept by a second party. `verify(anchor=...)` then catches any change
at or before the anchored seq, rows removed after it, and a chain rewritten from any N up to it.
Rows added after the anchor are covered by the next anchor.

The signature is what stops a database writer from making a matching anchor of their own: the
signing key lives in the transit keys directory, never in the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError

from referral_service.audit import chain
from referral_service.audit.repository import ChainHead
from referral_service.keys.jose import SIGNING_ALG, KeyRing
from referral_service.kit.clock import fhir_instant

ANCHOR_TYPE = "spis-audit-anchor+jwt"
_HASH = re.compile(r"^[0-9a-f]{64}$")


class AnchorError(Exception):
    """The anchor document is unreadable, or its signature does not verify with SPIS's keys."""


@dataclass(frozen=True, slots=True)
class Anchor:
    head: ChainHead
    anchored_at: str  # an instant, as signed
    kid: str


def make(head: ChainHead | None, ring: KeyRing, now: datetime) -> dict[str, Any]:
    """The anchor document: what it says in the clear, for people, and the signed `jws`, which
    is all that `read` believes."""
    current = head or ChainHead(0, chain.GENESIS)
    signer = ring.signing_key()
    claims = {"seq": current.seq, "hash": current.hash, "anchored_at": fhir_instant(now)}
    header = {"alg": SIGNING_ALG, "kid": signer.kid, "typ": ANCHOR_TYPE}
    signed = jws.serialize_compact(
        header, orjson.dumps(claims), signer.key, algorithms=[SIGNING_ALG]
    )
    return {**claims, "kid": signer.kid, "jws": signed}


def read(document: object, ring: KeyRing) -> Anchor:
    """The anchored head, from the signed part only; AnchorError if anything is off."""
    token = document.get("jws") if isinstance(document, dict) else None
    if not isinstance(token, str):
        raise AnchorError("the anchor has no 'jws' member")
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError):
        raise AnchorError("the anchor's 'jws' is not a compact JWS") from None
    if header.get("typ") != ANCHOR_TYPE or header.get("alg") != SIGNING_ALG:
        raise AnchorError("the anchor's 'jws' is not a SPIS audit anchor")
    claims = _verified_claims(token, str(header.get("kid")), ring)
    return Anchor(_head_of(claims), str(claims.get("anchored_at")), str(header.get("kid")))


def _verified_claims(token: str, kid: str, ring: KeyRing) -> dict[str, Any]:
    keys = [k for k in ring.keys if k.use == "sig" and k.kid == kid]
    if not keys:
        raise AnchorError("the anchor was signed with a key this SPIS does not hold")
    try:
        verified = jws.deserialize_compact(token, keys[0].key, algorithms=[SIGNING_ALG])
        claims = orjson.loads(verified.payload)
    except (JoseError, ValueError):
        raise AnchorError("the anchor's signature does not verify") from None
    if not isinstance(claims, dict):
        raise AnchorError("the anchor's signed content is not an object")
    return claims


def _head_of(claims: dict[str, Any]) -> ChainHead:
    seq, digest = claims.get("seq"), claims.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise AnchorError("the anchor's seq is not a non-negative integer")
    if not isinstance(digest, str) or not _HASH.match(digest):
        raise AnchorError("the anchor's hash is not a SHA-256 hex digest")
    return ChainHead(seq, digest)
