"""Random tokens for cookies and set-up links, kept only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets

# Ours are 43 characters; anything far longer is not worth hashing.
MAX_TOKEN_LENGTH = 128


def new() -> tuple[str, str]:
    """(token, its digest): 256 random bits, URL-safe."""
    token = secrets.token_urlsafe(32)
    return token, _sha256(token)


def digest(token: str | None) -> str | None:
    """The id a token is stored under; None for no token or one too long to be ours."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return _sha256(token)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
