"""FastAPI dependencies: who is calling (from the bearer token) and may they do this.

Both are pure CPU: the access token carries the client, organisation, kind and scopes, so no
request pays a database query to authenticate. The price is that revoking a client takes effect
when its last token expires (at most five minutes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from referral_service.auth import access
from referral_service.config import Settings
from referral_service.errors import Forbidden, Unauthenticated
from referral_service.principal import Principal

INTERACTION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def bearer_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def current_principal(request: Request) -> Principal:
    """The caller; Unauthenticated (401 + WWW-Authenticate under /fhir) if there is none.

    Async on purpose, like `requires`: a plain `def` dependency costs a threadpool hop."""
    return principal_of(request)


def principal_of(request: Request) -> Principal:
    """`current_principal` for code that is not a dependency (error handlers, middleware)."""
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated(
            "A bearer access token is required (see /.well-known/smart-configuration)"
        )
    settings: Settings = request.app.state.settings
    try:
        return access.verify(settings, token)
    except access.InvalidAccessToken as exc:
        raise Unauthenticated(str(exc)) from None


def require(principal: Principal, resource_type: str, interaction: str) -> None:
    """Forbidden unless the token's scopes allow this interaction (one of c, r, u, d, s)."""
    if not principal.allows(resource_type, interaction):
        name = INTERACTION_NAMES.get(interaction, interaction)
        raise Forbidden(f"This token's scopes do not allow {name} on {resource_type}")


def requires(resource_type: str, interaction: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency for routes with a fixed resource type: `Depends(requires("Task", "r"))`.

    Async on purpose: the check is a few microseconds of CPU, cheaper than the threadpool hop
    FastAPI makes for a plain `def` dependency.
    """

    async def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        require(principal, resource_type, interaction)
        return principal

    return dependency
