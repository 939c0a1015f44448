"""The /fhir part of the OpenAPI document, generated from the CapabilityStatement.

One path per resource type and interaction, one query parameter per search parameter: all read
from `capability_statement()`, which is itself built from the tables the code uses, so the two
documents cannot drift. What FHIR leaves to prose (paging, `_include`, headers, which statuses an
interaction answers) is declared here, next to the table of interactions.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters.codes import FHIR_JSON
from referral_service.fhir.negotiation import CSV, CSV_FORMATS, JSON_FORMATS, JSON_PATCH
from referral_service.kit.numbers import MAX_SQL_INT
from referral_service.referrals.service import STORED_TYPES
from referral_service.store.query import SORTS

Json = dict[str, Any]

OUTCOME_REF = "#/components/schemas/OperationOutcome"
# Answered without a token: public definitions, no patient data.
PUBLIC_TYPES = frozenset({"Questionnaire"})
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
READ_ERRORS = (400, 404, 406, 503)
SEARCH_ERRORS = (400, 406, 503)
WRITE_ERRORS = (400, 406, 409, 412, 413, 415, 422, 503)

# Result parameters, by who answers the search (store search, audit trail, fixed directories).
_STORE_RESULT = ("_count", "_offset", "_sort", "_include", "_total")
RESULT_PARAMS: dict[str, tuple[str, ...]] = {
    **{rtype: _STORE_RESULT for rtype in STORED_TYPES},
    "AuditEvent": ("_count", "_offset", "_until"),
}
REQUIRED_SEARCH_PARAMS = {"AuditEvent": frozenset({"patient"})}


def fhir_openapi(statement: Json) -> tuple[Json, Json]:
    """(paths, component schemas) for every interaction the CapabilityStatement declares."""
    rest = statement["rest"][0]
    paths: Json = {"/fhir/metadata": {"get": _metadata()}}
    if rest.get("interaction"):
        paths["/fhir"] = {"post": _transaction([i["code"] for i in rest["interaction"]])}
    schemas: Json = {"OperationOutcome": OPERATION_OUTCOME}
    schemas |= {t: _resource_schema(t) for t in ("Bundle", "CapabilityStatement")}
    for resource in rest["resource"]:
        rtype = resource["type"]
        schemas[rtype] = _resource_schema(rtype)
        for interaction in resource["interaction"]:
            for path, method, operation in _operations(resource, interaction["code"]):
                paths.setdefault(path, {})[method] = operation
        for declared in resource.get("operation", []):
            paths[f"/fhir/{rtype}/{{id}}/${declared['name']}"] = _evaluate_measure()
            schemas |= {t: _resource_schema(t) for t in ("MeasureReport", "Parameters")}
    return paths, schemas


def _operations(resource: Json, code: str) -> list[tuple[str, str, Json]]:
    rtype = resource["type"]
    base, instance = f"/fhir/{rtype}", f"/fhir/{rtype}/{{id}}"
    ops: dict[str, list[tuple[str, str, Json]]] = {
        "read": [(instance, "get", _read(rtype))],
        "vread": [(f"{instance}/_history/{{vid}}", "get", _vread(rtype))],
        "history-instance": [(f"{instance}/_history", "get", _history(rtype))],
        "search-type": _searches(resource),
        "create": [(base, "post", _create(resource))],
        "update": [(instance, "put", _update(rtype))],
        "patch": [(instance, "patch", _patch(rtype))],
    }
    return ops.get(code, [])


# --- operations -----------------------------------------------------------------------------------


def _operation(
    rtype: str,
    letter: str,
    operation_id: str,
    summary: str,
    ok: Json,
    errors: tuple[int, ...],
    parameters: list[Json] | None = None,
) -> Json:
    public = rtype in PUBLIC_TYPES  # fixed definitions: no token, no database
    if public:
        errors = tuple(e for e in errors if e != 503)
    responses = {**ok, **_errors(errors if public else (401, 403, *errors))}
    operation: Json = {
        "tags": [f"FHIR {rtype}"],
        "summary": summary,
        "operationId": f"{operation_id}_{rtype}",
        "parameters": [*(parameters or []), FORMAT_PARAM],
        "responses": dict(sorted(responses.items())),
        "security": [] if public else _security(rtype, letter),
    }
    return operation


def _read(rtype: str) -> Json:
    ok = {"200": _fhir_ok(rtype, f"The {rtype}")}
    params = [ID_PARAM]
    if rtype in STORED_TYPES:  # versioned: the store's read answers If-None-Match
        ok["200"]["headers"] = VERSION_HEADERS
        ok["304"] = {"description": "`If-None-Match` names the current version"}
        params.append(_header("If-None-Match", 'The version you have, e.g. `W/"2"`'))
    return _operation(rtype, "r", "read", f"Read a {rtype}", ok, READ_ERRORS, params)


def _vread(rtype: str) -> Json:
    ok = {"200": _fhir_ok(rtype, f"That version of the {rtype}", headers=VERSION_HEADERS)}
    params = [ID_PARAM, VID_PARAM]
    return _operation(rtype, "r", "vread", f"Read a version of a {rtype}", ok, READ_ERRORS, params)


def _history(rtype: str) -> Json:
    ok = {"200": _fhir_ok("Bundle", "A history Bundle, newest version first")}
    return _operation(rtype, "r", "history", f"History of a {rtype}", ok, READ_ERRORS, [ID_PARAM])


def _searches(resource: Json) -> list[tuple[str, str, Json]]:
    rtype = resource["type"]
    params = _search_params(resource)
    ok = {"200": _fhir_ok("Bundle", "A searchset Bundle with paging links")}
    get = _operation(rtype, "s", "search", f"Search {rtype}", ok, SEARCH_ERRORS, params)
    found = [(f"/fhir/{rtype}", "get", get)]
    if rtype in STORED_TYPES:  # POST _search is answered by the store search only
        errors = (*SEARCH_ERRORS, 415)
        post = _operation(rtype, "s", "search_post", f"Search {rtype} (POST)", ok, errors)
        post["requestBody"] = _form_body(params)
        found.append((f"/fhir/{rtype}/_search", "post", post))
    return found


def _create(resource: Json) -> Json:
    rtype = resource["type"]
    ok = {
        "201": _fhir_ok(rtype, f"The {rtype} as stored", headers=CREATED_HEADERS),
        "200": _fhir_ok(rtype, "`If-None-Exist` matched this existing resource: nothing created"),
    }
    params = []
    if resource.get("conditionalCreate"):
        note = "A search (e.g. `identifier=sys|val`): create only if nothing matches"
        params.append(_header("If-None-Exist", note))
    op = _operation(rtype, "c", "create", f"Create a {rtype}", ok, WRITE_ERRORS, params)
    op["requestBody"] = _fhir_body(rtype)
    return op


def _update(rtype: str) -> Json:
    ok = {"200": _fhir_ok(rtype, f"The {rtype} as stored", headers=VERSION_HEADERS)}
    params = [ID_PARAM, IF_MATCH]
    op = _operation(rtype, "u", "update", f"Update a {rtype}", ok, (404, *WRITE_ERRORS), params)
    op["requestBody"] = _fhir_body(rtype, "Its `id` must be the id in the URL")
    return op


def _patch(rtype: str) -> Json:
    ok = {"200": _fhir_ok(rtype, f"The {rtype} as stored", headers=VERSION_HEADERS)}
    params = [ID_PARAM, IF_MATCH]
    op = _operation(rtype, "u", "patch", f"Patch a {rtype}", ok, (404, *WRITE_ERRORS), params)
    op["requestBody"] = {
        "required": True,
        "description": "A JSON Patch (RFC 6902); the result must pass the same rules as a PUT",
        "content": {JSON_PATCH: {"schema": JSON_PATCH_SCHEMA}},
    }
    return op


def _transaction(codes: list[str]) -> Json:
    ok = {"200": _fhir_ok("Bundle", "A transaction-response or batch-response Bundle")}
    errors = _errors((401, 403, 404, *WRITE_ERRORS))
    return {
        "tags": ["FHIR"],
        "summary": "Transaction or batch",
        "operationId": "transaction",
        "description": f"A Bundle of type {' or '.join(codes)}. A transaction is all or "
        "nothing; in a batch each entry succeeds or fails on its own.",
        "parameters": [
            _header("Prefer", "`return=representation` puts each resource in its entry"),
            FORMAT_PARAM,
        ],
        "requestBody": _fhir_body("Bundle"),
        "responses": dict(sorted({**ok, **errors}.items())),
        "security": [{"bearer": []}],
    }


def _metadata() -> Json:
    return {
        "tags": ["FHIR"],
        "summary": "The CapabilityStatement",
        "operationId": "metadata",
        "parameters": [FORMAT_PARAM],
        "responses": {
            "200": _fhir_ok("CapabilityStatement", "What this server implements"),
            **_errors((400, 406)),
        },
        "security": [],
    }


def _evaluate_measure() -> Json:
    """`$evaluate-measure` (Measure is the only type with an operation): GET and POST."""
    ok = {"200": _fhir_ok("MeasureReport", "A summary MeasureReport, or CSV (`_format=csv`)")}
    ok["200"]["content"][CSV] = {"schema": {"type": "string"}}
    fmt = {**FORMAT_PARAM, "schema": {"type": "string", "enum": sorted(JSON_FORMATS | CSV_FORMATS)}}
    fmt["description"] = "Overrides `Accept`: JSON, or `csv` for the same report as CSV"
    errors = (400, 404, 406, 422, 503)

    def operation(method: str, params: list[Json], more: tuple[int, ...] = ()) -> Json:
        summary = "Evaluate a Measure for a health board's area and period"
        statuses = (*errors, *more)
        op = _operation(
            "Measure", "r", f"evaluate_{method}", summary, ok, statuses, [ID_PARAM, *params]
        )
        op["parameters"][-1] = fmt
        op["security"] = [{"bearer": []}, {"smartBackendServices": EVALUATE_SCOPES}]
        return op

    get = operation("get", [_query(n, d, n.startswith("period")) for n, d in EVALUATE_PARAMS])
    post = operation("post", [], (413, 415))
    post["requestBody"] = _fhir_body("Parameters", "periodStart, periodEnd, subject as parameters")
    return {"get": get, "post": post}


EVALUATE_SCOPES = ["system/Measure.r", "system/MeasureReport.r"]
EVALUATE_PARAMS = (
    ("periodStart", "First day: YYYY-MM-DD, or YYYY-MM / YYYY from the first day of it"),
    ("periodEnd", "Last day: YYYY-MM-DD, or YYYY-MM / YYYY to the last day of it"),
    (
        "subject",
        "`Organization/<id>`: your board (the default), or one of its practices or time banks",
    ),
    ("reportType", "Only `population` (a summary report)"),
)


def _query(name: str, description: str, required: bool) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


# --- parameters -----------------------------------------------------------------------------------


def _search_params(resource: Json) -> list[Json]:
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


def _form_body(params: list[Json]) -> Json:
    properties = {p["name"]: p["schema"] for p in params}
    return {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": properties}
            }
        },
    }


def _header(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


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
IF_MATCH = _header("If-Match", 'The version you read, e.g. `W/"2"`: refused (412) if stale')

# --- bodies and responses -------------------------------------------------------------------------


def _security(rtype: str, letter: str) -> list[Json]:
    return [{"bearer": []}, {"smartBackendServices": [f"system/{rtype}.{letter}"]}]


def _fhir_ok(rtype: str, description: str, headers: Json | None = None) -> Json:
    response: Json = {
        "description": description,
        "content": {FHIR_JSON: {"schema": {"$ref": f"#/components/schemas/{rtype}"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _fhir_body(rtype: str, note: str = "") -> Json:
    schema = {"$ref": f"#/components/schemas/{rtype}"}
    return {
        "required": True,
        "description": f"A FHIR R4 {rtype} as JSON. {note}".strip(),
        "content": {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema}},
    }


def _errors(statuses: tuple[int, ...]) -> Json:
    return {
        str(status): {
            "description": ERRORS[status],
            "content": {FHIR_JSON: {"schema": {"$ref": OUTCOME_REF}}},
        }
        for status in sorted(set(statuses))
    }


def _resource_schema(rtype: str) -> Json:
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
