"""The parts of the /fhir OpenAPI document that its operations share: what each error status
means, the search, paging, path and header parameters, request and response bodies, and the
component schemas. `openapi.py` assembles them into one path per interaction the
CapabilityStatement declares.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters.codes import FHIR_JSON
from referral_service.fhir.negotiation import JSON_FORMATS
from referral_service.kit.numbers import MAX_SQL_INT
from referral_service.referrals.service import STORED_TYPES
from referral_service.store.query import SORTS

Json = dict[str, Any]

OUTCOME_REF = "#/components/schemas/OperationOutcome"
FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"

# What each error status means, once; operations list the ones they can answer.
ERRORS = {
    400: "Malformed request: a NUL character in the URL or the body, a bad search parameter or "
    "paging value, a body that is not the resource the URL names, or an id that differs from "
    "the URL",
    401: "No valid bearer access token",
    403: "The token's scopes do not allow this interaction on this type",
    404: "Not found, or not visible to the caller",
    406: "Only JSON answers are available (`Accept`, `_format`)",
    409: "A business rule was broken (e.g. a Task status change that is not allowed)",
    412: "`If-Match` names a version that is not current, or a conditional create matched "
    "several resources",
    413: "The body is larger than SPIS_MAX_BODY_BYTES",
    415: "Send JSON with `Content-Type: application/fhir+json`",
    422: "The resource breaks a validation or business rule; the issue names the element",
    503: "The database is unavailable; nothing was changed (retry after `Retry-After`)",
}

# Result parameters, by who answers the search (store search, audit trail, fixed directories).
_STORE_RESULT = ("_count", "_offset", "_sort", "_include", "_total")
RESULT_PARAMS: dict[str, tuple[str, ...]] = {
    **{rtype: _STORE_RESULT for rtype in STORED_TYPES},
    "AuditEvent": ("_count", "_offset", "_until"),
}
REQUIRED_SEARCH_PARAMS = {"AuditEvent": frozenset({"patient"})}

# --- parameters -----------------------------------------------------------------------------------


def string_param(where: str, name: str, description: str, required: bool) -> Json:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


def query_param(name: str, description: str, required: bool) -> Json:
    return string_param("query", name, description, required)


def search_params(resource: Json) -> list[Json]:
    rtype = resource["type"]
    required = REQUIRED_SEARCH_PARAMS.get(rtype, frozenset())
    params = [
        {
            "name": p["name"],
            "in": "query",
            "required": p["name"] in required,
            "description": f"FHIR search parameter of type {p['type']}; comma-separated "
            "values are alternatives",
            "schema": {"type": "string"},
        }
        for p in resource.get("searchParam", [])
    ]
    names = [
        n for n in RESULT_PARAMS.get(rtype, ()) if n != "_include" or resource.get("searchInclude")
    ]
    return params + [_result_param(name, resource) for name in names]


def _result_param(name: str, resource: Json) -> Json:
    schemas: dict[str, tuple[Json, str]] = {
        "_count": (PAGE_INT, "Page size (0: only the total)"),
        "_offset": (PAGE_INT, "How many matches to skip; follow the `next` link instead"),
        "_sort": ({"type": "string", "enum": sorted(SORTS)}, "Default: newest first"),
        "_include": (
            {"type": "string", "enum": resource.get("searchInclude", [])},
            "Add the resources this reference parameter points to",
        ),
        "_total": ({"type": "string"}, "Accepted and ignored: `total` is given when it is free"),
        "_until": (
            {"type": "string"},
            "Set by the `next` link: the newest event of the first page",
        ),
    }
    schema, description = schemas[name]
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def form_body(params: list[Json]) -> Json:
    properties = {p["name"]: p["schema"] for p in params}
    return {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": properties}
            }
        },
    }


def header(name: str, description: str) -> Json:
    return string_param("header", name, description, required=False)


PAGE_INT = {"type": "integer", "minimum": 0, "maximum": MAX_SQL_INT}
ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The logical id",
    "schema": {"type": "string", "pattern": FHIR_ID},
}
VID_PARAM = {
    "name": "vid",
    "in": "path",
    "required": True,
    "description": "The version id (`meta.versionId`)",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SQL_INT},
}
FORMAT_PARAM = {
    "name": "_format",
    "in": "query",
    "required": False,
    "description": "Overrides `Accept`; only JSON is available",
    "schema": {"type": "string", "enum": sorted(JSON_FORMATS)},
}
IF_MATCH = header("If-Match", 'The version you read, e.g. `W/"2"`: refused (412) if stale')

# --- bodies and responses -------------------------------------------------------------------------


def security(rtype: str, letter: str) -> list[Json]:
    return [{"bearer": []}, {"smartBackendServices": [f"system/{rtype}.{letter}"]}]


def fhir_ok(rtype: str, description: str, headers: Json | None = None) -> Json:
    response: Json = {
        "description": description,
        "content": {FHIR_JSON: {"schema": {"$ref": f"#/components/schemas/{rtype}"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def fhir_body(rtype: str, note: str = "") -> Json:
    schema = {"$ref": f"#/components/schemas/{rtype}"}
    return {
        "required": True,
        "description": f"A FHIR R4 {rtype} as JSON. {note}".strip(),
        "content": {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema}},
    }


def error_responses(statuses: tuple[int, ...]) -> Json:
    return {
        str(status): {
            "description": ERRORS[status],
            "content": {FHIR_JSON: {"schema": {"$ref": OUTCOME_REF}}},
        }
        for status in sorted(set(statuses))
    }


def resource_schema(rtype: str) -> Json:
    """The envelope only: FHIR's own definitions say the rest (fhir.resources checks it)."""
    return {
        "type": "object",
        "description": f"A FHIR R4 {rtype}: https://hl7.org/fhir/R4/{rtype.lower()}.html",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"type": "string", "const": rtype},
            "id": {"type": "string", "pattern": FHIR_ID},
        },
    }


VERSION_HEADERS = {
    "ETag": {"description": 'The version, `W/"n"`', "schema": {"type": "string"}},
    "Last-Modified": {"description": "`meta.lastUpdated` as an HTTP date", "schema": {"type": "string"}},
}  # fmt: skip
CREATED_HEADERS = {
    **VERSION_HEADERS,
    "Location": {"description": "`{base}/{type}/{id}/_history/{n}`", "schema": {"type": "string"}},
}
OPERATION_OUTCOME = {
    "type": "object",
    "description": "Every /fhir error (and every JSON API error) is a FHIR OperationOutcome",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string", "description": "FHIR issue type, e.g. invalid"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}  # fmt: skip
JSON_PATCH_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string"},
            "from": {"type": "string"},
            "value": {},
        },
    },
}
