"""Signing in: the set-up link, password, the second factor (set-up and entry), signing out.

Thin, like every page: read the form, call the people service, render or redirect. The service
audits sign-ins, refusals, lock-outs and sign-outs; a refusal is caught here and answered as a
page, so the request still commits what the service recorded (the failed attempt counts).

Each step that starts or changes a session sets the cookie to the token the service returned: a
new one after the password and again after the second factor, so a token seen before signing in
is worth nothing afterwards.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from typing import Any

import segno
from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from referral_service.errors import Invalid
from referral_service.people import service as people
from referral_service.people.service import Signed, Started
from referral_service.web.render import render, see_other
from referral_service.web.security import (
    SECOND_FACTOR_PATH,
    SECOND_FACTOR_SETUP_PATH,
    SIGNIN_PATH,
    CurrentSignIn,
    FormText,
    PendingSignIn,
    SessionDep,
    clear_session_cookie,
    fully_signed_in,
    safe_next,
    session_token,
    set_session_cookie,
    settings_of,
    start_page,
    with_next,
)

router = APIRouter()

REFUSED = "The email address or password is not right."
CODE_REFUSED = "That code is not right. Enter the 6-digit code your app shows now."
NEXT_STEP_PATHS = {"totp-setup": SECOND_FACTOR_SETUP_PATH, "totp": SECOND_FACTOR_PATH}


# --- sign in -------------------------------------------------------------------------------


@router.get(SIGNIN_PATH)
def signin_page(request: Request, signed: CurrentSignIn, next: str = "") -> Response:
    if signed is not None and fully_signed_in(signed):
        return see_other(safe_next(next) or start_page(signed.person))
    return render(request, "signin.html", {"email": "", "next": safe_next(next) or ""})


@router.post(SIGNIN_PATH)
def signin(
    request: Request,
    session: SessionDep,
    signed: CurrentSignIn,
    email: FormText = "",
    password: FormText = "",
    next: FormText = "",
) -> Response:
    page = {"email": email.strip(), "next": safe_next(next) or ""}
    errors = _missing(email=(email, "Enter your email address"), password=(password, "Enter your password"))  # fmt: skip
    if errors:
        return render(request, "signin.html", {**page, "errors": errors}, status=400)
    try:
        started = people.sign_in(session, settings_of(request), email.strip(), password)
    except people.AccountLocked as exc:
        return _locked(request, exc.retry_after_s)
    except people.SignInRefused:
        return render(request, "signin.html", {**page, "form_error": REFUSED}, status=401)
    if signed is not None:  # whoever was signed in on this browser is signed out
        people.sign_out(session, signed_token(request))
    return _continue(request, started, next)


# --- the set-up link -----------------------------------------------------------------------


@router.get("/setup/{token}")
def setup_page(request: Request, session: SessionDep, token: str) -> Response:
    try:
        person = people.setup_link_person(session, token)
    except people.SetupLinkInvalid as exc:
        return _link_invalid(request, exc.status)
    return render(request, "setup.html", {"token": token, "email": person.email})


@router.post("/setup/{token}")
def setup(
    request: Request,
    session: SessionDep,
    signed: CurrentSignIn,
    token: str,
    password: FormText = "",
    password_again: FormText = "",
) -> Response:
    try:
        person = people.setup_link_person(session, token)
    except people.SetupLinkInvalid as exc:
        return _link_invalid(request, exc.status)
    page = {"token": token, "email": person.email}
    errors = _missing(password=(password, "Choose a password"), password_again=(password_again, "Type the password again"))  # fmt: skip
    if not errors and password != password_again:
        errors = {"password_again": "The two passwords are not the same"}
    if errors:
        return render(request, "setup.html", {**page, "errors": errors}, status=400)
    try:
        started = people.complete_setup(session, settings_of(request), token, password)
    except people.SetupLinkInvalid as exc:
        return _link_invalid(request, exc.status)
    except Invalid as exc:  # too weak: the service says why
        return render(request, "setup.html", {**page, "errors": {"password": exc.message}}, status=422)  # fmt: skip
    if signed is not None and signed.person.id != person.id:  # someone else on this browser
        people.sign_out(session, signed_token(request))
    return _continue(request, started, "")


# --- the second factor ---------------------------------------------------------------------


@router.get(SECOND_FACTOR_SETUP_PATH)
def second_factor_setup_page(
    request: Request, session: SessionDep, signed: PendingSignIn, next: str = ""
) -> Response:
    if signed.person.totp_confirmed_at is not None:  # enrolled already: the code is next
        return see_other(with_next(SECOND_FACTOR_PATH, safe_next(next)))
    return render(request, "second_factor_setup.html", _setup_context(session, signed, next))


@router.post(SECOND_FACTOR_SETUP_PATH)
def second_factor_setup(
    request: Request,
    session: SessionDep,
    signed: PendingSignIn,
    code: FormText = "",
    next: FormText = "",
) -> Response:
    def again(status: int, **extra: Any) -> Response:
        context = {**_setup_context(session, signed, next), **extra}
        return render(request, "second_factor_setup.html", context, status=status)

    return _confirm(request, session, code, next, again)


@router.get(SECOND_FACTOR_PATH)
def second_factor_page(request: Request, signed: PendingSignIn, next: str = "") -> Response:
    if signed.person.totp_confirmed_at is None:  # no app yet: set one up first
        return see_other(with_next(SECOND_FACTOR_SETUP_PATH, safe_next(next)))
    return render(request, "second_factor.html", {"next": safe_next(next) or ""})


@router.post(SECOND_FACTOR_PATH)
def second_factor(
    request: Request,
    session: SessionDep,
    signed: PendingSignIn,
    code: FormText = "",
    next: FormText = "",
) -> Response:
    def again(status: int, **extra: Any) -> Response:
        context = {"next": safe_next(next) or "", **extra}
        return render(request, "second_factor.html", context, status=status)

    return _confirm(request, session, code, next, again)


# --- sign out ------------------------------------------------------------------------------


@router.post("/signout")
def signout(request: Request, session: SessionDep, signed: CurrentSignIn) -> Response:
    if signed is not None:
        people.sign_out(session, signed_token(request))
    response = see_other(SIGNIN_PATH, notice="signed-out")
    clear_session_cookie(response, settings_of(request))
    return response


# --- shared steps --------------------------------------------------------------------------


def signed_token(request: Request) -> str:
    token = session_token(request)
    assert token is not None  # a live session was found by this very cookie
    return token


def _continue(request: Request, started: Started, next_path: str) -> Response:
    """After a step that (re)started the session: the new cookie, and on to the next step."""
    step = NEXT_STEP_PATHS.get(started.next_step)
    target = (
        with_next(step, safe_next(next_path))
        if step
        else safe_next(next_path) or start_page(started.person)
    )
    response = see_other(target)
    set_session_cookie(response, settings_of(request), started.token)
    return response


def _confirm(
    request: Request, session: Session, code: str, next_path: str, again: Callable[..., Response]
) -> Response:
    code = "".join(code.split())
    if not code:
        return again(400, errors={"code": "Enter the 6-digit code from your app"})
    try:
        started = people.confirm_second_factor(
            session, settings_of(request), signed_token(request), code
        )
    except people.AccountLocked as exc:
        return _locked(request, exc.retry_after_s)
    except people.SecondFactorRefused:
        return again(401, errors={"code": CODE_REFUSED})
    except people.SessionEnded:  # it expired between showing the page and this code
        response = see_other(SIGNIN_PATH, notice="session-ended")
        clear_session_cookie(response, settings_of(request))
        return response
    return _continue(request, started, next_path)


def _setup_context(session: Session, signed: Signed, next_path: str) -> dict[str, Any]:
    secret, uri = people.totp_provisioning(session, signed.person)
    return {
        "qr_data_uri": qr_data_uri(uri),
        "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "next": safe_next(next_path) or "",
    }


def qr_data_uri(text: str) -> str:
    """The QR code as an SVG data URI, made here: the secret never leaves SPIS to be drawn, and
    the page's CSP allows data: images but no inline SVG styles."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=5, border=4, xmldecl=False)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _missing(**fields: tuple[str, str]) -> dict[str, str]:
    return {name: message for name, (value, message) in fields.items() if not value.strip()}


def _locked(request: Request, retry_after_s: int) -> Response:
    minutes = max(1, math.ceil(retry_after_s / 60))
    response = render(request, "locked.html", {"minutes": minutes}, status=429)
    response.headers["Retry-After"] = str(max(1, retry_after_s))
    return response


def _link_invalid(request: Request, status: int) -> Response:
    return render(request, "setup_invalid.html", {"status": status}, status=status)
