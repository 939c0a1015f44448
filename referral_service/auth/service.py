"""Registering client systems. Takes a session, never commits."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from referral_service.auth import repository
from referral_service.auth import scopes as scope_rules
from referral_service.auth.jwks import InvalidJwks, validate_jwks
from referral_service.auth.models import Client
from referral_service.errors import Invalid, NotFound
from referral_service.kit.ids import new_id
from referral_service.organisations import repository as organisations


def register_client(
    session: Session,
    org_id: str,
    jwks: dict[str, object] | None,
    jwks_url: str | None,
    scopes: str | None = None,
    name: str | None = None,
    *,
    require_https: bool = False,
) -> Client:
    """A new active client for an organisation, with exactly one source of public keys.

    Registered scopes default to the ceiling for the organisation's kind and may not exceed it.
    `require_https` is set outside development: SMART requires the JWKS URL to be served over TLS.
    """
    org = organisations.get(session, org_id)
    if org is None:
        raise NotFound("No organisation with this id")
    if (jwks is None) == (jwks_url is None):
        raise Invalid("Give exactly one of a JWK Set or a JWKS URL")
    client = Client(
        id=new_id(),
        org_id=org.id,
        name=(name or f"{org.name} system").strip()[:200],
        jwks=_checked_jwks(jwks) if jwks is not None else None,
        jwks_url=_checked_url(jwks_url, require_https) if jwks_url is not None else None,
        scopes=scope_rules.registrable(org.kind, scopes),
        active=True,
    )
    return repository.add(session, client)


def _checked_jwks(jwks: dict[str, object]) -> str:
    try:
        keys = validate_jwks(jwks)
    except InvalidJwks as exc:
        raise Invalid(str(exc)) from None
    # Only the public members survive: nothing else from the submitted document is stored.
    return json.dumps({"keys": keys}, separators=(",", ":"))


def _checked_url(url: str, require_https: bool) -> str:
    parts = urlsplit(url.strip())
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname or parts.username or parts.fragment:
        raise Invalid(f"The JWKS URL must be an absolute {' or '.join(allowed)} URL")
    return parts.geturl()


def deactivate_client(session: Session, client_id: str) -> Client:
    client = repository.get(session, client_id)
    if client is None:
        raise NotFound("No client with this id")
    client.active = False
    session.flush()
    return client
