"""Who is signed in: the session cookie, the viewer, and the dependencies pages take.

The session cookie holds only the opaque token the people service issued; the session itself
(person, second factor done, CSRF token, idle and absolute expiry) is a database row.

Cookie attributes (decided here, see docs/security.md): always HttpOnly, SameSite=Lax, Path=/.
In production, and whenever SPIS_PUBLIC_BASE_URL is https, also Secure with the `__Host-` name
prefix, which makes the browser refuse a cookie set by another host or for a narrower path (a
planted session cookie). In development and test over http a Secure cookie would never come back,
so the cookie is plainly named and not Secure there.

Forms are checked in web/csrf.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Form, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import get_session
from referral_service.errors import NotFound
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import Organisation
from referral_service.people import service as people
from referral_service.people.models import Person, Role
from referral_service.people.service import Signed
from referral_service.principal import Principal
from referral_service.web.nav import START_PAGES

SESSION_COOKIE = "spis_session"
SIGNIN_PATH = "/signin"
SECOND_FACTOR_PATH = "/signin/second-factor"
SECOND_FACTOR_SETUP_PATH = "/signin/second-factor/setup"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_NEXT = 2000

SessionDep = Annotated[Session, Depends(get_session, scope="function")]


class Redirect(Exception):
    """Raised by a dependency to send the browser elsewhere (303); web/errors.py answers it."""

    def __init__(self, url: str, *, clear_session: bool = False) -> None:
        super().__init__(url)
        self.url = url
        self.clear_session = clear_session


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person, as every page sees them. `context` is what the domain services take:
    the request's unit of work and the person's organisation as the Principal."""

    person: Person
    organisation: Organisation
    principal: Principal
    context: Context
    csrf_token: str

    @property
    def role(self) -> Role:
        return self.person.role


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# --- the cookies ---------------------------------------------------------------------------


def secure_cookies(settings: Settings) -> bool:
    return settings.environment == "production" or settings.public_base_url.startswith("https://")


def cookie_name(settings: Settings, name: str) -> str:
    return f"__Host-{name}" if secure_cookies(settings) else name


def session_token(request: Request) -> str | None:
    return request.cookies.get(cookie_name(settings_of(request), SESSION_COOKIE)) or None


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    """No Max-Age: the browser forgets it when closed; the server enforces the idle and absolute
    limits whatever the browser keeps."""
    response.set_cookie(
        cookie_name(settings, SESSION_COOKIE),
        token,
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings, SESSION_COOKIE),
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


# --- who is signed in ----------------------------------------------------------------------


def current_sign_in(request: Request, session: SessionDep) -> Signed | None:
    """The live session named by the cookie (any step of signing in), or None. Cached per
    request by FastAPI, so the CSRF check and the page share one lookup."""
    signed = people.current(session, settings_of(request), session_token(request))
    if signed is not None:
        request.state.csrf_token = signed.web_session.csrf_token
    return signed


CurrentSignIn = Annotated[Signed | None, Depends(current_sign_in)]


def fully_signed_in(signed: Signed) -> bool:
    """Past the second factor: the people service marks a session done only then (or at once
    for a person who needs none), and only such a session may see data."""
    return signed.web_session.second_factor_done


def start_page(person: Person) -> str:
    return START_PAGES[person.role]


def second_factor_step(person: Person) -> str:
    """Where a person part way through signing in goes: enrol an app, or type its code."""
    return SECOND_FACTOR_PATH if person.totp_confirmed_at is not None else SECOND_FACTOR_SETUP_PATH


def signed_in_viewer(request: Request, session: SessionDep, signed: CurrentSignIn) -> Viewer:
    """The viewer of a page that needs a signed-in person of any role. Not signed in: to the
    sign-in page, coming back here afterwards; second factor not done yet: to that step."""
    settings = settings_of(request)
    if signed is None:
        raise Redirect(with_next(SIGNIN_PATH, here(request)))
    if not fully_signed_in(signed):
        raise Redirect(with_next(second_factor_step(signed.person), here(request)))
    organisation = organisations.get(session, signed.person.org_id)
    if organisation is None:  # the row is referenced by the person; a broken database
        raise RuntimeError("a signed-in person's organisation is missing")
    principal = people.principal_of(signed.person)
    viewer = Viewer(
        person=signed.person,
        organisation=organisation,
        principal=principal,
        context=Context(session, principal, settings),
        csrf_token=signed.web_session.csrf_token,
    )
    request.state.viewer = viewer
    return viewer


SignedInViewer = Annotated[Viewer, Depends(signed_in_viewer)]


def role_viewer(*roles: Role) -> Callable[[Viewer], Viewer]:
    """`Depends(role_viewer(Role.BROKER))`: the viewer, if they have one of these roles. Anyone
    else gets the same 404 page as a path that does not exist: a page of another role is not
    theirs to know about."""

    def dependency(viewer: SignedInViewer) -> Viewer:
        if viewer.role not in roles:
            raise NotFound("Not found")
        return viewer

    return dependency


# What a page's handler takes: the viewer of its role, and each text field of its form.
Broker = Annotated[Viewer, Depends(role_viewer(Role.BROKER))]
PracticeStaff = Annotated[Viewer, Depends(role_viewer(Role.PRACTICE))]
Analyst = Annotated[Viewer, Depends(role_viewer(Role.ANALYST))]
FormText = Annotated[str, Form()]


def pending_sign_in(request: Request, signed: CurrentSignIn) -> Signed:
    """The session of a person part way through signing in (password done, second factor not)."""
    next_path = request.query_params.get("next", "")
    if signed is None:
        raise Redirect(with_next(SIGNIN_PATH, safe_next(next_path)))
    if fully_signed_in(signed):
        raise Redirect(safe_next(next_path) or start_page(signed.person))
    return signed


PendingSignIn = Annotated[Signed, Depends(pending_sign_in)]


# --- where to go next ----------------------------------------------------------------------


def safe_next(value: str | None) -> str | None:
    """A local path to return to after signing in, or None. Refuses anything a browser could
    read as another host: a scheme, `//host`, backslashes (`/\\host`), control characters."""
    if not value or len(value) > _MAX_NEXT or not value.startswith("/"):
        return None
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def here(request: Request) -> str:
    """Where to come back to: the page itself for a GET; for a form, the page it was posted to."""
    path = request.url.path
    if request.method in SAFE_METHODS and request.url.query:
        return f"{path}?{request.url.query}"
    return path


def with_next(path: str, next_path: str | None) -> str:
    return f"{path}?next={quote(next_path, safe='/')}" if next_path else path
