"""SMART Backend Services discovery and the token endpoint. Errors here are OAuth JSON
(RFC 6749 §5.2), not OperationOutcomes: the callers are OAuth client libraries."""

from __future__ import annotations

import logging
import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from referral_service.audit import service as audit
from referral_service.auth import access, scopes
from referral_service.auth.assertion import ALGORITHMS, authenticate, claimed_issuer
from referral_service.auth.jwks import JwksCache
from referral_service.auth.oauth import OAuthError, invalid_request, unsupported_grant_type
from referral_service.auth.openapi import TOKEN_OPENAPI
from referral_service.config import Settings
from referral_service.db import get_session

log = logging.getLogger("spis.auth")
router = APIRouter(tags=["auth"])

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Tokens and token errors must never be cached by anything in between (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_cache_guard = threading.Lock()


def jwks_cache(request: Request) -> JwksCache:
    """One cache per app (so per process); tests may put their own on app.state first."""
    state = request.app.state
    with _cache_guard:
        if getattr(state, "jwks_cache", None) is None:
            state.jwks_cache = JwksCache()
        cache: JwksCache = state.jwks_cache
    return cache


async def token_form(request: Request) -> list[tuple[str, str]]:
    """The raw form pairs, so repeated parameters can be refused (RFC 6749 §3.2)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        return []
    form = await request.form()
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


@router.get("/.well-known/smart-configuration")
def smart_configuration(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    return JSONResponse(
        {
            "token_endpoint": settings.token_url,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
            "grant_types_supported": [GRANT_TYPE],
            "scopes_supported": scopes.supported_scopes(),
            "capabilities": ["client-confidential-asymmetric", "permission-v2"],
        }
    )


@router.post("/auth/token", openapi_extra=TOKEN_OPENAPI)
def token(
    request: Request,
    session: Annotated[Session, Depends(get_session, scope="function")],
    form: Annotated[list[tuple[str, str]], Depends(token_form)],
    cache: Annotated[JwksCache, Depends(jwks_cache)],
) -> JSONResponse:
    settings: Settings = request.app.state.settings
    try:
        body = _token_response(session, settings, cache, _single_values(form))
    except OAuthError as exc:
        # A failure event: written even though nothing else of this request is kept.
        audit.record_token_refused(session, client_id=_claimed_client(form), error=exc.error)
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            status_code=exc.status,
            headers=NO_STORE,
        )
    return JSONResponse(body, headers=NO_STORE)


def _token_response(
    session: Session, settings: Settings, cache: JwksCache, form: dict[str, str]
) -> dict[str, str | int]:
    _check_grant(form)
    client = authenticate(
        session, form["client_assertion"], settings, cache, client_id=form.get("client_id")
    )
    granted = scopes.grant(form.get("scope"), client.scopes)
    issued = access.issue(
        settings,
        client_id=client.client_id,
        org_id=client.org_id,
        org_kind=client.org_kind,
        scope=granted,
    )
    log.info("access token issued", extra={"client_id": client.client_id, "scope": granted})
    audit.record_token_issued(
        session,
        client_id=client.client_id,
        org_id=client.org_id,
        org_kind=client.org_kind,
        scope=granted,
    )
    # No refresh token: a backend client simply signs a new assertion (SMART: SHOULD NOT issue).
    return {
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
        "scope": granted,
    }


def _claimed_client(pairs: list[tuple[str, str]]) -> str | None:
    """Who the refused caller said it was (the client_id parameter, else the assertion's
    unverified `iss`): for the audit trail only, never believed."""
    values = dict(reversed(pairs))  # the first of a repeated parameter
    return values.get("client_id") or claimed_issuer(values.get("client_assertion"))


def _single_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise invalid_request(f"Parameter '{name}' was sent more than once")
        form[name] = value
    return form


def _check_grant(form: dict[str, str]) -> None:
    if "grant_type" not in form:
        raise invalid_request(f"grant_type is required (form-encoded, {FORM_CONTENT_TYPE})")
    if form["grant_type"] != GRANT_TYPE:
        raise unsupported_grant_type()
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise invalid_request(f"client_assertion_type must be {ASSERTION_TYPE}")
    if not form.get("client_assertion"):
        raise invalid_request("client_assertion is required")
    if "scope" not in form:
        raise invalid_request("scope is required")
