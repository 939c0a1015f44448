"""The published OpenAPI document: FastAPI's for the JSON routes, made true, plus /fhir.

FastAPI documents what it can see: the ledger's pydantic bodies, its query and path parameters.
It cannot see the FHIR routes (generic `{rtype}` paths that read their own bodies), so those are
generated from the CapabilityStatement (`fhir/openapi.py`). It also promises a 422 "validation
error" body that is never sent: request validation errors are answered 400 with an
OperationOutcome (`fhir/errors.py`). And it does not know which routes need a token or a database;
both are read from each route's dependencies here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from fhir_adapters.codes import FHIR_JSON
from referral_service.auth.dependencies import current_principal
from referral_service.auth.openapi import security_schemes
from referral_service.db import get_session
from referral_service.fhir.capability import capability_statement
from referral_service.fhir.openapi import fhir_openapi
from referral_service.ledger.openapi import declare_limits

Json = dict[str, Any]

_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_ERROR = {"$ref": "#/components/schemas/OperationOutcome"}
_INVALID = "The request does not have the documented shape: a parameter or body field is " \
    "missing, of the wrong type or out of range; the issue names it"  # fmt: skip
_UNAVAILABLE = "The database is unavailable; nothing was changed (retry after `Retry-After`)"


DESCRIPTION = (
    "GP practices send FHIR referrals to `/fhir`; time banks use `/fhir` and their ledger under "
    "`/api/timebanks/{id}`. Every call but discovery and the Questionnaire definitions needs a bearer token from `POST /auth/token` "
    "(SMART Backend Services). Every error under `/fhir` and `/api` is a FHIR OperationOutcome "
    "(`application/fhir+json`); the token endpoint answers OAuth errors."
)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> Json:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI) -> Json:
    settings = app.state.settings
    spec = get_openapi(
        title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for route in _json_routes(app):
        _make_true(spec["paths"][route.path_format], route)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    declare_limits(spec)
    statement = capability_statement(settings.fhir_base_url, settings.token_url, app.version)
    fhir_paths, fhir_schemas = fhir_openapi(statement)
    spec["paths"].update(fhir_paths)
    schemas.update(fhir_schemas)
    components["securitySchemes"] = security_schemes(settings.token_url)
    return spec


def _json_routes(app: FastAPI) -> Iterator[Any]:
    """The documented APIRoutes (FastAPI 0.13x+ wraps included routers: unwrap them)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(contexts(app.routes) if contexts else app.routes)
    for route in routes:
        original = getattr(route, "original_route", route)
        # The wrapper's flag is the effective one: a router included with include_in_schema=False
        # (the web pages) leaves its routes' own flags True.
        if not isinstance(original, APIRoute):
            continue
        if original.include_in_schema and getattr(route, "include_in_schema", True):
            yield route


def _make_true(item: Json, route: Any) -> None:
    secured = _depends_on(route.dependant, current_principal)
    with_database = _depends_on(route.dependant, get_session)
    for method in route.methods:
        operation = item[method.lower()]
        responses = operation["responses"]
        _replace_fastapi_422(responses)
        if operation.get("parameters") or operation.get("requestBody"):
            responses.setdefault("400", {"description": _INVALID})
        if with_database:
            responses.setdefault("503", {"description": _UNAVAILABLE})
        _errors_as_outcomes(responses, own_body=route.path_format in OWN_ERROR_BODIES)
        operation["security"] = [{"bearer": []}] if secured else []


def _replace_fastapi_422(responses: Json) -> None:
    schema = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema == {"$ref": _FASTAPI_422}:
        del responses["422"]


# Routes whose error answers are not OperationOutcomes, declared with the route itself: the token
# endpoint's OAuth JSON (RFC 6749 §5.2) and the readiness report a load balancer reads.
OWN_ERROR_BODIES = frozenset({"/auth/token", "/readyz"})


def _errors_as_outcomes(responses: Json, *, own_body: bool) -> None:
    """Errors are OperationOutcomes sent as application/fhir+json, except where the route
    declares its own error body (OWN_ERROR_BODIES)."""
    for status, response in responses.items():
        if not status.isdigit() or int(status) < 400:
            continue
        if own_body and "content" in response:
            continue
        declared = response.get("content", {}).get("application/json", {}).get("schema")
        response["content"] = {FHIR_JSON: {"schema": declared or _ERROR}}


def _depends_on(dependant: Dependant, target: Callable[..., Any]) -> bool:
    return any(dep.call is target or _depends_on(dep, target) for dep in dependant.dependencies)
