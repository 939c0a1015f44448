"""Intake over HTTP on PostgreSQL: transaction Bundles, the referral Task, resubmission."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.fixtures.fhir import FHIR_JSON, entry_of, referral_bundle, without
from tests.fixtures.systems import TestSystem


def post_bundle(client: TestClient, headers: dict[str, str], bundle: dict[str, Any]) -> Any:
    return client.post("/fhir", json=bundle, headers={**headers, **FHIR_JSON})


def test_transaction_creates_patient_consent_referral_and_task(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    response = post_bundle(client, practice_headers, referral_bundle(practice.org_id))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created"] * 3
    locations = [e["response"]["location"] for e in body["entry"]]
    assert [loc.split("/")[0] for loc in locations] == ["Patient", "Consent", "ServiceRequest"]
    assert all(e["response"]["etag"] == 'W/"1"' for e in body["entry"])

    patient_ref = "/".join(locations[0].split("/")[:2])
    consent_ref = "/".join(locations[1].split("/")[:2])
    sr_ref = "/".join(locations[2].split("/")[:2])
    sr = client.get(f"/fhir/{sr_ref}", headers=practice_headers).json()
    assert sr["subject"]["reference"] == patient_ref  # urn:uuid rewritten
    assert sr["supportingInfo"][0]["reference"] == consent_ref
    assert sr["meta"]["versionId"] == "1"

    tasks = client.get(f"/fhir/Task?focus={sr_ref}", headers=practice_headers).json()
    [task] = [e["resource"] for e in tasks["entry"]]
    assert task["status"] == "requested"
    assert task["intent"] == "order"
    assert task["code"]["coding"][0]["code"] == "fulfill"
    assert task["for"]["reference"] == patient_ref
    assert task["requester"]["reference"] == f"Organization/{practice.org_id}"
    assert task["owner"]["reference"] == "Organization/spis"
    assert "authoredOn" in task
    note = body["entry"][2]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert note == f"Referral Task created: Task/{task['id']}"


def test_resubmitted_referral_creates_nothing_new(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    bundle = referral_bundle(practice.org_id)
    first = post_bundle(client, practice_headers, bundle).json()
    second = post_bundle(client, practice_headers, referral_bundle(practice.org_id))

    assert second.status_code == 200
    again = second.json()
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 3
    assert [e["response"]["location"] for e in again["entry"]] == [
        e["response"]["location"] for e in first["entry"]
    ]
    for rtype in ("Patient", "Consent", "ServiceRequest", "Task"):
        found = client.get(f"/fhir/{rtype}", headers=practice_headers).json()
        assert len(found["entry"]) == 1, rtype


def test_second_referral_for_same_patient_reuses_the_patient(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    first = post_bundle(client, practice_headers, referral_bundle(practice.org_id)).json()
    second = post_bundle(
        client, practice_headers, referral_bundle(practice.org_id, referral_id="REF-0002")
    ).json()

    assert second["entry"][0]["response"]["status"] == "200 OK"
    assert second["entry"][0]["response"]["location"] == first["entry"][0]["response"]["location"]
    assert second["entry"][2]["response"]["status"] == "201 Created"
    tasks = client.get("/fhir/Task", headers=practice_headers).json()
    assert len(tasks["entry"]) == 2


def test_referral_without_consent_is_refused_and_nothing_stored(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    bundle = without(referral_bundle(practice.org_id), "Consent")
    entry_of(bundle, "ServiceRequest")["resource"].pop("supportingInfo")

    response = post_bundle(client, practice_headers, bundle)

    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert issue["code"] == "business-rule"
    assert "Consent" in issue["diagnostics"]
    assert client.get("/fhir/Patient", headers=practice_headers).json()["entry"] == []


def test_transaction_posted_to_base_with_trailing_slash(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    response = client.post(
        "/fhir/",
        json=referral_bundle(practice.org_id),
        headers={**practice_headers, **FHIR_JSON},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert response.json()["type"] == "transaction-response"
