"""A time bank's access ends when its part does (issue 7 item 24): declined, passed over after its
SLA, or the referral cancelled. It still sees its own Task, so it knows it is over; not the
Patient nor the filler order. Another referral of the same person still with it keeps the Patient."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.routing import sla
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import route_now
from tests.fixtures.systems import TestSystem, bearer


def routed_child(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank: TestSystem,
) -> dict[str, Any]:
    child_id = route_now(session_factory, settings, referral.task_id)
    assert child_id is not None
    return dict(client.get(f"/fhir/Task/{child_id}", headers=bearer(client, timebank)).json())


def answer(client: TestClient, timebank: TestSystem, child: dict[str, Any], **changes: Any) -> None:
    headers = {**bearer(client, timebank), **FHIR_JSON}
    response = client.put(f"/fhir/Task/{child['id']}", json={**child, **changes}, headers=headers)
    assert response.status_code == 200, response.text


def assert_part_over(
    client: TestClient, timebank: TestSystem, referral: Referral, child: dict[str, Any], status: str
) -> None:
    broker = bearer(client, timebank)
    filler = child["focus"]["reference"]
    for url in (
        f"/fhir/{referral.patient}",
        f"/fhir/{referral.patient}/_history/1",
        f"/fhir/{filler}",
        f"/fhir/{filler}/_history",
    ):
        assert client.get(url, headers=broker).status_code == 404, url
    for url in ("/fhir/Patient", "/fhir/ServiceRequest", "/fhir/Patient?gender=female"):
        assert client.get(url, headers=broker).json()["entry"] == [], url
    # its own Task stays, with the news, but includes nothing it may no longer read
    inbox = client.get(
        f"/fhir/Task?_id={child['id']}&_include=Task:focus&_include=Task:patient", headers=broker
    ).json()
    [task] = [e["resource"] for e in inbox["entry"]]
    assert (task["resourceType"], task["status"]) == ("Task", status)


def test_a_time_bank_that_declined_reads_the_patient_no_more(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    child = routed_child(client, session_factory, settings, referral, timebank_a)
    assert (
        client.get(f"/fhir/{referral.patient}", headers=bearer(client, timebank_a)).status_code
        == 200
    )

    answer(client, timebank_a, child, status="rejected", statusReason={"text": "Full"})

    assert_part_over(client, timebank_a, referral, child, "rejected")


def test_a_time_bank_passed_over_after_its_sla_reads_the_patient_no_more(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    child = routed_child(client, session_factory, settings, referral, timebank_a)
    with session_factory() as session, session.begin():
        assert sla.sweep(session, settings, as_of="2099-01-05T12:00:00+00:00")["reminded"] == 1
    assert (
        client.get(f"/fhir/{referral.patient}", headers=bearer(client, timebank_a)).status_code
        == 200
    )
    with session_factory() as session, session.begin():
        assert sla.sweep(session, settings, as_of="2099-03-02T12:00:00+00:00")["rerouted"] == 1

    assert_part_over(client, timebank_a, referral, child, "cancelled")


def test_a_cancelled_referral_ends_the_time_banks_access(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    child = routed_child(client, session_factory, settings, referral, timebank_a)
    answer(client, timebank_a, child, status="accepted")
    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    cancelled = {**task, "status": "cancelled", "statusReason": {"text": "Patient moved away"}}
    response = client.put(
        f"/fhir/{referral.task}", json=cancelled, headers={**practice_headers, **FHIR_JSON}
    )
    assert response.status_code == 200, response.text

    assert_part_over(client, timebank_a, referral, child, "cancelled")


def test_a_time_bank_that_withdraws_reads_the_patient_no_more(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    child = routed_child(client, session_factory, settings, referral, timebank_a)
    answer(client, timebank_a, child, status="accepted")
    child = client.get(f"/fhir/Task/{child['id']}", headers=bearer(client, timebank_a)).json()
    answer(client, timebank_a, child, status="cancelled", statusReason={"text": "Closing"})

    assert_part_over(client, timebank_a, referral, child, "cancelled")


def test_another_open_referral_of_the_same_person_keeps_the_patient(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    first = routed_child(client, session_factory, settings, referral, timebank_a)
    second_referral = make_referral(
        client, practice_headers, practice.org_id, referral_id="REF-0002"
    )
    assert second_referral.patient == referral.patient  # one Patient per NHS number
    second = routed_child(client, session_factory, settings, second_referral, timebank_a)

    answer(client, timebank_a, first, status="rejected", statusReason={"text": "Full"})

    broker = bearer(client, timebank_a)
    assert client.get(f"/fhir/{referral.patient}", headers=broker).status_code == 200
    assert client.get(f"/fhir/{first['focus']['reference']}", headers=broker).status_code == 404
    assert client.get(f"/fhir/{second['focus']['reference']}", headers=broker).status_code == 200
