"""Client authentication: checking a SMART Backend Services client assertion (RFC 7523 §3).

Order matters. The unverified `iss` only picks which client's keys to try; nothing else in the
token is believed until the signature has been checked with one of those keys. Failures before
the signature check all look the same to the caller, so it cannot probe which client ids or kids
exist; the reason goes to the log with the client id, never the token.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy.orm import Session

from fhir_adapters.parse import DuplicateKeyError, loads_unique
from referral_service.auth import repository
from referral_service.auth.jwks import JwkDict, JwksCache, JwksUnavailable, PublicKey, select_key
from referral_service.auth.models import Client
from referral_service.auth.oauth import OAuthError, invalid_client
from referral_service.config import Settings
from referral_service.organisations.models import OrgKind

log = logging.getLogger("spis.auth")

ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_BYTES = 16_384
MAX_JTI_LENGTH = 255
MAX_CLIENT_ID_LENGTH = 36


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    client_id: str
    org_id: str
    org_kind: OrgKind
    scopes: str  # the registered ceiling for this client


@dataclass(frozen=True, slots=True)
class _Parsed:
    token: jws.CompactSignature
    header: dict[str, object]
    claims: dict[str, object]


def authenticate(
    session: Session,
    assertion: str,
    settings: Settings,
    jwks_cache: JwksCache,
    *,
    client_id: str | None = None,
    now: float | None = None,
) -> AuthenticatedClient:
    """The client that signed this assertion, or OAuthError(invalid_client).

    `client_id` is the optional form parameter of the same name: when sent it must match.
    """
    current = time.time() if now is None else now
    parsed = _parse(assertion)
    alg, kid = _check_header(parsed.header)
    client, kind = _find_client(session, parsed.claims.get("iss"), client_id)
    _check_jku(parsed.header, client)
    key = _resolve_key(client, kid, alg, jwks_cache)
    _verify_signature(parsed.token, key, client.id)
    jti, exp = _check_claims(parsed.claims, client.id, settings, current)
    _consume_jti(session, client.id, jti, exp, settings.clock_skew_s, current)
    return AuthenticatedClient(client.id, client.org_id, kind, client.scopes)


def claimed_issuer(assertion: str | None) -> str | None:
    """The unverified `iss` of an assertion, or None: only to say in the audit trail who a
    refused caller claimed to be. Never used to decide anything."""
    if not assertion or len(assertion) > MAX_ASSERTION_BYTES:
        return None
    try:
        claims = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


def _refuse(reason: str, client_id: str | None, description: str | None = None) -> OAuthError:
    log.info("client assertion refused", extra={"reason": reason, "client_id": client_id})
    return invalid_client(description) if description else invalid_client()


def _parse(assertion: str) -> _Parsed:
    # Capped before any decoding: an oversized token costs us nothing but this comparison.
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise _refuse("too large", None, "The client assertion is too large")
    try:
        token = jws.extract_compact(assertion.encode("ascii"))
        # A repeated claim name means what the parser picks (RFC 7519 §4: reject it).
        claims = loads_unique(token.payload)
    except DuplicateKeyError:
        raise _refuse("repeated claim", None, "The client assertion repeats a claim") from None
    except (JoseError, ValueError, UnicodeError):
        raise _refuse("malformed", None, "The client assertion is not a signed JWT") from None
    if not isinstance(claims, dict):
        raise _refuse("malformed", None, "The client assertion is not a signed JWT")
    return _Parsed(token, dict(token.headers()), claims)


def _check_header(header: dict[str, object]) -> tuple[str, str]:
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise _refuse("alg", None, "Client assertions must be signed with RS384 or ES384")
    if not isinstance(kid, str) or not kid:
        raise _refuse("kid", None, "The client assertion header needs a 'kid'")
    if str(header.get("typ", "JWT")).upper() != "JWT":  # media types are case-insensitive
        raise _refuse("typ", None, "The client assertion header 'typ' must be JWT")
    if "crit" in header:
        raise _refuse("crit", None, "Critical header extensions are not supported")
    assert isinstance(alg, str)
    return alg, kid


def _find_client(
    session: Session, issuer: object, form_client_id: str | None
) -> tuple[Client, OrgKind]:
    if not isinstance(issuer, str) or not 0 < len(issuer) <= MAX_CLIENT_ID_LENGTH:
        raise _refuse("iss", None)
    if form_client_id is not None and form_client_id != issuer:
        raise _refuse("client_id parameter", None)
    found = repository.active_with_kind(session, issuer)
    if found is None:
        raise _refuse("unknown or inactive client", None)
    return found


def _check_jku(header: dict[str, object], client: Client) -> None:
    """A `jku` may only repeat the registered URL: we never fetch a URL the token chose."""
    if "jku" in header and (client.jwks_url is None or header["jku"] != client.jwks_url):
        raise _refuse("jku not registered", client.id)


def _resolve_key(client: Client, kid: str, alg: str, cache: JwksCache) -> PublicKey:
    """The single registered key for (kid, alg); refetch a JWKS URL once for an unknown kid,
    which is how a client's key rotation reaches us before our cache expires."""
    try:
        key = select_key(_registered_keys(client, cache), kid, alg)
        if key is None and client.jwks_url is not None:
            key = select_key(cache.keys(client.jwks_url, refresh=True), kid, alg)
    except JwksUnavailable:
        raise _refuse(
            "jwks unavailable", client.id, "The client's JWKS could not be retrieved"
        ) from None
    if key is None:
        raise _refuse("no key for kid", client.id)
    return key


