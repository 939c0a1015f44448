"""A referred member gives and receives time: the co-production indicators, and what the GP (and
the broker) can read back over FHIR, linked to the original ServiceRequest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.parse import validate_resource
from referral_service.config import Settings
from referral_service.ledger.models import Member
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import Routed, add_member, enrol, exchange, ledger_url, route


def search(client: TestClient, headers: dict[str, str], rtype: str, based_on: str) -> list[Any]:
    response = client.get(f"/fhir/{rtype}", params={"based-on": based_on}, headers=headers)
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]


def enrolled(
    client: TestClient, headers: dict[str, str], timebank: TestSystem, routed: Routed
) -> str:
    response = enrol(client, headers, timebank, routed.child_task_id)
    assert response.status_code == 201, response.text
    member_id: str = response.json()["member"]["id"]
    return member_id


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).date().isoformat()


def test_a_referred_member_receives_then_gives(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed_referral: Routed,
    session_factory: sessionmaker[Session],
) -> None:
    grace = enrolled(client, timebank_headers, timebank, routed_referral)
    with session_factory() as session, session.begin():  # as if enrolled ten days ago
        ten_days_ago = datetime.now(UTC) - timedelta(days=10)
        session.execute(update(Member).where(Member.id == grace).values(enrolled_at=ten_days_ago))
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    url = ledger_url(timebank, f"/members/{grace}")

    exchange(client, timebank_headers, timebank, sam, grace, minutes=120, date=days_ago(9))
    after_receiving = client.get(url, headers=timebank_headers).json()
    exchange(client, timebank_headers, timebank, grace, ana, minutes=60, date=days_ago(3))
    after_giving = client.get(url, headers=timebank_headers).json()
    exchange(client, timebank_headers, timebank, grace, sam, minutes=60, date=days_ago(1))
    after_both = client.get(url, headers=timebank_headers).json()

    assert after_receiving["indicators"] == {"reciprocity": 0.0, "first_gift_days": None}
    assert after_giving["indicators"] == {"reciprocity": 0.5, "first_gift_days": 7}
    assert after_giving["balance_minutes"] == -60
    assert after_both["indicators"] == {"reciprocity": 1.0, "first_gift_days": 7}
    assert (after_both["given_minutes"], after_both["received_minutes"]) == (120, 120)
    assert (after_both["balance_minutes"], after_both["partners"]) == (0, 2)


def test_a_gift_before_any_receipt_has_no_reciprocity_yet(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed_referral: Routed,
) -> None:
    grace = enrolled(client, timebank_headers, timebank, routed_referral)
    sam = add_member(client, timebank_headers, timebank, "Sam")

    exchange(client, timebank_headers, timebank, grace, sam, minutes=30, date=days_ago(0))

    found = client.get(ledger_url(timebank, f"/members/{grace}"), headers=timebank_headers)
    assert found.json()["indicators"] == {"reciprocity": None, "first_gift_days": 0}


def test_the_gp_reads_procedures_and_observations_of_each_exchange(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    practice_headers: dict[str, str],
    practice_b_headers: dict[str, str],
    routed_referral: Routed,
) -> None:
    grace = enrolled(client, timebank_headers, timebank, routed_referral)
    sam = add_member(client, timebank_headers, timebank, "Sam")
    received = exchange(client, timebank_headers, timebank, sam, grace, minutes=90).json()
    given = exchange(
        client, timebank_headers, timebank, grace, sam, minutes=45, category="gardening"
    ).json()
    original = routed_referral.referral.service_request

    procedures = search(client, practice_headers, "Procedure", original)
    observations = search(client, practice_headers, "Observation", original)

    assert len(procedures) == 2
    assert len(observations) == 3  # two hours Observations and the enrolment
    assert {f"Procedure/{p['id']}" for p in procedures} == {
        ref for made in (received, given) for ref in made["fhir"] if ref.startswith("Procedure/")
    }
    for resource in procedures + observations:
        validate_resource(resource)
        assert resource["subject"] == {"reference": routed_referral.referral.patient}
        assert resource["basedOn"] == [{"reference": original}]
    hours = {hours_of(o): o for o in observations if "valueQuantity" in o}
    assert set(hours) == {("received", 90), ("given", 45)}
    by_id = {p["id"]: p for p in procedures}
    gave = by_id[hours[("given", 45)]["partOf"][0]["reference"].partition("/")[2]]
    assert gave["code"]["coding"][0]["code"] == "gardening"
    assert gave["category"]["coding"][0]["code"] == "410606002"
    assert gave["performedPeriod"] == {"start": "2026-11-20", "end": "2026-11-20"}
    assert "gave" in gave["note"][0]["text"]
    broker_sees = search(client, timebank_headers, "Procedure", original)
    assert {p["id"] for p in broker_sees} == set(by_id)
    assert search(client, practice_b_headers, "Procedure", original) == []


def test_two_referred_members_each_get_their_own_record(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed_referral: Routed,
) -> None:
    second = route(
        client,
        session_factory,
        settings,
        practice,
        practice_headers,
        timebank.org_id,
        nhs_number="9434765005",
        referral_id="REF-0002",
    )
    grace = enrolled(client, timebank_headers, timebank, routed_referral)
    joe = enrolled(client, timebank_headers, timebank, second)

    made = exchange(client, timebank_headers, timebank, joe, grace, minutes=30)

    assert made.status_code == 201, made.text
    assert len(made.json()["fhir"]) == 4
    for routed, direction in ((routed_referral, "received"), (second, "given")):
        original = routed.referral.service_request
        [procedure] = search(client, practice_headers, "Procedure", original)
        assert procedure["subject"] == {"reference": routed.referral.patient}
        found = search(client, practice_headers, "Observation", original)
        hours = [o for o in found if "valueQuantity" in o]
        assert [hours_of(o) for o in hours] == [(direction, 30)]


def hours_of(observation: dict[str, Any]) -> tuple[str, int]:
    direction = observation["component"][0]["valueCodeableConcept"]["coding"][0]["code"]
    return direction, observation["valueQuantity"]["value"]
