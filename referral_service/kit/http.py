"""HTTP helpers shared by the /fhir edge and by the routers and middleware below it (the ledger's
JSON API, JWE transit): an OperationOutcome response, and the NUL guard on URLs.

Here rather than in `fhir/` so that a domain never imports the edge to answer an error.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import JSONResponse, Response

from fhir_adapters.codes import FHIR_JSON
from fhir_adapters.outcome import operation_outcome
from referral_service.errors import ServiceError

NUL = "\x00"
NUL_MESSAGE = "Text must not contain the NUL character (U+0000)"


class NulCharacter(ServiceError):
    status = 400
    issue_code = "invalid"


def outcome_response(
    status: int, code: str, diagnostics: str, expression: list[str] | None = None
) -> Response:
    """A one-issue OperationOutcome as FHIR JSON; a 401 also says how to authenticate."""
    headers = {"WWW-Authenticate": 'Bearer realm="spis"'} if status == 401 else None
    body = operation_outcome(code, diagnostics, expression=expression)
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


async def refuse_nul_in_url(request: Request) -> None:
    """No id, code or search value holds a NUL, and PostgreSQL text cannot: refuse it (400) in
    the path or the query before it reaches a query as a 500. Async: a router-wide dependency
    that is a plain `def` costs every request a threadpool hop."""
    if NUL in request.scope["path"] or _query_holds_nul(request):
        raise NulCharacter(NUL_MESSAGE)


def _query_holds_nul(request: Request) -> bool:
    """A decoded query name or value holds a NUL only where the raw query has `%00` or the byte
    itself: without either (nearly every request) the query is not parsed here."""
    raw: bytes = request.scope["query_string"]
    if b"%00" not in raw and b"\x00" not in raw:
        return False
    return any(NUL in name or NUL in value for name, value in request.query_params.multi_items())
