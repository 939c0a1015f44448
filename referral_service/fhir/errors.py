"""Every error under /fhir is an OperationOutcome with the right HTTP status; never a bare 500.

A server-side failure (5xx) gets a correlation id: logged with the error's class (never its
message, which can quote request data), sent in `X-Correlation-ID` and in the diagnostics, so
support can match what a client saw to the log line.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_adapters.codes import FHIR_JSON
from fhir_adapters.outcome import FhirError
from referral_service.errors import ServiceError
from referral_service.fhir.audit_failures import audit_request_failure
from referral_service.kit.http import NUL_MESSAGE, outcome_response

log = logging.getLogger("spis.errors")
CORRELATION_HEADER = "X-Correlation-ID"
RETRY_AFTER_S = 5
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(FhirError, _fhir_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    # The database went away (restart, outage, every pooled connection busy): retry shortly.
    for unavailable in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(PendingRollbackError, _pending_rollback)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, _data_error)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidTag, _integrity_failure)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidUnwrap, _wrong_kek)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _service_error(request: Request, exc: ServiceError) -> Response:
    await audit_request_failure(request, exc.status, exc.issue_code)
    if exc.status >= 500:  # e.g. store.unreadable.Unreadable: support needs the correlation id
        return server_error(
            request, exc, exc.status, exc.issue_code, exc.message, event=exc.message
        )
    return outcome_response(exc.status, exc.issue_code, exc.message, exc.expression)


async def _fhir_error(request: Request, exc: FhirError) -> Response:
    await audit_request_failure(request, exc.status, exc.code)
    return JSONResponse(exc.to_outcome(), status_code=exc.status, media_type=FHIR_JSON)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}.get(
        exc.status_code, "processing"
    )
    response = outcome_response(exc.status_code, code, str(exc.detail))
    if exc.headers and "Allow" in exc.headers:  # a 405 must say what the resource takes
        response.headers["Allow"] = exc.headers["Allow"]
    return response


async def _request_validation(request: Request, exc: RequestValidationError) -> Response:
    # FHIR bodies are parsed by us; this is query, path and header parameters, and the ledger's
    # JSON bodies (typed with pydantic there).
    where = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors()[:5])
    return outcome_response(400, "invalid", f"Invalid request parameter: {where}")


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    # SQLite (the embedded default) is never down, only busy: another process held its one write
    # lock for longer than the busy timeout. Say which, so nobody goes looking for an outage.
    busy = "database is locked" in str(getattr(exc, "orig", ""))
    what = "busy" if busy else "unavailable"
    response = server_error(
        request, exc, 503, "transient", f"The database is {what}; nothing was changed. "
        "Retry shortly.", event=f"database {what}", level=logging.WARNING
    )  # fmt: skip
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def _database_went_away(exc: BaseException) -> bool:
    """True when a connection error (SQLAlchemy's or the driver's) is in the exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | InterfaceError):
            return True
        if type(current).__name__ in ("OperationalError", "InterfaceError"):  # the DB-API's own
            return True
        current = current.__cause__ or current.__context__
    return False


async def _pending_rollback(request: Request, exc: PendingRollbackError) -> Response:
    # A connection dropped mid-request (PostgreSQL restarting): the session is left needing a
    # rollback, and the next statement says so. That is the outage, not a bug.
    if _database_went_away(exc):
        return await _database_unavailable(request, exc)
    return await _unexpected(request, exc)


async def _data_error(request: Request, exc: DataError) -> Response:
    # The one DataError a caller can cause: a NUL in a value the edges do not check (a JSON API
    # body field); psycopg refuses it before it is sent. Anything else is ours: a 500.
    if "NUL (0x00)" not in str(exc.orig):
        return await _unexpected(request, exc)
    await audit_request_failure(request, 400, "invalid")
    return outcome_response(400, "invalid", NUL_MESSAGE)


async def _integrity_failure(request: Request, exc: InvalidTag) -> Response:
    # A sealed value did not open: tampering, a value moved between rows, or the wrong KEK.
    await audit_request_failure(request, 500, "exception")
    return server_error(
        request, exc, 500, "exception",
        "Stored data failed its integrity check; it was not returned",
        event="stored data failed its integrity check",
    )  # fmt: skip


async def _wrong_kek(request: Request, exc: InvalidUnwrap) -> Response:
    return server_error(
        request, exc, 500, "exception",
        "Stored data cannot be opened with this server's key configuration",
        event="data keys do not unwrap: SPIS_KEK is not the key they were wrapped with",
    )  # fmt: skip


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The frames (file, line) help find the bug; logs.WithIds prints them without the message.
    await audit_request_failure(request, 500, "exception")
    return server_error(
        request, exc, 500, "exception", "Internal error; nothing was changed",
        event="unhandled error", traceback=True,
    )  # fmt: skip


def server_error(
    request: Request,
    exc: Exception,
    status: int,
    code: str,
    diagnostics: str,
    *,
    event: str,
    level: int = logging.ERROR,
    traceback: bool = False,
) -> Response:
    """Log the error's class with a new correlation id, and answer with the same id."""
    correlation_id = uuid.uuid4().hex
    log.log(
        level,
        event,
        exc_info=exc if traceback else None,
        extra={
            "error_type": type(exc).__name__,
            "path": request.url.path,
            "correlation_id": correlation_id,
        },
    )
    text = f"{diagnostics.rstrip('.')}. Correlation id: {correlation_id}"
    response = outcome_response(status, code, text)
    response.headers[CORRELATION_HEADER] = correlation_id
    return response


class LastResort:
    """The outermost middleware: an exception that reached it (raised in another middleware, or
    one no handler inside took) is answered by the handler registered for its class.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then logs the whole
    traceback with the exception's message; here the exception stops.
    """

    def __init__(self, app: ASGIApp, handlers: Mapping[Any, Handler]) -> None:
        self.app, self.handlers = app, handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            response = self._handler(exc)(Request(scope), exc)
            if inspect.isawaitable(response):
                response = await response
            if not started:  # else the client sees the connection close mid-response
                await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return _unexpected
