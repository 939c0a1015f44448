"""`/` and the analyst's start page. The broker's start page is its referrals inbox
(web/broker.py), the practice's its referrals list (web/practice.py). A new page for a role takes
its viewer (`Broker`, `PracticeStaff`, `Analyst` in web/security.py) and adds its link to
web/nav.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from referral_service.web.render import render, see_other
from referral_service.web.security import (
    SIGNIN_PATH,
    Analyst,
    CurrentSignIn,
    fully_signed_in,
    second_factor_step,
    start_page,
)

router = APIRouter()


@router.get("/")
def home(request: Request, signed: CurrentSignIn) -> Response:
    if signed is None:
        return see_other(SIGNIN_PATH)
    if not fully_signed_in(signed):
        return see_other(second_factor_step(signed.person))
    return see_other(start_page(signed.person))


@router.get("/analyst")
def analyst_start(request: Request, viewer: Analyst) -> Response:
    return render(request, "start/analyst.html")
