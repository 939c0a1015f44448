"""SPIS's public keys: what clients encrypt request bodies to and verify our messages with."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from referral_service.config import Settings
from referral_service.keys.jose import app_key_store

router = APIRouter(tags=["transit"])

# Short enough that a rotation reaches clients within five minutes; the key files keep the old
# keys usable for far longer than that.
JWKS_MAX_AGE_S = 300
JWKS_PATH = "/.well-known/jwks.json"


@router.get(JWKS_PATH)
def jwks(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    keys = app_key_store(request.app.state, settings)
    return JSONResponse(
        keys.public_jwks(), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"}
    )
