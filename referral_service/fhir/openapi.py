"""The /fhir part of the OpenAPI document, generated from the CapabilityStatement.

One path per resource type and interaction, one query parameter per search parameter: all read
from `capability_statement()`, which is itself built from the tables the code uses, so the two
documents cannot drift. What FHIR leaves to prose is declared beside it: which statuses an
interaction answers here, next to the table of interactions; what each status means, paging,
`_include`, headers and the schemas in `openapi_parts.py`.
"""

from __future__ import annotations

from referral_service.fhir.negotiation import CSV, CSV_FORMATS, JSON_FORMATS, JSON_PATCH
from referral_service.fhir.openapi_parts import (
    CREATED_HEADERS,
    FORMAT_PARAM,
    ID_PARAM,
    IF_MATCH,
    JSON_PATCH_SCHEMA,
    OPERATION_OUTCOME,
    VERSION_HEADERS,
    VID_PARAM,
    Json,
    error_responses,
    fhir_body,
    fhir_ok,
    form_body,
    header,
    query_param,
    resource_schema,
    search_params,
    security,
)
from referral_service.referrals.service import STORED_TYPES

# Answered without a token: public definitions, no patient data.
PUBLIC_TYPES = frozenset({"Questionnaire", "Basic"})
# Versioned outside the store too: reads and updates answer ETag and Last-Modified.
VERSIONED_TYPES = STORED_TYPES | {"Subscription"}

READ_ERRORS = (400, 404, 406, 503)
SEARCH_ERRORS = (400, 406, 503)
WRITE_ERRORS = (400, 406, 409, 412, 413, 415, 422, 503)


def fhir_openapi(statement: Json) -> tuple[Json, Json]:
    """(paths, component schemas) for every interaction the CapabilityStatement declares."""
    rest = statement["rest"][0]
    paths: Json = {"/fhir/metadata": {"get": _metadata()}}
    if rest.get("interaction"):
        paths["/fhir"] = {"post": _transaction([i["code"] for i in rest["interaction"]])}
    schemas: Json = {"OperationOutcome": OPERATION_OUTCOME}
    schemas |= {t: resource_schema(t) for t in ("Bundle", "CapabilityStatement")}
    for resource in rest["resource"]:
        rtype = resource["type"]
        schemas[rtype] = resource_schema(rtype)
        for interaction in resource["interaction"]:
            for path, method, operation in _operations(resource, interaction["code"]):
                paths.setdefault(path, {})[method] = operation
        for declared in resource.get("operation", []):
            paths |= OPERATIONS[declared["name"]]()
            schemas |= {t: resource_schema(t) for t in ("MeasureReport", "Parameters")}
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
        "delete": [(instance, "delete", _delete(rtype))],
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
    responses = {**ok, **error_responses(errors if public else (401, 403, *errors))}
    operation: Json = {
        "tags": [f"FHIR {rtype}"],
        "summary": summary,
        "operationId": f"{operation_id}_{rtype}",
        "parameters": [*(parameters or []), FORMAT_PARAM],
        "responses": dict(sorted(responses.items())),
        "security": [] if public else security(rtype, letter),
    }
    return operation


def _read(rtype: str) -> Json:
    ok = {"200": fhir_ok(rtype, f"The {rtype}")}
    params = [ID_PARAM]
    if rtype in VERSIONED_TYPES:
        ok["200"]["headers"] = VERSION_HEADERS
    if rtype in STORED_TYPES:  # the store's read answers If-None-Match
        ok["304"] = {"description": "`If-None-Match` names the current version"}
        params.append(header("If-None-Match", 'The version you have, e.g. `W/"2"`'))
    return _operation(rtype, "r", "read", f"Read a {rtype}", ok, READ_ERRORS, params)


def _vread(rtype: str) -> Json:
    ok = {"200": fhir_ok(rtype, f"That version of the {rtype}", headers=VERSION_HEADERS)}
    params = [ID_PARAM, VID_PARAM]
    return _operation(rtype, "r", "vread", f"Read a version of a {rtype}", ok, READ_ERRORS, params)


def _history(rtype: str) -> Json:
    ok = {"200": fhir_ok("Bundle", "A history Bundle, newest version first")}
    return _operation(rtype, "r", "history", f"History of a {rtype}", ok, READ_ERRORS, [ID_PARAM])


