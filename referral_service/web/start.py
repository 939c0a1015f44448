"""`/`: where a browser goes first. The broker's start page is its referrals inbox
(web/broker.py), the practice's its referrals list (web/practice.py), the analyst's the outcome
figures' chooser (web/analyst.py). A new page for a role takes its viewer (`Broker`,
`PracticeStaff`, `Analyst` in web/security.py) and adds its link to web/nav.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from referral_service.web.render import see_other
from referral_service.web.security import (
    SIGNIN_PATH,
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