def _registered_keys(client: Client, cache: JwksCache) -> list[JwkDict]:
    if client.jwks_url is not None:
        return cache.keys(client.jwks_url)
    keys: list[JwkDict] = json.loads(client.jwks or '{"keys": []}')["keys"]
    return keys


def _verify_signature(token: jws.CompactSignature, key: PublicKey, client_id: str) -> None:
    try:
        # The allow-list is fixed here, never taken from the token; the key's type must fit too.
        valid = jws.validate_compact(token, key, algorithms=list(ALGORITHMS))
    except JoseError:
        valid = False
    if not valid:
        raise _refuse("bad signature", client_id)


def _check_claims(
    claims: dict[str, object], client_id: str, settings: Settings, now: float
) -> tuple[str, int]:
    """RFC 7523 §3 and the SMART limits. The signature is good, so reasons may be specific."""
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise _refuse(
            "iss/sub", client_id, "The assertion's iss and sub must both be the client_id"
        )
    if not _audience_matches(claims.get("aud"), settings.token_url):
        raise _refuse(
            "aud",
            client_id,
            f"The assertion's aud must be the token endpoint URL, {settings.token_url}",
        )
    exp = _check_lifetime(claims, client_id, settings, now)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise _refuse("jti", client_id, "The assertion needs a jti of at most 255 characters")
    return jti, exp


def _audience_matches(aud: object, token_url: str) -> bool:
    # Exact string comparison: a trailing slash or a different scheme is a different audience.
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return isinstance(aud, str) and aud == token_url


def _check_lifetime(
    claims: dict[str, object], client_id: str, settings: Settings, now: float
) -> int:
    exp, nbf = claims.get("exp"), claims.get("nbf")
    skew = settings.clock_skew_s
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise _refuse("exp missing", client_id, "The assertion needs an integer exp")
    if exp < now - skew:
        raise _refuse("expired", client_id, "The assertion has expired")
    if exp > now + settings.max_assertion_lifetime_s + skew:
        raise _refuse("exp too far", client_id, "The assertion's exp is too far in the future")
    if isinstance(nbf, int | float) and nbf > now + skew:
        raise _refuse("nbf", client_id, "The assertion is not valid yet")
    return exp


def _consume_jti(
    session: Session, client_id: str, jti: str, exp: int, skew: int, now: float
) -> None:
    """Each jti once per client, across every process: the database primary key decides.

    A row can go once its assertion would be refused as expired anyway (exp + skew).
    """
    current = datetime.fromtimestamp(now, UTC)
    repository.purge_assertions(session, current - timedelta(seconds=skew), client_id)
    expires_at = datetime.fromtimestamp(exp, UTC)
    if not repository.record_assertion(session, client_id, jti, expires_at):
        raise _refuse("replayed jti", client_id, "This assertion (jti) has already been used")
