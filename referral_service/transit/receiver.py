"""The receiving side of `transit.outbound.seal`: what a GP practice or time bank system does
with a message from SPIS. The reference for integrators, and what the tests use.

1. Refuse before decrypting: too large, compressed, an algorithm outside the pinned set, or not a
   nested JWT (`cty: JWT`) — an unsigned JWE would otherwise pass as SPIS's.
2. Decrypt with the recipient's own private key.
3. Verify the inner JWS: ES384 only, by a key with that kid in SPIS's published JWKS.
"""

from __future__ import annotations

from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from referral_service.transit.jwe import TransitError, check_header, protected_header, registry_for
from referral_service.transit.keys import SIGNING_ALG

MAX_SEALED_BYTES = 4 * 1_048_576
PrivateKey = ECKey | RSAKey


class RejectedMessage(ValueError):
    """Not a message SPIS sealed for us, or altered on the way. Never says which key failed."""


def open_sealed(
    token: str | bytes,
    recipient_private_jwk: dict[str, Any] | PrivateKey,
    spis_public_jwks: dict[str, Any],
    *,
    max_bytes: int = MAX_SEALED_BYTES,
) -> bytes:
    """The payload SPIS signed, once the envelope is opened and the signature checked."""
    compact = token.encode("ascii") if isinstance(token, str) else token
    signed = _decrypt(compact.strip(), recipient_private_jwk, max_bytes)
    return _verified_payload(signed, spis_public_jwks, max_bytes)


def _decrypt(compact: bytes, private_key: dict[str, Any] | PrivateKey, max_bytes: int) -> bytes:
    try:
        header = protected_header(compact, max_bytes)
        check_header(header)
    except TransitError as exc:
        raise RejectedMessage(exc.message) from None
    if str(header.get("cty", "")).upper() != "JWT":
        raise RejectedMessage("The message is not signed (the JWE cty is not JWT)")
    try:
        key = _private_key(private_key)
        result = jwe.decrypt_compact(compact, key, registry=registry_for(header["alg"], max_bytes))
    except (JoseError, ValueError, TypeError, KeyError):
        raise RejectedMessage("The message could not be decrypted with this key") from None
    return result.plaintext or b""


def _private_key(value: dict[str, Any] | PrivateKey) -> PrivateKey:
    if isinstance(value, ECKey | RSAKey):
        return value
    return RSAKey.import_key(value) if value.get("kty") == "RSA" else ECKey.import_key(value)


def _verified_payload(signed: bytes, jwks: dict[str, Any], max_bytes: int) -> bytes:
    registry = jws.JWSRegistry(algorithms=[SIGNING_ALG])
    registry.max_payload_length = max_bytes
    try:
        obj = jws.extract_compact(signed, registry=registry)
    except (JoseError, ValueError, TypeError):
        raise RejectedMessage("The decrypted content is not a compact JWS") from None
    header = obj.headers()
    # Pinned: `alg` from the message never picks the check; `none` and unencoded payloads are out.
    if header.get("alg") != SIGNING_ALG or "crit" in header or "b64" in header:
        raise RejectedMessage(f"The message must be signed with {SIGNING_ALG}")
    key = _signer_key(jwks, header.get("kid"))
    try:
        valid = jws.validate_compact(obj, key, registry=registry)
    except (JoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise RejectedMessage("The signature does not verify against SPIS's published keys")
    return obj.payload


def _signer_key(jwks: dict[str, Any], kid: object) -> ECKey:
    matches = [
        key
        for key in jwks.get("keys", [])
        if isinstance(key, dict)
        and key.get("kid") == kid
        and key.get("kty") == "EC"
        and key.get("crv") == "P-384"
        and key.get("use", "sig") == "sig"
        and "d" not in key
    ]
    if not isinstance(kid, str) or len(matches) != 1:
        raise RejectedMessage("The message was not signed by a key SPIS publishes")
    try:
        return ECKey.import_key(matches[0])
    except (JoseError, ValueError, TypeError):
        raise RejectedMessage("The message was not signed by a key SPIS publishes") from None
