"""Compact JWE bodies: opening what clients send us, and encrypting what we answer.

Everything a JWE may choose is pinned here: key management ECDH-ES+A256KW or RSA-OAEP-256, content
encryption A256GCM, no compression, no critical extensions. The header is read and checked by us
before any key is touched, so a refused JWE costs no cryptography and a `zip` one is never inflated.
Error messages are the same for every cryptographic failure (wrong key, tampered, truncated): a
caller probing us learns nothing about which step failed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError

from fhir_adapters.codes import FHIR_JSON
from fhir_adapters.parse import DuplicateKeyError, loads_unique
from referral_service.errors import ServiceError
from referral_service.keys.jose import KeyStore, TransitKey
from referral_service.kit.jwe_keys import (
    KEY_ALGORITHMS,
    JwkDict,
    UnusableKey,
    checked_encryption_key,
    import_encryption_key,
)

JOSE = "application/jose"
CONTENT_ENCRYPTION = "A256GCM"
# The bodies our endpoints take; anything else inside a JWE is refused before it reaches them.
PLAINTEXT_TYPES = frozenset({FHIR_JSON, "application/json", "application/json-patch+json"})
DEFAULT_MAX_BYTES = 1_048_576
MAX_HEADER_BYTES = 2048  # base64url of the protected header: an RSA or P-384 `epk` fits easily
ALLOWED_HEADER = frozenset({"alg", "enc", "kid", "cty", "typ", "epk", "apu", "apv"})


class TransitError(ServiceError):
    """A JWE we will not open: its structure is wrong (400, `structure`)."""

    status = 400
    issue_code = "structure"


class UnsupportedJwe(TransitError):
    """A well-formed JWE using something we refuse: alg, enc, zip, crit, cty."""

    issue_code = "not-supported"


class UndecryptableJwe(TransitError):
    """Not encrypted to a key of ours, or altered on the way: one message for every cause."""

    issue_code = "security"


class JweTooLarge(TransitError):
    status = 413
    issue_code = "too-costly"


@dataclass(frozen=True, slots=True)
class Decrypted:
    plaintext: bytes
    content_type: str


def open_request(
    compact: bytes, keys: KeyStore, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Decrypted:
    """The plaintext of a client's compact JWE and its media type (the JWE's `cty`, default FHIR
    JSON); a TransitError for anything we refuse."""
    compact = compact.strip()
    header = protected_header(compact, max_bytes)
    check_header(header)
    content_type = plaintext_type(header.get("cty"))
    plaintext = _decrypt(compact, header, keys, max_bytes)
    return Decrypted(plaintext, content_type)


def protected_header(compact: bytes, max_bytes: int) -> dict[str, Any]:
    """The protected header, read without joserfc: size and shape are checked before parsing."""
    if len(compact) > max_bytes:
        raise JweTooLarge(f"The JWE is larger than {max_bytes} bytes")
    segments = compact.split(b".")
    if len(segments) != 5 or len(segments[0]) > MAX_HEADER_BYTES:
        raise TransitError("The body is not a compact JWE (five base64url segments)")
    try:
        # RFC 7516 §4 via RFC 7515 §4: names are unique; we refuse rather than pick one.
        header = loads_unique(_b64decode(segments[0]))
    except DuplicateKeyError:
        raise TransitError("The JWE protected header names a parameter more than once") from None
    except (binascii.Error, ValueError):
        raise TransitError("The JWE protected header is not base64url-encoded JSON") from None
    if not isinstance(header, dict):
        raise TransitError("The JWE protected header is not a JSON object")
    return header


def check_header(header: dict[str, Any]) -> None:
    if "zip" in header:
        raise UnsupportedJwe("Compressed JWEs (zip) are refused; send the body uncompressed")
    if "crit" in header or not ALLOWED_HEADER.issuperset(header):
        raise UnsupportedJwe("The JWE header has parameters this server does not accept")
    if header.get("alg") not in KEY_ALGORITHMS:
        raise UnsupportedJwe(f"JWE alg must be one of {', '.join(KEY_ALGORITHMS)}")
    if header.get("enc") != CONTENT_ENCRYPTION:
        raise UnsupportedJwe(f"JWE enc must be {CONTENT_ENCRYPTION}")
    if not isinstance(header.get("kid", ""), str):
        raise TransitError("The JWE kid must be a string")


def plaintext_type(cty: object) -> str:
    """`cty` as a full media type (RFC 7515 lets senders drop `application/`), if we take it."""
    if cty is None:
        return FHIR_JSON
    if not isinstance(cty, str):
        raise TransitError("The JWE cty must be a string")
    media = cty.split(";")[0].strip().lower()
    media = media if "/" in media else f"application/{media}"
    if media not in PLAINTEXT_TYPES:
        raise UnsupportedJwe(f"The JWE cty must be one of {', '.join(sorted(PLAINTEXT_TYPES))}")
    return media


def _decrypt(compact: bytes, header: dict[str, Any], keys: KeyStore, max_bytes: int) -> bytes:
    alg, kid = header["alg"], header.get("kid")
    candidates = keys.ring().decryption_keys(alg, kid)
    if not candidates and kid is not None:
        candidates = keys.refresh_for_unknown_kid().decryption_keys(alg, kid)
    for key in candidates:
        plaintext = _try_key(compact, key, alg, max_bytes)
        if plaintext is not None:
            return plaintext
    raise UndecryptableJwe(
        "The JWE could not be decrypted: it is not encrypted to a current SPIS key "
        "(see /.well-known/jwks.json) or it was altered"
    )


def _try_key(compact: bytes, key: TransitKey, alg: str, max_bytes: int) -> bytes | None:
    try:
        result = jwe.decrypt_compact(compact, key.key, registry=registry_for(alg, max_bytes))
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    return result.plaintext


def registry_for(alg: str, max_bytes: int) -> jwe.JWERegistry:
    registry = jwe.JWERegistry(algorithms=[alg, CONTENT_ENCRYPTION])
    # joserfc's own ceiling is 64 KB of ciphertext, far below a FHIR Bundle; ours was checked above.
    registry.max_ciphertext_length = max_bytes
    return registry


def _b64decode(segment: bytes) -> bytes:
    if not segment or b"=" in segment:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


# -- encrypting ----------------------------------------------------------------------------------


def encrypt_response(
    plaintext: bytes, recipient_jwk: JwkDict, content_type: str = FHIR_JSON
) -> str:
    """A compact JWE of `plaintext` to the client's registered encryption key."""
    try:
        jwk = checked_encryption_key(recipient_jwk)
    except UnusableKey as exc:
        raise ValueError(str(exc)) from None
    header = {
        "alg": jwk["alg"],
        "enc": CONTENT_ENCRYPTION,
        "kid": jwk["kid"],
        "cty": content_type,
    }
    key = import_encryption_key(jwk)
    return jwe.encrypt_compact(header, plaintext, key, algorithms=[jwk["alg"], CONTENT_ENCRYPTION])