def _searches(resource: Json) -> list[tuple[str, str, Json]]:
    rtype = resource["type"]
    params = search_params(resource)
    ok = {"200": fhir_ok("Bundle", "A searchset Bundle with paging links")}
    get = _operation(rtype, "s", "search", f"Search {rtype}", ok, SEARCH_ERRORS, params)
    found = [(f"/fhir/{rtype}", "get", get)]
    if rtype in STORED_TYPES:  # POST _search is answered by the store search only
        errors = (*SEARCH_ERRORS, 415)
        post = _operation(rtype, "s", "search_post", f"Search {rtype} (POST)", ok, errors)
        post["requestBody"] = form_body(params)
        found.append((f"/fhir/{rtype}/_search", "post", post))
    return found


def _create(resource: Json) -> Json:
    rtype = resource["type"]
    ok = {"201": fhir_ok(rtype, f"The {rtype} as stored", headers=CREATED_HEADERS)}
    params = []
    if resource.get("conditionalCreate"):
        ok["200"] = fhir_ok(
            rtype, "`If-None-Exist` matched this existing resource: nothing created"
        )
        note = "A search (e.g. `identifier=sys|val`): create only if nothing matches"
        params.append(header("If-None-Exist", note))
    op = _operation(rtype, "c", "create", f"Create a {rtype}", ok, WRITE_ERRORS, params)
    op["requestBody"] = fhir_body(rtype)
    return op


def _update(rtype: str) -> Json:
    ok = {"200": fhir_ok(rtype, f"The {rtype} as stored", headers=VERSION_HEADERS)}
    params = [ID_PARAM, IF_MATCH]
    op = _operation(rtype, "u", "update", f"Update a {rtype}", ok, (404, *WRITE_ERRORS), params)
    op["requestBody"] = fhir_body(rtype, "Its `id` must be the id in the URL")
    return op


def _patch(rtype: str) -> Json:
    ok = {"200": fhir_ok(rtype, f"The {rtype} as stored", headers=VERSION_HEADERS)}
    params = [ID_PARAM, IF_MATCH]
    op = _operation(rtype, "u", "patch", f"Patch a {rtype}", ok, (404, *WRITE_ERRORS), params)
    op["requestBody"] = {
        "required": True,
        "description": "A JSON Patch (RFC 6902); the result must pass the same rules as a PUT",
        "content": {JSON_PATCH: {"schema": JSON_PATCH_SCHEMA}},
    }
    return op


def _delete(rtype: str) -> Json:
    ok = {"204": {"description": f"The {rtype} is deleted"}}
    return _operation(rtype, "d", "delete", f"Delete a {rtype}", ok, READ_ERRORS, [ID_PARAM])


def _transaction(codes: list[str]) -> Json:
    ok = {"200": fhir_ok("Bundle", "A transaction-response or batch-response Bundle")}
    errors = error_responses((401, 403, 404, *WRITE_ERRORS))
    return {
        "tags": ["FHIR"],
        "summary": "Transaction or batch",
        "operationId": "transaction",
        "description": f"A Bundle of type {' or '.join(codes)}. A transaction is all or "
        "nothing; in a batch each entry succeeds or fails on its own.",
        "parameters": [
            header("Prefer", "`return=representation` puts each resource in its entry"),
            FORMAT_PARAM,
        ],
        "requestBody": fhir_body("Bundle"),
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
            "200": fhir_ok("CapabilityStatement", "What this server implements"),
            **error_responses((400, 406)),
        },
        "security": [],
    }


def _evaluate_measure() -> dict[str, Json]:
    """`$evaluate-measure`: GET and POST on a Measure."""
    ok = {"200": fhir_ok("MeasureReport", "A summary MeasureReport, or CSV (`_format=csv`)")}
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

    get = operation("get", [query_param(n, d, n.startswith("period")) for n, d in EVALUATE_PARAMS])
    post = operation("post", [], (413, 415))
    post["requestBody"] = fhir_body("Parameters", "periodStart, periodEnd, subject as parameters")
    return {"/fhir/Measure/{id}/$evaluate-measure": {"get": get, "post": post}}


def _subscription_status() -> dict[str, Json]:
    """The backport's `$status`: GET on one Subscription, or on the type with `id`s."""
    ok = {"200": fhir_ok("Bundle", "A searchset of status Parameters, one per subscription")}
    one = _operation(
        "Subscription", "r", "status", "A subscription's status", ok, READ_ERRORS, [ID_PARAM]
    )
    ids = query_param("id", "Subscription ids, comma-separated; none: all of yours", False)
    many = _operation(
        "Subscription", "r", "status_many", "Subscriptions' status", ok, SEARCH_ERRORS, [ids]
    )
    return {
        "/fhir/Subscription/{id}/$status": {"get": one},
        "/fhir/Subscription/$status": {"get": many},
    }


# Each operation a CapabilityStatement resource declares, by name: its paths.
OPERATIONS = {"evaluate-measure": _evaluate_measure, "status": _subscription_status}


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
