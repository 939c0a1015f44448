"""Every bad input: a clear 4xx OperationOutcome, nothing stored, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.fhir import entry_of, referral_bundle
from tests.fixtures.systems import TestSystem, bearer


def assert_nothing_stored(client: TestClient, headers: dict[str, str]) -> None:
    for rtype in ("Patient", "Consent", "ServiceRequest", "Task"):
        assert client.get(f"/fhir/{rtype}", headers=headers).json()["entry"] == [], rtype


def outcome(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    return body["issue"][0]


def post_raw(
    client: TestClient,
    headers: dict[str, str],
    content: bytes,
    content_type: str = "application/fhir+json",
) -> Any:
    return client.post("/fhir", content=content, headers={**headers, "Content-Type": content_type})


def test_malformed_json(client: TestClient, practice_headers: dict[str, str]) -> None:
    outcome(post_raw(client, practice_headers, b'{"resourceType": "Bundle",'), 400, "structure")
    assert_nothing_stored(client, practice_headers)


def test_wrong_media_types(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    body = json.dumps(referral_bundle(practice.org_id)).encode()
    outcome(post_raw(client, practice_headers, body, "application/xml"), 415, "not-supported")
    outcome(post_raw(client, practice_headers, body, "text/plain"), 415, "not-supported")
    response = client.get(
        "/fhir/Task", headers={**practice_headers, "Accept": "application/fhir+xml"}
    )
    outcome(response, 406, "not-supported")
    assert_nothing_stored(client, practice_headers)
    # plain JSON is accepted both ways
    assert post_raw(client, practice_headers, body, "application/json").status_code == 200


def test_oversized_body(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    bundle = referral_bundle(practice.org_id)
    entry_of(bundle, "ServiceRequest")["resource"]["note"] = [{"text": "x" * 2_000_000}]
    outcome(post_raw(client, practice_headers, json.dumps(bundle).encode()), 413, "too-costly")
    assert_nothing_stored(client, practice_headers)


def test_deeply_nested_json(client: TestClient, practice_headers: dict[str, str]) -> None:
    bomb = b'{"resourceType":"Bundle","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = post_raw(client, practice_headers, bomb)
    assert response.status_code == 400
    assert "nested" in response.json()["issue"][0]["diagnostics"]


def test_unknown_element_is_named_without_echoing_data(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    bundle = referral_bundle(practice.org_id)
    entry_of(bundle, "Patient")["resource"]["favouriteColour"] = "Grace's secret"
    issue = outcome(
        post_raw(client, practice_headers, json.dumps(bundle).encode()), 400, "structure"
    )
    assert "favouriteColour" in json.dumps(issue)
    assert "secret" not in json.dumps(issue)
    assert_nothing_stored(client, practice_headers)


@pytest.mark.parametrize(
    ("rtype", "change", "status", "code"),
    [
        (
            "Patient",
            {
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}
                ]
            },
            422,
            "value",
        ),
        ("ServiceRequest", {"intent": "plan"}, 422, "code-invalid"),
        ("ServiceRequest", {"status": "bogus"}, 422, "code-invalid"),
        (
            "ServiceRequest",
            {"code": {"coding": [{"system": "http://snomed.info/sct", "code": "73211009"}]}},
            422,
            "code-invalid",
        ),
        ("Consent", {"status": "inactive"}, 422, "business-rule"),
        ("Consent", {"provision": {"type": "deny"}}, 422, "business-rule"),
    ],
)
def test_rule_violations_store_nothing(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    rtype: str,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    bundle = referral_bundle(practice.org_id)
    entry_of(bundle, rtype)["resource"].update(change)
    outcome(post_raw(client, practice_headers, json.dumps(bundle).encode()), status, code)
    assert_nothing_stored(client, practice_headers)


def test_dangling_urn_reference(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    bundle = referral_bundle(practice.org_id)
    entry_of(bundle, "ServiceRequest")["resource"]["subject"] = {
        "reference": "urn:uuid:00000000-0000-4000-8000-000000000000"
    }
    response = post_raw(client, practice_headers, json.dumps(bundle).encode())
    assert response.status_code == 422
    assert "urn:uuid" in response.json()["issue"][0]["diagnostics"]
    assert_nothing_stored(client, practice_headers)


def test_unsupported_types_and_methods(
    client: TestClient, practice_headers: dict[str, str]
) -> None:
    outcome(client.get("/fhir/Medication", headers=practice_headers), 404, "not-supported")
    outcome(client.get("/fhir/Task/does-not-exist", headers=practice_headers), 404, "not-found")
    outcome(client.delete("/fhir/Task/x", headers=practice_headers), 405, "not-supported")
    bundle = {"resourceType": "Bundle", "type": "collection"}
    outcome(post_raw(client, practice_headers, json.dumps(bundle).encode()), 400, "invalid")
    delete = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Task/x"}}],
    }
    outcome(post_raw(client, practice_headers, json.dumps(delete).encode()), 400, "not-supported")


def test_authentication_and_scopes(
    client: TestClient, practice: TestSystem, timebank_headers: dict[str, str]
) -> None:
    body = json.dumps(referral_bundle(practice.org_id)).encode()
    response = post_raw(client, {}, body)
    outcome(response, 401, "login")
    assert response.headers["www-authenticate"].startswith("Bearer")
    outcome(post_raw(client, {"Authorization": "Bearer not-a-token"}, body), 401, "login")
    # a time bank may not create referrals
    outcome(post_raw(client, timebank_headers, body), 403, "forbidden")


def test_a_health_board_gets_no_record_about_a_person(
    client: TestClient,
    healthboard: TestSystem,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    post_raw(client, practice_headers, json.dumps(referral_bundle(practice.org_id)).encode())
    board = bearer(client, healthboard)
    for rtype in (
        "Patient",
        "ServiceRequest",
        "Task",
        "Consent",
        "Observation",
        "Procedure",
        "QuestionnaireResponse",
    ):
        outcome(client.get(f"/fhir/{rtype}", headers=board), 403, "forbidden")
    outcome(client.get("/fhir/AuditEvent?patient=x", headers=board), 403, "forbidden")
    assert (
        client.get("/fhir/Organization", headers=board).status_code == 200
    )  # the directory is public


@pytest.mark.parametrize(
    "path", ["/fhir/Task", "/fhir/Task/x1", "/fhir/Task/x1/_history", "/fhir/Task/x1/_history/1"]
)
def test_the_plain_read_routes_check_as_every_fhir_route(
    client: TestClient, practice_headers: dict[str, str], path: str
) -> None:
    """read, vread, history and search by GET are plain routes (fhir/endpoints.py): the Accept
    check, then the NUL check, then the token, as the router's dependencies order them."""
    with_nul = path.replace("Task", "Task%00")
    html_and_no_token = {"Accept": "text/html"}
    outcome(client.get(path, headers=html_and_no_token), 406, "not-supported")
    outcome(client.get(with_nul, headers=html_and_no_token), 406, "not-supported")
    nul = client.get(with_nul)
    assert nul.status_code == 400, nul.text
    assert nul.json()["resourceType"] == "OperationOutcome"
    unauthenticated = client.get(path)
    outcome(unauthenticated, 401, "login")
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert client.head(path, headers=practice_headers).status_code in (404, 405)  # never a read
    assert client.get(path, headers=practice_headers).status_code in (200, 404)
