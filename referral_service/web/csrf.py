"""Whether a form came from SPIS: the CSRF check on every web form.

Every POST form carries a hidden `csrf_token` (`ui.csrf_field(csrf_token)` in the templates; an
htmx request may send it as an `X-CSRF-Token` header instead). Once signed in it is the session's
own token. On the forms used before a session exists (sign-in, set-up) it is a signed double
submit: a random nonce in a cookie and, in the form, an HMAC of that nonce under a key derived from
SPIS_TOKEN_SECRET, so another site can neither read nor make a matching pair. `check_csrf` is a
dependency of the whole web router (web/router.py), so a new page's POST cannot forget it; a
missing or wrong token is a 403 page and the request changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from fastapi import Request
from starlette.responses import Response

from referral_service.config import Settings
from referral_service.web.security import (
    SAFE_METHODS,
    SIGNIN_PATH,
    CurrentSignIn,
    Redirect,
    cookie_name,
    secure_cookies,
    settings_of,
)

PRESESSION_COOKIE = "spis_presession"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Forms posted before a session exists: they carry the pre-session token (route path formats).
PRESESSION_FORMS = frozenset({SIGNIN_PATH, "/setup/{token}"})
_NONCE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


class CsrfRefused(Exception):
    """The form's token is missing or wrong: a 403 page, nothing changed."""


async def check_csrf(request: Request, signed: CurrentSignIn) -> None:
    """Every unsafe request on a web route: the form's `csrf_token` must match, compared in
    constant time. A form posted after the session ended sends the browser to sign in again."""
    if request.method in SAFE_METHODS:
        return
    given = await _form_token(request)
    if _is_presession_form(request):
        nonce = _presession_nonce(request)
        expected = _presession_mac(settings_of(request), nonce) if nonce else None
    elif signed is None:
        raise Redirect(f"{SIGNIN_PATH}?notice=session-ended", clear_session=True)
    else:
        expected = signed.web_session.csrf_token
    if not (expected and given and hmac.compare_digest(given.encode(), expected.encode())):
        raise CsrfRefused


def form_csrf_token(request: Request) -> str:
    """The token a page rendered for this request puts in its forms: the session's, or on the
    sign-in and set-up pages the pre-session one, minting a nonce (set as a cookie by
    `finish_response`) when the browser has none yet. Empty on a page with no form to protect."""
    if not _is_presession_form(request):
        token: str = getattr(request.state, "csrf_token", "")
        return token
    nonce = _presession_nonce(request)
    if nonce is None:
        nonce = request.state.new_presession_nonce = secrets.token_urlsafe(32)
    return _presession_mac(settings_of(request), nonce)


def finish_response(request: Request, response: Response) -> None:
    """Set the pre-session cookie if this response's forms use a freshly minted nonce."""
    nonce = getattr(request.state, "new_presession_nonce", None)
    if nonce is None:
        return
    settings = settings_of(request)
    response.set_cookie(
        cookie_name(settings, PRESESSION_COOKIE),
        nonce,
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


async def _form_token(request: Request) -> str | None:
    if CSRF_HEADER in request.headers:
        return request.headers[CSRF_HEADER]
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


def _is_presession_form(request: Request) -> bool:
    route = request.scope.get("route")
    return getattr(route, "path", None) in PRESESSION_FORMS


def _presession_nonce(request: Request) -> str | None:
    nonce = getattr(request.state, "new_presession_nonce", None) or request.cookies.get(
        cookie_name(settings_of(request), PRESESSION_COOKIE)
    )
    return nonce if nonce and _NONCE.match(nonce) else None


def _presession_mac(settings: Settings, nonce: str) -> str:
    # A key of its own, derived from the token secret, so this MAC can never stand for another
    # of the secret's uses (it also signs access tokens).
    secret = settings.token_secret.get_secret_value().encode()
    key = hmac.new(secret, b"spis.web.presession-csrf", hashlib.sha256).digest()
    mac = hmac.new(key, nonce.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
