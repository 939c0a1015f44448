"""The time bank broker's side over HTTP: inbox, minimal view, answers, questionnaires, completion."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral
from tests.fixtures.routing import route_now, swemwbs
from tests.fixtures.systems import TestSystem, bearer


@pytest.fixture
def child(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> dict[str, Any]:
    child_id = route_now(session_factory, settings, referral.task_id)
    assert child_id is not None
    assert route_now(session_factory, settings, referral.task_id) == child_id  # idempotent
    return dict(client.get(f"/fhir/Task/{child_id}", headers=bearer(client, timebank_a)).json())


def put(client: TestClient, headers: dict[str, str], task: dict[str, Any], **changes: Any) -> Any:
    return client.put(
        f"/fhir/Task/{task['id']}", json={**task, **changes}, headers={**headers, **FHIR_JSON}
    )


def test_inbox_and_minimal_view(
    client: TestClient,
    timebank_a: TestSystem,
    timebank_headers: dict[str, str],
    referral: Referral,
    child: dict[str, Any],
) -> None:
    headers = bearer(client, timebank_a)
    inbox = client.get(
        f"/fhir/Task?owner=Organization/{timebank_a.org_id}&status=requested&_include=Task:focus",
        headers=headers,
    ).json()
    kinds = sorted((e["resource"]["resourceType"], e["search"]["mode"]) for e in inbox["entry"])
    assert kinds == [("ServiceRequest", "include"), ("Task", "match")]
    assert client.get(f"/fhir/{referral.task}", headers=headers).status_code == 404
    assert client.get(f"/fhir/{referral.consent}", headers=headers).status_code == 404
    assert client.get(f"/fhir/{referral.service_request}", headers=headers).status_code == 404
    # another time bank (the `timebank` fixture) sees nothing of it
    assert client.get(f"/fhir/Task/{child['id']}", headers=timebank_headers).status_code == 404
    assert client.get("/fhir/Task", headers=timebank_headers).json()["entry"] == []


def test_broker_rules(
    client: TestClient,
    timebank_a: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    child: dict[str, Any],
) -> None:
    headers = bearer(client, timebank_a)
    refused = put(client, headers, child, status="rejected")
    assert refused.status_code == 422  # a decline needs a reason the GP can read
    assert put(client, headers, child, status="completed").status_code == 409
    assert (
        put(
            client, practice_headers, child, status="cancelled", statusReason={"text": "x"}
        ).status_code
        == 403
    )
    referral_task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert put(client, headers, referral_task, status="accepted").status_code == 404


def test_accept_scores_and_complete(
    client: TestClient,
    timebank_a: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    child: dict[str, Any],
) -> None:
    headers = bearer(client, timebank_a)
    assert put(client, headers, child, status="accepted").status_code == 200
    assert (
        client.get(f"/fhir/{referral.task}", headers=practice_headers).json()["status"]
        == "accepted"
    )
    child = client.get(f"/fhir/Task/{child['id']}", headers=headers).json()
    assert put(client, headers, child, status="in-progress").status_code == 200

    filler = child["focus"]["reference"]
    intake = swemwbs(referral.patient, filler, [2, 2, 3, 2, 2, 3, 2], "2026-01-10T10:00:00Z")
    later = swemwbs(referral.patient, filler, [4, 4, 4, 3, 4, 4, 4], "2026-04-10T10:00:00Z")
    for qr in (intake, later):
        response = client.post(
            "/fhir/QuestionnaireResponse", json=qr, headers={**headers, **FHIR_JSON}
        )
        assert response.status_code == 201, response.text

    bad = swemwbs(referral.patient, filler, [4, 4, 4, 3, 4, 4, 9], "2026-04-11T10:00:00Z")
    refused = client.post("/fhir/QuestionnaireResponse", json=bad, headers={**headers, **FHIR_JSON})
    assert refused.status_code == 422
    assert "7" in refused.json()["issue"][0]["diagnostics"]

    scores = client.get(
        f"/fhir/Observation?based-on={referral.service_request}&code=http://snomed.info/sct|718466001",
        headers=practice_headers,
    ).json()
    values = sorted(e["resource"]["valueQuantity"]["value"] for e in scores["entry"])
    assert values == [16.36, 24.11]  # raw 16 and 27 on the Warwick conversion table

    child = client.get(f"/fhir/Task/{child['id']}", headers=headers).json()
    assert put(client, headers, child, status="completed").status_code == 200
    done = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert done["status"] == "completed"
    outputs = {o["valueReference"]["reference"] for o in done["output"]}
    assert {f"Observation/{e['resource']['id']}" for e in scores["entry"]} <= outputs


def test_questionnaires_are_published(client: TestClient) -> None:
    listed = client.get("/fhir/Questionnaire").json()
    assert sorted(e["resource"]["id"] for e in listed["entry"]) == [
        "ons4",
        "swemwbs",
        "ucla3",
        "wemwbs",
    ]
    swemwbs_q = client.get("/fhir/Questionnaire/swemwbs").json()
    assert swemwbs_q["url"] == "https://spis.example.org/fhir/Questionnaire/swemwbs"
    assert len(swemwbs_q["item"]) == 7


def test_broker_answers_with_json_patch(
    client: TestClient,
    timebank_a: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    child: dict[str, Any],
) -> None:
    headers = {**bearer(client, timebank_a), "Content-Type": "application/json-patch+json"}
    url = f"/fhir/Task/{child['id']}"
    stale = [
        {"op": "test", "path": "/status", "value": "accepted"},
        {"op": "replace", "path": "/status", "value": "in-progress"},
    ]
    refused = client.patch(url, json=stale, headers=headers)
    assert refused.status_code == 422
    assert "test operation" in refused.json()["issue"][0]["diagnostics"]

    accept = [
        {"op": "test", "path": "/status", "value": "requested"},
        {"op": "replace", "path": "/status", "value": "accepted"},
    ]
    response = client.patch(url, json=accept, headers={**headers, "If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert response.headers["etag"] == 'W/"2"'
    assert (
        client.get(f"/fhir/{referral.task}", headers=practice_headers).json()["status"]
        == "accepted"
    )

    again = client.patch(
        url,
        json=[{"op": "add", "path": "/priority", "value": "urgent"}],
        headers={**headers, "If-Match": 'W/"1"'},
    )
    assert again.status_code == 412, again.text
    moved = client.patch(
        url,
        json=[{"op": "replace", "path": "/focus/reference", "value": "ServiceRequest/x"}],
        headers=headers,
    )
    assert moved.status_code == 422
    wrong_type = client.patch(
        url, json=accept, headers={**headers, "Content-Type": "application/fhir+json"}
    )
    assert wrong_type.status_code == 415
    not_a_patch = client.patch(url, json={"status": "completed"}, headers=headers)
    assert not_a_patch.status_code == 400
    assert client.get(url, headers=headers).json()["meta"]["versionId"] == "2"


def test_broker_sees_the_patient_without_nhs_number_or_gp(
    client: TestClient,
    timebank_a: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    child: dict[str, Any],
) -> None:
    headers = bearer(client, timebank_a)
    seen = client.get(f"/fhir/{referral.patient}", headers=headers).json()
    assert "identifier" not in seen
    assert "generalPractitioner" not in seen
    assert seen["name"][0]["family"] == "Okafor"
    assert seen["address"][0]["postalCode"] == "SE6 4RU"
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED",
    } in seen["meta"]["tag"]
    searched = client.get(
        f"/fhir/Task?_id={child['id']}&_include=Task:patient", headers=headers
    ).json()
    [patient] = [
        e["resource"] for e in searched["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert "identifier" not in patient
    assert (
        "identifier"
        not in client.get(f"/fhir/{referral.patient}/_history/1", headers=headers).json()
    )
    # the practice still sees its whole record
    assert client.get(f"/fhir/{referral.patient}", headers=practice_headers).json()["identifier"]
