"""The calling client's registered encryption key, for answering it in JWE. Synchronous (one
primary-key query, perhaps a JWKS fetch): callers on the event loop run it in the threadpool."""

from __future__ import annotations

import json

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth import repository
from referral_service.auth.jwks import JwksCache, JwksUnavailable
from referral_service.auth.models import Client
from referral_service.errors import ServiceError, Unauthenticated
from referral_service.kit.jwe_keys import JwkDict, select_encryption_key


class NoEncryptionKey(ServiceError):
    status = 406
    issue_code = "not-supported"


class ClientKeysUnavailable(ServiceError):
    status = 503
    issue_code = "transient"


NO_KEY_MESSAGE = (
    "Encrypted responses (Accept: application/jose) need an encryption key in this client's "
    "registered JWKS: an EC P-256/P-384 key for ECDH-ES+A256KW or an RSA key for RSA-OAEP-256, "
    "with use 'enc'"
)


def encryption_key_for(
    sessions: sessionmaker[Session], cache: JwksCache, client_id: str
) -> JwkDict:
    """The key to encrypt this client's responses to. Raises before the request is handled, so
    a client we cannot answer never has its request carried out."""
    client = _active_client(sessions, client_id)
    key = _registered_key(client, cache)
    if key is None:
        raise NoEncryptionKey(NO_KEY_MESSAGE)
    return key


def registered_encryption_key(session: Session, cache: JwksCache, client_id: str) -> JwkDict | None:
    """The encryption key in an active client's registered JWKS, or None: what a delivery to a
    subscription that client made is sealed to (deliveries/)."""
    found = repository.active_with_kind(session, client_id)
    if found is None:
        raise Unauthenticated("The access token's client is not active")
    return _registered_key(found[0], cache)


def _active_client(sessions: sessionmaker[Session], client_id: str) -> Client:
    try:
        with sessions() as session:
            found = repository.active_with_kind(session, client_id)
    except OperationalError:
        raise ClientKeysUnavailable(
            "The database is unavailable; nothing was changed. Retry shortly."
        ) from None
    if found is None:
        raise Unauthenticated("The access token's client is not active")
    return found[0]


def _registered_key(client: Client, cache: JwksCache) -> JwkDict | None:
    if client.jwks_url is None:
        return select_encryption_key(_stored_keys(client.jwks))
    try:
        key = select_encryption_key(cache.keys(client.jwks_url))
        if key is None:  # the client may have added one since we cached its set
            key = select_encryption_key(cache.keys(client.jwks_url, refresh=True))
    except JwksUnavailable:
        raise ClientKeysUnavailable("The client's JWKS could not be retrieved") from None
    return key


def _stored_keys(document: str | None) -> list[JwkDict]:
    try:
        parsed = json.loads(document or "{}")
    except ValueError:
        return []
    keys = parsed.get("keys") if isinstance(parsed, dict) else None
    return [key for key in keys if isinstance(key, dict)] if isinstance(keys, list) else []
