"""Searching by what you may not see (issue 7 items 9 and 10).

A time bank is shown a routed Patient without the NHS number; it must not be able to test a guess
at the number by search, count or conditional reference either. A number that fails Modulus 11 is
refused with 422, as at intake."""

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

NHS = "https://fhir.nhs.uk/Id/nhs-number"
RIGHT = "9434765919"  # the referred patient's
WRONG = "9434765870"  # valid, nobody's


@pytest.fixture
def routed(
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> str:
    child_id = route_now(session_factory, settings, referral.task_id)
    assert child_id is not None
    return child_id


def found(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json()["entry"]]


def test_a_time_bank_cannot_search_a_patient_by_nhs_number(
    client: TestClient,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    referral: Referral,
    routed: str,
) -> None:
    broker = bearer(client, timebank_a)
    assert client.get(f"/fhir/{referral.patient}", headers=broker).status_code == 200
    for number in (RIGHT, WRONG):  # the right guess looks exactly like a wrong one
        assert found(client, f"/fhir/Patient?identifier={NHS}|{number}", broker) == []
        assert found(client, f"/fhir/Patient?identifier={number}", broker) == []
        counted = client.get(f"/fhir/Patient?identifier={NHS}|{number}&_count=0", headers=broker)
        assert counted.json()["total"] == 0
        posted = client.post(
            "/fhir/Patient/_search",
            content=f"identifier={NHS}|{number}",
            headers={**broker, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert posted.json()["entry"] == []
    # what it is shown, it may search by
    [patient] = found(client, "/fhir/Patient?gender=female", broker)
    assert patient["id"] == referral.patient.split("/")[1]
    # the practice, which holds the number, finds its patient by it
    [own] = found(client, f"/fhir/Patient?identifier={NHS}|{RIGHT}", practice_headers)
    assert own["id"] == referral.patient.split("/")[1]


def test_a_conditional_reference_by_nhs_number_tells_a_time_bank_nothing(
    client: TestClient,
    timebank_a: TestSystem,
    referral: Referral,
    routed: str,
) -> None:
    broker = {**bearer(client, timebank_a), **FHIR_JSON}
    filler = client.get(f"/fhir/Task/{routed}", headers=broker).json()["focus"]["reference"]
    answers = []
    for number in (RIGHT, WRONG):
        response = swemwbs(f"Patient?identifier={NHS}|{number}", filler, [3] * 7, "2026-02-01")
        result = client.post("/fhir/QuestionnaireResponse", json=response, headers=broker)
        answers.append((result.status_code, result.json()["issue"][0]["diagnostics"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 422
    assert "matches no resource" in answers[0][1]


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("9434765918", "fails the Modulus 11 check"),
        ("1234567890", "fails the Modulus 11 check"),
        ("943476591", "is not 10 digits"),
        ("94347", "is not 10 digits"),
    ],
)
def test_an_nhs_number_failing_modulus_11_is_refused(
    client: TestClient, practice_headers: dict[str, str], referral: Referral, number: str, why: str
) -> None:
    response = client.get(f"/fhir/Patient?identifier={NHS}|{number}", headers=practice_headers)

    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "value")
    assert issue["diagnostics"] == f"identifier: the NHS number {why}"
    assert number not in response.text  # never echoed
    # a valid number nobody has is simply not found
    assert found(client, f"/fhir/Patient?identifier={NHS}|{WRONG}", practice_headers) == []
