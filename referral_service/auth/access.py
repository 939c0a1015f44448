"""SPIS's own access tokens: short HS256 JWTs that carry everything a request needs to know about
its caller, so checking one costs no database query."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from referral_service.config import Settings
from referral_service.kit.ids import new_id
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal

ALGORITHM = "HS256"
# RFC 9068 type: an access token can never be mistaken for (or replayed as) any other JWT we sign.
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
MAX_LIFETIME_S = 300
MAX_TOKEN_BYTES = 4096
_KINDS = frozenset(kind.value for kind in OrgKind if kind is not OrgKind.PLATFORM)


class InvalidAccessToken(Exception):
    """Missing, malformed, expired, or not signed by us. The message is safe to show."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


@lru_cache(maxsize=4)
def _signing_key(secret: str) -> OctKey:
    # Importing the key on every request would cost more than the HMAC itself.
    return OctKey.import_key(secret)


def _key(settings: Settings) -> OctKey:
    return _signing_key(settings.token_secret.get_secret_value())


def issue(
    settings: Settings,
    *,
    client_id: str,
    org_id: str,
    org_kind: OrgKind,
    scope: str,
    now: int | None = None,
) -> IssuedToken:
    issued_at = int(time.time()) if now is None else now
    lifetime = min(settings.access_token_lifetime_s, MAX_LIFETIME_S)
    claims = {
        "iss": settings.public_base_url,
        "sub": client_id,
        "org": org_id,
        "kind": org_kind.value,
        "scope": scope,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "jti": new_id(),
    }
    header = {"alg": ALGORITHM, "typ": TOKEN_TYPE}
    return IssuedToken(jwt.encode(header, claims, _key(settings), algorithms=[ALGORITHM]), lifetime)


def verify(settings: Settings, token: str, *, now: float | None = None) -> Principal:
    """The caller a token stands for; InvalidAccessToken for anything we did not issue or that
    has expired. The algorithm is pinned: the token's own header never chooses it."""
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise InvalidAccessToken("The access token is invalid")
    secret = settings.token_secret.get_secret_value()
    principal, exp = _decode(secret, settings.public_base_url, token)
    if exp <= (time.time() if now is None else now):
        raise InvalidAccessToken("The access token has expired")
    return principal


# A client reuses one token for up to five minutes, so most requests present a token already
# checked: remembering the result turns ~50 µs of JOSE work into a dict lookup. Only tokens that
# passed (signed by us) are remembered, and expiry is still checked on every use.
@lru_cache(maxsize=4096)
def _decode(secret: str, issuer: str, token: str) -> tuple[Principal, int]:
    claims = _verified_claims(_signing_key(secret), token)
    exp = claims.get("exp")
    if not isinstance(exp, int):
        raise InvalidAccessToken("The access token is invalid")
    if claims.get("iss") != issuer:
        raise InvalidAccessToken("The access token was not issued here")
    return _principal(claims), exp


def _verified_claims(key: OctKey, token: str) -> dict[str, object]:
    try:
        signed = jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
        claims = json.loads(signed.payload)
    except (JoseError, ValueError, TypeError):
        raise InvalidAccessToken("The access token is invalid") from None
    if signed.headers().get("typ") != TOKEN_TYPE or not isinstance(claims, dict):
        raise InvalidAccessToken("The access token is invalid")
    return claims


def _principal(claims: dict[str, object]) -> Principal:
    sub, org, kind, scope = (claims.get(name) for name in ("sub", "org", "kind", "scope"))
    strings = (sub, org, kind, scope)
    if not all(isinstance(value, str) for value in strings) or kind not in _KINDS:
        raise InvalidAccessToken("The access token is invalid")
    client_id, org_id, kind_name, scope_text = (str(value) for value in strings)
    return Principal(client_id, org_id, OrgKind(kind_name), frozenset(scope_text.split()))
