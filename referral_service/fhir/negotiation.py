"""Content negotiation and request-body limits for /fhir: media types, size, JSON depth."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Request

from fhir_adapters.codes import FHIR_JSON
from fhir_adapters.parse import load_json, load_json_patch
from referral_service.config import Settings
from referral_service.errors import ServiceError
from referral_service.kit.http import NUL, NUL_MESSAGE, NulCharacter

ACCEPTED_BODY_TYPES = frozenset({FHIR_JSON, "application/json"})
ACCEPTED_RESPONSE_TYPES = frozenset({FHIR_JSON, "application/json", "application/*", "*/*"})
JSON_PATCH = "application/json-patch+json"
JSON_FORMATS = frozenset({"json", FHIR_JSON, "application/json"})
# The outcome reports (fhir/measures.py) also answer CSV; no other route does.
CSV = "text/csv"
CSV_FORMATS = frozenset({"csv", CSV})


class UnsupportedMediaType(ServiceError):
    status = 415
    issue_code = "not-supported"


class NotAcceptable(ServiceError):
    status = 406
    issue_code = "not-supported"


class TooLarge(ServiceError):
    status = 413
    issue_code = "too-costly"


async def check_accept(request: Request) -> None:
    """The dependency: async, since a plain `def` dependency costs a threadpool hop."""
    require_json_answer(request)


def require_json_answer(request: Request) -> None:
    """We answer JSON only; `_format` overrides `Accept` as FHIR allows."""
    # Parsing the query costs a tenth of this check: most requests have none.
    fmt = request.query_params.get("_format") if request.scope["query_string"] else None
    if fmt is not None:
        if fmt not in JSON_FORMATS:
            raise NotAcceptable("Only JSON is supported (_format=json)")
        return
    if not request.headers.get("accept"):
        return
    if not _accepted(request) & ACCEPTED_RESPONSE_TYPES:
        raise NotAcceptable("Only application/fhir+json responses are supported")


def wants_csv(request: Request) -> bool:
    """For a route that answers CSV too: `_format=csv` (or `text/csv`), or an `Accept` that names
    text/csv and no JSON type. Anything else must pass `check_accept` and gets JSON."""
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt.lower() in CSV_FORMATS:
        return True
    types = _accepted(request)
    if fmt is None and CSV in types and not types & {FHIR_JSON, "application/json"}:
        return True
    require_json_answer(request)
    return False


def _accepted(request: Request) -> frozenset[str]:
    return _media_types(request.headers.get("accept") or "")


@functools.lru_cache(maxsize=256)
def _media_types(accept: str) -> frozenset[str]:
    """An `Accept` header's media types. A client sends the same few headers every time."""
    return frozenset(part.split(";")[0].strip().lower() for part in accept.split(","))


async def read_json_body(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    if _content_type(request) not in ACCEPTED_BODY_TYPES:
        raise UnsupportedMediaType("Send FHIR JSON with Content-Type: application/fhir+json")
    body = await _limited_body(request, settings)
    data = load_json(body, max_depth=settings.max_json_depth)
    # JSON has no raw control character inside a string (the parser refuses one), so a NUL
    # reaches a parsed key or value only as the escape \u0000: a body without it needs no walk
    # (1.5 ms for a batch of 100 questionnaires). With it, the walk decides (`\\u0000` is text).
    if _NUL_ESCAPE in body and _holds_nul(data):
        raise NulCharacter(NUL_MESSAGE)
    return data


_NUL_ESCAPE = b"\\u0000"


def _holds_nul(data: object) -> bool:
    """Any string (or object key) with a NUL; iterative, the depth is already bounded."""
    pending = [data]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if NUL in node:
                return True
        elif isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


async def read_json_patch(request: Request) -> list[dict[str, Any]]:
    settings: Settings = request.app.state.settings
    if _content_type(request) != JSON_PATCH:
        raise UnsupportedMediaType(f"Send a JSON Patch with Content-Type: {JSON_PATCH}")
    return load_json_patch(
        await _limited_body(request, settings), max_depth=settings.max_json_depth
    )


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _limited_body(request: Request, settings: Settings) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise TooLarge(f"The request body is larger than {settings.max_body_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_body_bytes:
            raise TooLarge(f"The request body is larger than {settings.max_body_bytes} bytes")
    if not body:
        raise ServiceError("The request needs a body", issue_code="required")
    return bytes(body)
