"""The web workspace's routes, and how the app takes them in (`install_web`).

Every page router is included in `router` below, which checks the CSRF token of every form posted
to any of them (web/csrf.check_csrf): a new page module adds one `include_router` line here
and gets the check with it. Pages are left out of the OpenAPI document: they are not an API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from starlette.staticfiles import StaticFiles

from referral_service.web import (
    analyst,
    broker,
    exchanges,
    ledger,
    practice,
    questionnaires,
    signin,
    start,
)
from referral_service.web.csrf import check_csrf
from referral_service.web.errors import install_web_error_handlers
from referral_service.web.headers import SecurityHeaders

# Beside this module in the installed package (package-data in pyproject.toml).
STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
router.include_router(signin.router)
router.include_router(start.router)
router.include_router(broker.router)
router.include_router(ledger.router)
router.include_router(exchanges.router)
router.include_router(questionnaires.router)
router.include_router(practice.router)
router.include_router(analyst.router)


def install_web(app: FastAPI) -> None:
    """The pages, /static, pages for errors on web paths, and the security headers. Call after
    the machine surfaces' error handlers are installed: the web's wrap them."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_web_error_handlers(app)
    app.add_middleware(SecurityHeaders)
