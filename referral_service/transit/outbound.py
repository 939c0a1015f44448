"""Messages SPIS sends to a client system: signed by SPIS, then encrypted to the recipient.

Sign-then-encrypt (a nested JWT, RFC 7519 §5.2): the recipient can prove which system produced
the message, and nobody on the way (broker, retry store, proxy) can read or alter it. The inner
JWS is ES384 with SPIS's current signing kid, verifiable against /.well-known/jwks.json; the outer
JWE says `cty: JWT`. `transit/receiver.py` (`open_sealed`) is how a recipient opens one.

Deliveries also carry Standard Webhooks headers signed by SPIS (`webhook_headers`): the id, the
attempt's time and a detached ES384 JWS over both and the body, so a receiver can refuse a replay
or an altered body before it decrypts anything (`receiver.verify_webhook`; docs/deliveries.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from joserfc import jws

from fhir_adapters.codes import FHIR_JSON
from referral_service.keys.jose import SIGNING_ALG, KeyStore
from referral_service.kit.jwe_keys import JwkDict
from referral_service.transit.jwe import encrypt_response

NESTED_JWT = "JWT"
SIGNATURE_SCHEME = "es384"


def seal(
    payload: dict[str, Any] | bytes,
    recipient_jwk: JwkDict,
    keys: KeyStore,
    *,
    content_type: str = FHIR_JSON,
) -> str:
    """A compact JWE, to `recipient_jwk`, of an ES384 JWS over `payload` (JSON if a dict)."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    signer = keys.ring().signing_key()
    header = {"alg": SIGNING_ALG, "kid": signer.kid, "cty": content_type}
    signed = jws.serialize_compact(header, body, signer.key, algorithms=[SIGNING_ALG])
    return encrypt_response(signed.encode("ascii"), recipient_jwk, content_type=NESTED_JWT)


def webhook_headers(delivery_id: str, body: bytes, keys: KeyStore, now: datetime) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` for one attempt at sending `body`.

    The signature is a compact JWS with the payload segment left empty (RFC 7515 appendix F) over
    `{id}.{timestamp}.` followed by the body's exact bytes, by SPIS's current signing key."""
    timestamp = str(int(now.timestamp()))
    signed = f"{delivery_id}.{timestamp}.".encode("ascii") + body
    signer = keys.ring().signing_key()
    header = {"alg": SIGNING_ALG, "kid": signer.kid}
    token = jws.serialize_compact(header, signed, signer.key, algorithms=[SIGNING_ALG])
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"{SIGNATURE_SCHEME},{jws.detach_content(token)}",
    }
