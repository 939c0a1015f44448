"""Messages SPIS sends to a client system: signed by SPIS, then encrypted to the recipient.

Sign-then-encrypt (a nested JWT, RFC 7519 §5.2): the recipient can prove which system produced
the message, and nobody on the way (broker, retry store, proxy) can read or alter it. The inner
JWS is ES384 with SPIS's current signing kid, verifiable against /.well-known/jwks.json; the outer
JWE says `cty: JWT`. `tests/fixtures/receiver.py` (`open_sealed`) is how a recipient opens one.
"""

from __future__ import annotations

from typing import Any

import orjson
from joserfc import jws

from fhir_adapters.codes import FHIR_JSON
from referral_service.keys.jose import SIGNING_ALG, KeyStore
from referral_service.kit.jwe_keys import JwkDict
from referral_service.transit.jwe import encrypt_response

NESTED_JWT = "JWT"


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
