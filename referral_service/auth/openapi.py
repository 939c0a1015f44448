"""How the token endpoint and the bearer token appear in the OpenAPI document.

The token request is a form that `token_form` reads by hand (repeated fields must be refused), so
FastAPI cannot see it: it is declared here. Errors are OAuth JSON (RFC 6749 §5.2).
"""

from __future__ import annotations

from typing import Any

from referral_service.auth import scopes
from referral_service.auth.assertion import ALGORITHMS

Json = dict[str, Any]

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

_FORM = {
    "type": "object",
    "required": ["grant_type", "client_assertion_type", "client_assertion", "scope"],
    "properties": {
        "grant_type": {"type": "string", "enum": [GRANT_TYPE]},
        "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
        "client_assertion": {
            "type": "string",
            "description": f"A JWT signed with the client's registered key ({', '.join(ALGORITHMS)}"
            "): iss = sub = client id, aud = this endpoint's URL, exp at most 5 minutes "
            "ahead, a unique jti",
        },
        "scope": {
            "type": "string",
            "description": "Space-separated SMART v2 system scopes, e.g. `system/Task.rs`; the "
            "token gets those the client is registered for",
        },
        "client_id": {"type": "string", "description": "Optional; must match the assertion"},
    },
}
_TOKEN = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["bearer"]},
        "expires_in": {"type": "integer", "description": "Seconds"},
        "scope": {"type": "string", "description": "The scopes granted"},
    },
}
_OAUTH_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "string",
            "enum": [
                "invalid_request",
                "invalid_client",
                "invalid_scope",
                "unsupported_grant_type",
            ],
        },
        "error_description": {"type": "string"},
    },
}


def _oauth_error(description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": _OAUTH_ERROR}}}


TOKEN_OPENAPI: Json = {
    "summary": "Exchange a signed client assertion for an access token",
    "description": "SMART Backend Services: OAuth 2.0 client_credentials with private_key_jwt. "
    "Each field once; the answer is never cached (`Cache-Control: no-store`).",
    "requestBody": {"required": True, "content": {FORM_CONTENT_TYPE: {"schema": _FORM}}},
    "responses": {
        "200": {
            "description": "An access token",
            "content": {"application/json": {"schema": _TOKEN}},
        },
        "400": _oauth_error("A field missing or repeated, a wrong grant type, or no scope granted"),
        "401": _oauth_error("The client assertion did not authenticate a registered client"),
    },
    "security": [],
}


def security_schemes(token_url: str) -> Json:
    return {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /auth/token",
        },
        "smartBackendServices": {
            "type": "oauth2",
            "description": "SMART Backend Services: the client authenticates with a JWT signed "
            "by its registered key (private_key_jwt), not with a client secret",
            "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": _scopes()}},
        },
    }


def _scopes() -> dict[str, str]:
    """Every scope the server grants, and each single interaction of it that an operation needs."""
    found: dict[str, str] = {}
    for scope in scopes.supported_scopes():
        rtype, _, letters = scope.removeprefix("system/").partition(".")
        found[scope] = f"{rtype}: {letters}"
        for letter in letters:
            found[f"system/{rtype}.{letter}"] = f"{rtype}: {letter}"
    return dict(sorted(found.items()))
