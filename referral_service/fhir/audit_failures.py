"""Auditing refused and failed /fhir and ledger requests, for the error handlers in errors.py.

An edge concern (it reads the caller from the request), so it lives with the handlers; the
audit package below only records the event.

By the time an error handler runs, the request's transaction has rolled back (and with it any
successful event it recorded), so the refusal is written in a short transaction of its own.
"""

from __future__ import annotations

import logging

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from referral_service.audit import service
from referral_service.audit.models import Action, Kind, Outcome
from referral_service.auth.dependencies import principal_of
from referral_service.errors import ServiceError

log = logging.getLogger("spis.audit")


def request_kind(method: str, path: str) -> tuple[Kind, Action, list[str]] | None:
    """What a /fhir or ledger request was trying to do, from its method and path; None when it
    touched no patient data (metadata, the public Questionnaires) or is under neither."""
    if path.startswith("/api/timebanks/"):
        return (
            (Kind.CREATE, Action.CREATE, []) if method == "POST" else (Kind.READ, Action.READ, [])
        )
    if path != "/fhir" and not path.startswith("/fhir/"):
        return None
    parts = [p for p in path.removeprefix("/fhir").split("/") if p]
    if not parts:
        return (Kind.TRANSACTION, Action.EXECUTE, []) if method == "POST" else None
    rtype, rest = parts[0], parts[1:]
    if rtype in ("metadata", "Questionnaire"):
        return None
    if rest in ([], ["_search"]):
        if method == "POST" and not rest:
            return Kind.CREATE, Action.CREATE, []
        return Kind.SEARCH, Action.EXECUTE, []
    if len(rest) == 1:
        kind, action = _INSTANCE_KINDS.get(method, (Kind.READ, Action.READ))
    else:
        kind, action = (Kind.HISTORY if len(rest) == 2 else Kind.VREAD), Action.READ
    return kind, action, [f"{rtype}/{rest[0]}"]


_INSTANCE_KINDS = {
    "PUT": (Kind.UPDATE, Action.UPDATE),
    "PATCH": (Kind.PATCH, Action.UPDATE),
    "DELETE": (Kind.DELETE, Action.DELETE),
}


def record_request_failure(request: Request, status: int, issue_code: str) -> None:
    """Audit a refused (4xx) or failed (5xx) /fhir request in a transaction of its own, after the
    request's own transaction rolled back. Only callers with a valid token are audited: auditing
    anonymous requests would let anyone make SPIS write (and fill the audit trail)."""
    what = request_kind(request.method, request.url.path)
    if what is None or status == 401:
        return
    try:
        principal = principal_of(request)
    except ServiceError:
        return
    kind, action, entities = what
    try:
        service.record_outcome_failure(
            request.app.state.sessionmaker,
            principal,
            kind=kind,
            action=action,
            entities=entities,
            outcome=Outcome.MINOR_FAILURE if status < 500 else Outcome.SERIOUS_FAILURE,
            detail=f"{status} {issue_code}",
        )
    except SQLAlchemyError as exc:
        # The answer to the client stays the one it earned; the lost event is logged.
        log.error("audit event lost", extra={"error_type": type(exc).__name__, "status": status})


async def audit_request_failure(request: Request, status: int, issue_code: str) -> None:
    """`record_request_failure` for the async exception handlers (the write runs in a thread)."""
    await run_in_threadpool(record_request_failure, request, status, issue_code)
