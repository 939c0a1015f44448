"""Errors on web paths are pages, with the right status; /fhir and the other machine surfaces
keep their OperationOutcomes (fhir/errors.py), untouched.

`install_web_error_handlers` runs after fhir.errors.install_error_handlers: it wraps each handler
already registered so that a web request (web/headers.is_web_path) gets a page instead, and adds
the web's own exceptions (a redirect a dependency asks for, a refused form).

- 404: one page, whatever was not found (a path that does not exist, a page of another role,
  another organisation's record) and whatever the service said: they must look the same. It
  shows no viewer, so a signed-in person's 404 is identical for every cause.
- other 4xx from a service: the service's message (written for people: it names no patient data).
- 5xx: no detail, only a correlation id that is also logged (with the error's class and the
  route, never the path, which can hold a set-up link's token).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from referral_service.errors import ServiceError
from referral_service.web.csrf import CsrfRefused
from referral_service.web.headers import is_web_path
from referral_service.web.render import render
from referral_service.web.security import Redirect, clear_session_cookie, settings_of

log = logging.getLogger("spis.web")
CORRELATION_HEADER = "X-Correlation-ID"
RETRY_AFTER_S = 5
Handler = Callable[[Request, Any], Response | Awaitable[Response]]

TITLES = {
    400: "The request was not understood",
    401: "Sign in to continue",
    403: "You cannot do this",
    404: "Not found",
    405: "Not found",
    409: "This cannot be done now",
    412: "This changed while you were looking at it",
    422: "Check what you entered",
    429: "Too many attempts",
    503: "SPIS is unavailable",
}
NOT_FOUND_MESSAGE = (
    "There is no page at this address, or it is not one you can open. Check the address, or go "
    "back to your start page."
)
CSRF_MESSAGE = "The form expired or did not come from SPIS; go back and try again."
SERVER_ERROR_MESSAGE = "Something went wrong on our side; nothing was changed. Try again later."
UNAVAILABLE_MESSAGE = (
    "SPIS cannot reach its database just now; nothing was changed. Try again in a minute."
)


def install_web_error_handlers(app: FastAPI) -> None:
    for cls, handler in list(app.exception_handlers.items()):
        app.exception_handlers[cls] = _web_or(handler)
    app.exception_handlers.setdefault(Exception, _web_or(_no_machine_handler))
    app.add_exception_handler(Redirect, _redirect)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRefused, _csrf_refused)  # type: ignore[arg-type]


def _web_or(machine: Handler) -> Handler:
    async def handler(request: Request, exc: Any) -> Response:
        if is_web_path(request.url.path):
            return error_page(request, exc)
        response = machine(request, exc)
        return await response if isinstance(response, Awaitable) else response

    return handler


def error_page(request: Request, exc: Exception) -> Response:
    """The page for any exception raised while answering a web request."""
    status = _status_of(exc)
    if status in (404, 405):
        request.state.viewer = None  # see the module's docstring
        return _page(request, status, NOT_FOUND_MESSAGE)
    if isinstance(exc, CsrfRefused):
        return _page(request, 403, CSRF_MESSAGE)
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return _server_error(request, exc, 503, UNAVAILABLE_MESSAGE, logging.WARNING)
    if status >= 500:
        return _server_error(request, exc, status, SERVER_ERROR_MESSAGE, logging.ERROR)
    if isinstance(exc, ServiceError):
        return _page(request, status, exc.message)
    return _page(request, status, TITLES.get(status, TITLES[400]))


def _status_of(exc: Exception) -> int:
    if isinstance(exc, ServiceError):
        return exc.status
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 400
    return 500


def _page(request: Request, status: int, message: str) -> Response:
    title = TITLES.get(status, "Something went wrong")
    context = {"status": status, "title": title, "message": message}
    return render(request, "error.html", context, status=status)


def _server_error(
    request: Request, exc: Exception, status: int, message: str, level: int
) -> Response:
    correlation_id = uuid.uuid4().hex
    route = getattr(request.scope.get("route"), "path", "(no route)")
    log.log(
        level,
        "web page failed",
        exc_info=exc if level >= logging.ERROR else None,
        extra={"error_type": type(exc).__name__, "route": route, "correlation_id": correlation_id},
    )
    context = {
        "status": status,
        "title": TITLES.get(status, "Something went wrong"),
        "message": message,
        "correlation_id": correlation_id,
    }
    response = render(request, "error.html", context, status=status)
    response.headers[CORRELATION_HEADER] = correlation_id
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def _no_machine_handler(request: Request, exc: Exception) -> Response:
    raise exc  # only reached for a machine path when fhir/errors.py registered no catch-all


async def _redirect(request: Request, exc: Redirect) -> Response:
    response = RedirectResponse(exc.url, status_code=303)
    if exc.clear_session:
        clear_session_cookie(response, settings_of(request))
    return response


async def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
    return error_page(request, exc)
