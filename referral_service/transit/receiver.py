"""The receiving end of what SPIS sends: how a GP practice or time bank system checks a
notification (docs/deliveries.md). The reference integrators copy, what `spis receive` runs, and
what tests open SPIS's messages with.

1. `verify_webhook` before anything else: the `webhook-*` headers, a timestamp within five
   minutes (no replays), and SPIS's detached ES384 JWS over `{id}.{timestamp}.{body}`, by a key
   with that kid in SPIS's published JWKS.
2. `open_sealed` for an `application/jose` body: refuse before decrypting (too large, compressed,
   an algorithm outside the pinned set, not a nested JWT), decrypt with the recipient's own key,
   verify the inner JWS (ES384 only, by a key SPIS publishes).
3. `transit.notifications`: what the notification says, and whether its event number is new,
   a duplicate or after a gap.

Errors say which rule failed, never what the message held.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from referral_service.keys.jose import SIGNING_ALG
from referral_service.transit.jwe import TransitError, check_header, protected_header, registry_for
from referral_service.transit.outbound import SIGNATURE_SCHEME

MAX_SEALED_BYTES = 4 * 1_048_576
WEBHOOK_TOLERANCE_S = 300
MAX_SIGNATURE_HEADER = 8192
PrivateKey = ECKey | RSAKey


class RejectedMessage(ValueError):
    """Not a message SPIS sent us, or altered on the way. Never says which key failed."""


class UnknownSigningKey(RejectedMessage):
    """Signed with a kid SPIS does not publish (yet, for us): fetch SPIS's JWKS once more."""


# -- the webhook headers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    id: str  # the same on every retry of one notification: an idempotency key
    timestamp: int  # unix seconds of this attempt
    kid: str  # SPIS's signing key


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    spis_jwks: dict[str, Any],
    *,
    now: datetime,
    tolerance_s: int = WEBHOOK_TOLERANCE_S,
) -> VerifiedWebhook:
    """The checked `webhook-*` headers of one delivery; RejectedMessage when any check fails."""
    named = {name.lower(): value for name, value in headers.items()}
    webhook_id = _webhook_id(named.get("webhook-id"))
    timestamp = _timestamp(named.get("webhook-timestamp"), now, tolerance_s)
    signed = f"{webhook_id}.{timestamp}.".encode("ascii") + body
    failure: RejectedMessage | None = None
    for token in _signatures(named.get("webhook-signature")):
        try:
            return VerifiedWebhook(
                webhook_id, timestamp, _verify_detached(token, signed, spis_jwks)
            )
        except RejectedMessage as exc:  # another signature in the header may be by a newer key
            failure = exc
    raise failure or RejectedMessage("The webhook-signature header has no es384 signature")


def _webhook_id(value: str | None) -> str:
    """As sent, not normalised: the signature covers the header's own text."""
    if not value:
        raise RejectedMessage("The webhook-id header is missing")
    try:
        uuid.UUID(value)
    except ValueError:
        raise RejectedMessage("The webhook-id header is not a UUID") from None
    if len(value) != 36:
        raise RejectedMessage("The webhook-id header is not a UUID")
    return value


def _timestamp(value: str | None, now: datetime, tolerance_s: int) -> int:
    if not value:
        raise RejectedMessage("The webhook-timestamp header is missing")
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise RejectedMessage("The webhook-timestamp header is not unix seconds")
    if abs(now.timestamp() - int(value)) > tolerance_s:
        raise RejectedMessage(
            f"The webhook-timestamp is more than {tolerance_s} s away from now: a replay, "
            "or a clock that is wrong"
        )
    return int(value)


def _signatures(value: str | None) -> list[str]:
    """The es384 entries of a Standard Webhooks signature list (`scheme,value`, space-separated)."""
    if not value:
        raise RejectedMessage("The webhook-signature header is missing")
    if len(value) > MAX_SIGNATURE_HEADER:
        raise RejectedMessage("The webhook-signature header is too long")
    prefix = f"{SIGNATURE_SCHEME},"
    return [entry[len(prefix) :] for entry in value.split() if entry.startswith(prefix)]


def _verify_detached(token: str, signed: bytes, jwks: dict[str, Any]) -> str:
    """The kid that signed `signed`, if `token` is SPIS's detached JWS over it."""
    parts = token.split(".")
    # RFC 7515 appendix F: the payload is the request, never something the token carries itself.
    if len(parts) != 3 or parts[1]:
        raise RejectedMessage("The webhook signature is not a detached compact JWS")
    registry = jws.JWSRegistry(algorithms=[SIGNING_ALG])
    try:
        obj = jws.extract_compact(token.encode("ascii"), signed, registry=registry)
    except (JoseError, ValueError, TypeError):
        raise RejectedMessage("The webhook signature is not a detached compact JWS") from None
    kid = _check_jws_header(obj.headers(), "webhook signature")
    _check_signature(obj, jwks, kid, "The webhook signature does not verify")
    return kid


# -- sealed bodies --------------------------------------------------------------------------------


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
        key = private_key_of(private_key)
        result = jwe.decrypt_compact(compact, key, registry=registry_for(header["alg"], max_bytes))
    except (JoseError, ValueError, TypeError, KeyError):
        raise RejectedMessage("The message could not be decrypted with this key") from None
    return result.plaintext or b""


def private_key_of(value: dict[str, Any] | PrivateKey) -> PrivateKey:
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
    kid = _check_jws_header(obj.headers(), "message")
    _check_signature(obj, jwks, kid, "The signature does not verify against SPIS's published keys")
    return obj.payload


def _check_jws_header(header: dict[str, Any], what: str) -> str:
    # Pinned: `alg` from the message never picks the check; `none` and unencoded payloads are out.
    if header.get("alg") != SIGNING_ALG or "crit" in header or "b64" in header:
        raise RejectedMessage(f"The {what} must be signed with {SIGNING_ALG}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise UnknownSigningKey(f"The {what} was not signed by a key SPIS publishes")
    return kid


def _check_signature(obj: jws.CompactSignature, jwks: dict[str, Any], kid: str, error: str) -> None:
    key = _signer_key(jwks, kid)
    try:
        valid = jws.validate_compact(obj, key, algorithms=[SIGNING_ALG])
    except (JoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise RejectedMessage(error)


def _signer_key(jwks: dict[str, Any], kid: str) -> ECKey:
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
    if len(matches) != 1:
        raise UnknownSigningKey("The message was not signed by a key SPIS publishes")
    try:
        return ECKey.import_key(matches[0])
    except (JoseError, ValueError, TypeError):
        raise UnknownSigningKey("The message was not signed by a key SPIS publishes") from None
