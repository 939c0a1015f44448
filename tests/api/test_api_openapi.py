"""The published OpenAPI tells the truth (issue 7 #31): what the CapabilityStatement declares is
documented path by path and parameter by parameter, and nothing else; security, the token form,
the ledger's limits and the statuses and content types real answers have."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_adapters.codes import OFFER_CATEGORIES
from referral_service.kit.numbers import MAX_SQL_INT
from referral_service.ledger.models import MAX_EXCHANGE_MINUTES
from referral_service.ledger.rules import MAX_ALIAS, MAX_DESCRIPTION
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import HttpResponse, TestSystem

# (method, path template) for each CapabilityStatement interaction of a type T.
INTERACTION_PATHS = {
    "read": ("get", "/fhir/{T}/{id}"),
    "vread": ("get", "/fhir/{T}/{id}/_history/{vid}"),
    "history-instance": ("get", "/fhir/{T}/{id}/_history"),
    "search-type": ("get", "/fhir/{T}"),
    "create": ("post", "/fhir/{T}"),
    "update": ("put", "/fhir/{T}/{id}"),
    "patch": ("patch", "/fhir/{T}/{id}"),
    "delete": ("delete", "/fhir/{T}/{id}"),
}
# (method, path template) for each CapabilityStatement operation, by name.
OPERATION_PATHS = {
    "evaluate-measure": {
        ("get", "/fhir/{T}/{id}/$evaluate-measure"),
        ("post", "/fhir/{T}/{id}/$evaluate-measure"),
    },
    "status": {("get", "/fhir/{T}/{id}/$status"), ("get", "/fhir/{T}/$status")},
}
RESULT_PARAMS = {"_count", "_offset", "_sort", "_include", "_total", "_until", "_format"}


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def statement(client: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/fhir/metadata").json()
    return body


def _fhir_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in spec["paths"].items()
        if path.startswith("/fhir/") and path != "/fhir/metadata"
        for method in item
    }


def test_every_capability_interaction_is_a_path_and_every_fhir_path_is_one(
    spec: dict[str, Any], statement: dict[str, Any]
) -> None:
    declared: set[tuple[str, str]] = set()
    for resource in statement["rest"][0]["resource"]:
        for interaction in resource["interaction"]:
            method, template = INTERACTION_PATHS[interaction["code"]]
            declared.add((method, template.replace("{T}", resource["type"])))
        for operation in resource.get("operation", []):
            templates = OPERATION_PATHS[operation["name"]]
            declared |= {(m, t.replace("{T}", resource["type"])) for m, t in templates}
    documented = _fhir_operations(spec)
    post_searches = {(m, p) for m, p in documented if p.endswith("/_search")}
    assert documented - post_searches == declared
    # POST _search is search-type too, for every type whose search the store answers.
    for _, path in post_searches:
        assert ("get", path.removesuffix("/_search")) in declared
    assert {"post"} == set(spec["paths"]["/fhir"])  # transaction and batch
    assert {"get"} == set(spec["paths"]["/fhir/metadata"])
    assert not any("{rtype}" in path or "{rid}" in path for path in spec["paths"])


def test_every_search_parameter_is_documented_and_nothing_more(
    spec: dict[str, Any], statement: dict[str, Any]
) -> None:
    for resource in statement["rest"][0]["resource"]:
        if not any(i["code"] == "search-type" for i in resource["interaction"]):
            continue
        operation = spec["paths"][f"/fhir/{resource['type']}"]["get"]
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        declared = {p["name"] for p in resource.get("searchParam", [])}
        assert query - RESULT_PARAMS == declared, resource["type"]
        include = next((p for p in operation["parameters"] if p["name"] == "_include"), None)
        if include is not None:
            assert include["schema"]["enum"] == resource["searchInclude"]


def test_no_fastapi_422_and_errors_are_operation_outcomes(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                content = response.get("content", {})
                if path == "/auth/token" and status in ("400", "401"):
                    assert set(content) == {"application/json"}, (path, status)
                    continue
                if path == "/readyz" and status == "503":  # what a load balancer reads
                    assert content["application/json"]["schema"]["$ref"].endswith("ReadinessReport")
                    continue
                assert set(content) == {"application/fhir+json"}, (path, method, status)
                ref = content["application/fhir+json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in {"OperationOutcome", "ErrorOutcome"}


def test_fhir_answers_are_declared_as_fhir_json(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        if not path.startswith("/fhir"):
            continue
        for operation in item.values():
            for status, response in operation["responses"].items():
                if "content" not in response:
                    continue
                if path.endswith("/$evaluate-measure") and status == "200":  # also as CSV
                    assert set(response["content"]) == {"application/fhir+json", "text/csv"}
                    continue
                assert set(response["content"]) == {"application/fhir+json"}, (path, status)


def test_security_is_declared_and_matches_what_needs_a_token(
    spec: dict[str, Any], client: TestClient
) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /auth/token",
    }
    flow = schemes["smartBackendServices"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "http://testserver/auth/token"
    assert "system/Task.r" in flow["scopes"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            secured = operation["security"] != []
            if path != "/auth/token":  # its 401 is OAuth's invalid_client, not a missing token
                assert ("401" in operation["responses"]) == secured, (path, method)
            if method != "get" or "{" in path:
                continue
            answer = client.get(path)  # no token
            assert (answer.status_code == 401) == secured, (path, answer.status_code)
    read_task = spec["paths"]["/fhir/Task/{id}"]["get"]["security"]
    assert read_task == [{"bearer": []}, {"smartBackendServices": ["system/Task.r"]}]


def test_the_token_endpoint_declares_its_form(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/auth/token"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == [
        "grant_type",
        "client_assertion_type",
        "client_assertion",
        "scope",
    ]
    assert form["properties"]["grant_type"]["enum"] == ["client_credentials"]
    token = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(token["required"]) == {"access_token", "token_type", "expires_in", "scope"}


def test_the_ledger_declares_its_limits_and_its_400(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for model in ("MemberIn", "EnrolmentIn"):
        alias = schemas[model]["properties"]["alias"]
        assert (alias["minLength"], alias["maxLength"]) == (1, MAX_ALIAS)
    listing = schemas["ListingIn"]["properties"]
    assert listing["description"]["maxLength"] == MAX_DESCRIPTION
    assert listing["category"]["enum"] == sorted(OFFER_CATEGORIES)
    minutes = schemas["ExchangeIn"]["properties"]["minutes"]
    assert (minutes["minimum"], minutes["maximum"]) == (1, MAX_EXCHANGE_MINUTES)
    listed = spec["paths"]["/api/timebanks/{timebank_id}/exchanges"]["get"]
    offset = next(p for p in listed["parameters"] if p["name"] == "offset")
    assert offset["schema"]["maximum"] == MAX_SQL_INT
    for path, item in spec["paths"].items():
        if path.startswith("/api/"):
            for operation in item.values():
                assert {"400", "401", "403", "404", "503"} <= set(operation["responses"]), path


def _declared(spec: dict[str, Any], method: str, path: str, status: int) -> set[str]:
    response = spec["paths"][path][method]["responses"][str(status)]
    return set(response.get("content", {}))


def _media_type(response: HttpResponse) -> str:
    return response.headers["content-type"].split(";")[0]


def test_real_answers_have_the_declared_status_and_content_type(
    spec: dict[str, Any],
    client: TestClient,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    task = f"/fhir/Task/{referral.task_id}"
    ledger = f"/api/timebanks/{timebank.org_id}"
    calls = [
        ("get", "/fhir/metadata", "/fhir/metadata", None, None),
        ("get", "/fhir/Task/{id}", task, practice_headers, None),
        ("get", "/fhir/Task/{id}", "/fhir/Task/nothing-here", practice_headers, None),
        ("get", "/fhir/Task/{id}/_history/{vid}", f"{task}/_history/1", practice_headers, None),
        ("get", "/fhir/Task", "/fhir/Task?_count=x", practice_headers, None),
        ("get", "/fhir/Task", "/fhir/Task", None, None),
        ("get", "/fhir/Questionnaire", "/fhir/Questionnaire", None, None),
        ("post", "/fhir/Task", "/fhir/Task", practice_headers, {"resourceType": "Patient"}),
        ("get", "/api/timebanks/{timebank_id}/members", f"{ledger}/members", timebank_headers, None),
        ("get", "/api/timebanks/{timebank_id}/exchanges", f"{ledger}/exchanges?limit=0",
         timebank_headers, None),
        ("post", "/api/timebanks/{timebank_id}/members", f"{ledger}/members", timebank_headers,
         {"alias": " "}),
        ("post", "/auth/token", "/auth/token", None, None),
    ]  # fmt: skip
    for method, template, url, headers, body in calls:
        response = client.request(method, url, headers=headers, json=body)
        declared = _declared(spec, method, template, response.status_code)
        assert _media_type(response) in declared, (url, response.status_code, declared)


def test_every_documented_operation_id_is_unique(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", i) for i in ids)
