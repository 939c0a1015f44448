"""Every error under /fhir is an OperationOutcome with the right HTTP status; never a bare 500."""

from __future__ import annotations

import logging

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from fhir_adapters.outcome import FhirError, operation_outcome
from referral_service.audit.failures import audit_request_failure
from referral_service.errors import ServiceError

log = logging.getLogger("spis.errors")
FHIR_JSON = "application/fhir+json"


def outcome_response(
    status: int, code: str, diagnostics: str, expression: list[str] | None = None
) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="spis"'} if status == 401 else None
    body = operation_outcome(code, diagnostics, expression=expression)
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(FhirError, _fhir_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _database_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, _data_error)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidTag, _integrity_failure)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidUnwrap, _wrong_kek)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _service_error(request: Request, exc: ServiceError) -> Response:
    await audit_request_failure(request, exc.status, exc.issue_code)
    return outcome_response(exc.status, exc.issue_code, exc.message, exc.expression)


async def _fhir_error(request: Request, exc: FhirError) -> Response:
    await audit_request_failure(request, exc.status, exc.code)
    return JSONResponse(exc.to_outcome(), status_code=exc.status, media_type=FHIR_JSON)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}.get(
        exc.status_code, "processing"
    )
    return outcome_response(exc.status_code, code, str(exc.detail))


async def _request_validation(request: Request, exc: RequestValidationError) -> Response:
    # FHIR bodies are parsed by us; this is query, path and header parameters, and the ledger's
    # JSON bodies (typed with pydantic there).
    where = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors()[:5])
    return outcome_response(400, "invalid", f"Invalid request parameter: {where}")


async def _database_unavailable(request: Request, exc: OperationalError) -> Response:
    log.warning("database unavailable", extra={"path": request.url.path})
    response = outcome_response(
        503, "transient", "The database is unavailable; nothing was changed. Retry shortly."
    )
    response.headers["Retry-After"] = "5"
    return response


async def _data_error(request: Request, exc: DataError) -> Response:
    # The one DataError a caller can cause: a NUL in a value the edges do not check (a JSON API
    # body field); psycopg refuses it before it is sent. Anything else is ours: a 500.
    if "NUL (0x00)" not in str(exc.orig):
        return await _unexpected(request, exc)
    await audit_request_failure(request, 400, "invalid")
    return outcome_response(400, "invalid", "Text must not contain the NUL character (U+0000)")


async def _integrity_failure(request: Request, exc: InvalidTag) -> Response:
    # A sealed value did not open: tampering, a value moved between rows, or the wrong KEK.
    log.error("stored data failed its integrity check", extra={"path": request.url.path})
    await audit_request_failure(request, 500, "exception")
    return outcome_response(
        500, "exception", "Stored data failed its integrity check; it was not returned"
    )


async def _wrong_kek(request: Request, exc: InvalidUnwrap) -> Response:
    log.error("data keys do not unwrap: SPIS_KEK is not the key they were wrapped with")
    return outcome_response(
        500, "exception", "Stored data cannot be opened with this server's key configuration"
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Log the type and the path only: exception messages can carry request data.
    log.error("unhandled error", extra={"error_type": type(exc).__name__, "path": request.url.path})
    await audit_request_failure(request, 500, "exception")
    return outcome_response(500, "exception", "Internal error; nothing was changed")
