"""The filler order a broker gets (issue 7 item 25): the GP's notes and timeframe come with it,
so the broker has context before the first call; nothing the time bank could not read."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.referral import filler_order
from referral_service.config import Settings
from tests.fixtures.fhir import FHIR_JSON, entry_of, referral_bundle
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem, bearer

NOTE = "Lives alone since her husband died; prefers mornings; hard of hearing, call twice."


def test_the_broker_gets_the_gps_note_and_timeframe(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    timebank = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    bundle = referral_bundle(practice.org_id)
    sr = entry_of(bundle, "ServiceRequest")["resource"]
    sr["note"] = [
        {
            "authorReference": {"reference": f"Organization/{practice.org_id}"},
            "time": "2026-11-25T10:20:00Z",
            "text": NOTE,
        },
        {"authorString": "Dr A. Patel", "text": "Daughter is happy to be contacted."},
    ]
    sr["occurrencePeriod"] = {"start": "2026-12-01", "end": "2027-01-31"}
    response = client.post("/fhir", json=bundle, headers={**practice_headers, **FHIR_JSON})
    assert response.status_code == 200, response.text
    sr_ref = "/".join(response.json()["entry"][2]["response"]["location"].split("/")[:2])
    tasks = client.get(f"/fhir/Task?focus={sr_ref}", headers=practice_headers).json()
    child_id = route_now(session_factory, settings, tasks["entry"][0]["resource"]["id"])

    broker = bearer(client, timebank)
    child = client.get(f"/fhir/Task/{child_id}", headers=broker).json()
    filler = client.get(f"/fhir/{child['focus']['reference']}", headers=broker).json()

    assert filler["occurrencePeriod"] == {"start": "2026-12-01", "end": "2027-01-31"}
    assert filler["note"] == [
        {"time": "2026-11-25T10:20:00Z", "text": NOTE},  # no reference it could not follow
        {"authorString": "Dr A. Patel", "text": "Daughter is happy to be contacted."},
    ]
    assert "supportingInfo" not in filler  # never the Consent


def test_each_form_of_occurrence_is_carried_and_absent_ones_are_not_invented() -> None:
    base: dict[str, Any] = {
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p"},
        "requester": {"reference": "Organization/o"},
    }
    for name, value in (
        ("occurrenceDateTime", "2026-12-01"),
        ("occurrenceTiming", {"repeat": {"boundsPeriod": {"start": "2026-12-01"}}}),
    ):
        built = filler_order({**base, name: value}, "ServiceRequest/s", "Organization/t", "now")
        assert built[name] == value
    bare = filler_order(base, "ServiceRequest/s", "Organization/t", "now")
    assert not {"note", "occurrenceDateTime", "occurrencePeriod", "occurrenceTiming"} & set(bare)
