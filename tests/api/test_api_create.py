"""Single creates, conditional create and references, client Tasks, batches, metadata."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from tests.fixtures.fhir import FHIR_JSON, entry_of, load, referral_bundle
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import TestSystem

NHS_REF = "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"


def new_sr(practice: TestSystem, referral: Referral, referral_id: str) -> dict[str, Any]:
    sr = load("servicerequest.json", practice.org_id)
    sr["identifier"][0]["value"] = referral_id
    sr["subject"] = {"reference": NHS_REF}
    sr["supportingInfo"] = [{"reference": referral.consent}]
    return sr


def test_service_request_with_conditional_subject(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str], referral: Referral
) -> None:
    sr = new_sr(practice, referral, "REF-0100")
    response = client.post(
        "/fhir/ServiceRequest", json=sr, headers={**practice_headers, **FHIR_JSON}
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["subject"]["reference"] == referral.patient
    assert (
        response.headers["location"]
        == f"http://testserver/fhir/ServiceRequest/{created['id']}/_history/1"
    )
    assert response.headers["etag"] == 'W/"1"'
    tasks = client.get(
        f"/fhir/Task?focus=ServiceRequest/{created['id']}", headers=practice_headers
    ).json()
    assert len(tasks["entry"]) == 1

    again = client.post(
        "/fhir/ServiceRequest",
        json=new_sr(practice, referral, "REF-0100"),
        headers={**practice_headers, **FHIR_JSON},
    )
    assert again.status_code == 200
    assert again.json()["id"] == created["id"]
    assert len(client.get("/fhir/ServiceRequest", headers=practice_headers).json()["entry"]) == 2


def test_if_none_exist_header(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str], referral: Referral
) -> None:
    consent = client.get(f"/fhir/{referral.consent}", headers=practice_headers).json()
    for key in ("id", "meta"):
        consent.pop(key)
    consent["identifier"] = [{"system": "urn:example:consents", "value": "C-1"}]
    headers = {
        **practice_headers,
        **FHIR_JSON,
        "If-None-Exist": "identifier=urn:example:consents|C-1",
    }
    first = client.post("/fhir/Consent", json=consent, headers=headers)
    second = client.post("/fhir/Consent", json=consent, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    bad = client.post(
        "/fhir/Consent", json=consent, headers={**headers, "If-None-Exist": "colour=blue"}
    )
    assert bad.status_code == 400


def test_conditional_reference_without_match(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str], referral: Referral
) -> None:
    sr = new_sr(practice, referral, "REF-0101")
    sr["subject"] = {"reference": "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765870"}
    response = client.post(
        "/fhir/ServiceRequest", json=sr, headers={**practice_headers, **FHIR_JSON}
    )
    assert response.status_code == 422
    assert response.json()["issue"][0]["code"] == "not-found"


def test_client_supplied_task_is_used_and_checked(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    bundle = referral_bundle(practice.org_id)
    task = load("task.json", practice.org_id)
    task["focus"] = {"reference": entry_of(bundle, "ServiceRequest")["fullUrl"]}
    task["for"] = {"reference": entry_of(bundle, "Patient")["fullUrl"]}
    bad = copy.deepcopy(bundle)
    bad["entry"].append(
        {
            "fullUrl": "urn:uuid:4f0a1e6c-5b1d-4c55-9d3e-0c6b2b7b9d01",
            "resource": {**task, "intent": "plan"},
            "request": {"method": "POST", "url": "Task"},
        }
    )
    response = client.post("/fhir", json=bad, headers={**practice_headers, **FHIR_JSON})
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Task.intent"]

    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:4f0a1e6c-5b1d-4c55-9d3e-0c6b2b7b9d01",
            "resource": task,
            "request": {"method": "POST", "url": "Task"},
        }
    )
    response = client.post("/fhir", json=bundle, headers={**practice_headers, **FHIR_JSON})
    assert response.status_code == 200, response.text
    tasks = client.get("/fhir/Task", headers=practice_headers).json()["entry"]
    assert len(tasks) == 1  # SPIS did not add a second Task
    assert tasks[0]["resource"]["priority"] == "routine"
    assert tasks[0]["resource"]["owner"]["reference"] == "Organization/spis"  # SPIS coordinates


def test_a_client_task_owner_is_replaced_before_its_references_are_checked(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    """SPIS coordinates whatever Task.owner was sent, so an owner naming no Organization SPIS
    knows is replaced, not refused: the references checked are those of the Task as stored."""
    bundle = referral_bundle(practice.org_id)
    task = load("task.json", practice.org_id)
    task["focus"] = {"reference": entry_of(bundle, "ServiceRequest")["fullUrl"]}
    task["for"] = {"reference": entry_of(bundle, "Patient")["fullUrl"]}
    task["owner"] = {"reference": "Organization/no-such-organisation"}
    bundle["entry"].append({"resource": task, "request": {"method": "POST", "url": "Task"}})
    response = client.post("/fhir", json=bundle, headers={**practice_headers, **FHIR_JSON})
    assert response.status_code == 200, response.text
    [stored] = [
        e["resource"] for e in client.get("/fhir/Task", headers=practice_headers).json()["entry"]
    ]
    assert stored["owner"]["reference"] == "Organization/spis"


def test_batch_entries_succeed_or_fail_alone(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str], referral: Referral
) -> None:
    good = new_sr(practice, referral, "REF-0200")
    bad = new_sr(practice, referral, "REF-0201")
    bad["intent"] = "proposal"
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": good, "request": {"method": "POST", "url": "ServiceRequest"}},
            {"resource": bad, "request": {"method": "POST", "url": "ServiceRequest"}},
        ],
    }
    response = client.post("/fhir", json=batch, headers={**practice_headers, **FHIR_JSON})
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "batch-response"
    assert body["entry"][0]["response"]["status"] == "201 Created"
    assert body["entry"][1]["response"]["status"] == "422"
    assert body["entry"][1]["response"]["outcome"]["issue"][0]["code"] == "code-invalid"
    assert len(client.get("/fhir/ServiceRequest", headers=practice_headers).json()["entry"]) == 2


def test_capability_statement_is_valid_and_truthful(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {c["code"] for c in resources["ServiceRequest"]["interaction"]} == {
        "read",
        "vread",
        "history-instance",
        "search-type",
        "create",
        "update",
        "patch",
    }
    assert {c["code"] for c in resources["Observation"]["interaction"]} == {
        "read",
        "vread",
        "history-instance",
        "search-type",
    }
    assert "Task:focus" in resources["Task"]["searchInclude"]
    task_params = {p["name"] for p in resources["Task"]["searchParam"]}
    assert {
        "_id",
        "status",
        "owner",
        "requester",
        "focus",
        "patient",
        "part-of",
        "_lastUpdated",
    } <= task_params
