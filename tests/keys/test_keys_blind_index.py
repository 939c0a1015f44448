"""The NHS-number blind index is keyed per tenant: the same person at two practices leaves two
unrelated index values, so a database reader cannot link them; each practice still finds (and
conditionally creates against) its own patients, and a time bank cannot search by the number."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.codes import NHS_NUMBER_SYSTEM
from referral_service.config import Settings
from tests.fixtures.referrals import make_referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem, bearer

NHS = "9434765919"


def nhs_index_values(session_factory: sessionmaker[Session]) -> dict[str, list[str]]:
    """org id → the NHS-number index values of its resources, straight from the table."""
    found: dict[str, list[str]] = {}
    with session_factory() as session:
        rows = session.execute(
            text(
                "SELECT r.org_id, i.value FROM search_index i JOIN resource r "
                "ON r.id = i.resource_id WHERE i.name = 'identifier' AND i.system = :system"
            ),
            {"system": NHS_NUMBER_SYSTEM},
        )
        for org_id, value in rows:
            found.setdefault(org_id, []).append(value)
    return found


def patients_by_nhs(client: TestClient, headers: dict[str, str]) -> list[str]:
    response = client.get(f"/fhir/Patient?identifier={NHS_NUMBER_SYSTEM}|{NHS}", headers=headers)
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def test_the_same_person_at_two_practices_does_not_link(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
) -> None:
    a = make_referral(client, practice_headers, practice.org_id, referral_id="A-1")
    again = make_referral(client, practice_headers, practice.org_id, referral_id="A-2")
    b = make_referral(client, practice_b_headers, practice_b.org_id, referral_id="B-1")

    values = nhs_index_values(session_factory)
    assert len(values[practice.org_id]) == 1  # the second referral found the same Patient
    assert len(values[practice_b.org_id]) == 1
    assert values[practice.org_id] != values[practice_b.org_id]
    assert NHS not in str(values)

    assert again.patient == a.patient  # conditional create by NHS number, within the practice
    assert b.patient != a.patient
    assert patients_by_nhs(client, practice_headers) == [a.patient.split("/")[1]]
    assert patients_by_nhs(client, practice_b_headers) == [b.patient.split("/")[1]]


def test_a_time_bank_cannot_find_a_routed_patient_by_nhs_number(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    referral = make_referral(client, practice_headers, practice.org_id)
    timebank = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    assert route_now(session_factory, settings, referral.task_id)
    headers = bearer(client, timebank)
    # it may read the routed Patient...
    assert client.get(f"/fhir/{referral.patient}", headers=headers).status_code == 200
    # ...but searching by the number it is not shown matches nothing
    response = client.get(f"/fhir/Patient?identifier={NHS_NUMBER_SYSTEM}|{NHS}", headers=headers)
    # (an empty page here; refusing the search outright, with a 4xx, would do as well)
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    assert referral.patient.split("/")[1] not in response.text
    assert response.json().get("entry", []) == [] or response.status_code != 200
