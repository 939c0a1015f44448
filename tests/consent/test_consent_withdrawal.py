"""Consent withdrawn mid-referral, on each path: nothing leaks through read, search, _include,
history or paging, open Tasks stop, and the time bank is told."""

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

# What the time bank reads on its cancelled Task (referrals/enforcement.py says it once).
WITHDRAWN = "The patient's consent to share this referral was withdrawn"


@pytest.fixture
def accepted(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> dict[str, Any]:
    child_id = route_now(session_factory, settings, referral.task_id)
    headers = {**bearer(client, timebank_a), **FHIR_JSON}
    child = client.get(f"/fhir/Task/{child_id}", headers=headers).json()
    return dict(
        client.put(
            f"/fhir/Task/{child_id}", json={**child, "status": "accepted"}, headers=headers
        ).json()
    )


def change_consent(
    client: TestClient, headers: dict[str, str], referral: Referral, **changes: Any
) -> None:
    consent = client.get(f"/fhir/{referral.consent}", headers=headers).json()
    consent.update(changes)
    response = client.put(
        f"/fhir/{referral.consent}", json=consent, headers={**headers, **FHIR_JSON}
    )
    assert response.status_code == 200, response.text


def test_withdrawal_stops_the_referral_and_the_time_bank_sees_nothing_more(
    client: TestClient,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    referral: Referral,
    accepted: dict[str, Any],
) -> None:
    broker = bearer(client, timebank_a)
    filler = accepted["focus"]["reference"]
    assert client.get(f"/fhir/{referral.patient}", headers=broker).status_code == 200

    change_consent(client, practice_headers, referral, status="inactive")

    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert (task["status"], task["statusReason"]["text"]) == ("cancelled", WITHDRAWN)
    sr = client.get(f"/fhir/{referral.service_request}", headers=practice_headers).json()
    assert sr["status"] == "revoked"
    # the broker is told: its Task is cancelled with the reason, and it can still see that
    told = client.get(f"/fhir/Task/{accepted['id']}", headers=broker).json()
    assert (told["status"], told["statusReason"]["text"]) == ("cancelled", WITHDRAWN)
    # ... and nothing else: read, history, search, _include, paging
    for url in (
        f"/fhir/{referral.patient}",
        f"/fhir/{referral.patient}/_history",
        f"/fhir/{referral.patient}/_history/1",
        f"/fhir/{filler}",
        f"/fhir/{filler}/_history/1",
    ):
        assert client.get(url, headers=broker).status_code == 404, url
    for url in (
        "/fhir/Patient",
        "/fhir/ServiceRequest",
        f"/fhir/Task?_id={accepted['id']}&_include=Task:patient&_include=Task:focus",
        "/fhir/Patient?_count=1&_offset=0",
    ):
        found = client.get(url, headers=broker).json()
        types = [e["resource"]["resourceType"] for e in found["entry"]]
        assert "Patient" not in types, url
        assert "ServiceRequest" not in types, url


def test_share_back_withdrawn_hides_scores_from_the_gp_until_permitted_again(
    client: TestClient,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    referral: Referral,
    accepted: dict[str, Any],
) -> None:
    broker = {**bearer(client, timebank_a), **FHIR_JSON}
    qr = swemwbs(referral.patient, accepted["focus"]["reference"], [3] * 7, "2026-02-01T10:00:00Z")
    assert client.post("/fhir/QuestionnaireResponse", json=qr, headers=broker).status_code == 201
    url = f"/fhir/Observation?based-on={referral.service_request}"
    [score] = client.get(url, headers=practice_headers).json()["entry"]
    score_url = f"/fhir/Observation/{score['resource']['id']}"

    consent = client.get(f"/fhir/{referral.consent}", headers=practice_headers).json()
    referral_only = {**consent["provision"], "provision": []}
    change_consent(client, practice_headers, referral, provision=referral_only)

    assert client.get(url, headers=practice_headers).json()["entry"] == []
    assert client.get(score_url, headers=practice_headers).status_code == 404
    assert client.get(f"{score_url}/_history", headers=practice_headers).status_code == 404
    assert (
        client.get(score_url, headers=broker).status_code == 200
    )  # the time bank keeps its own record
    # the referral itself goes on: only share-back stopped
    assert (
        client.get(f"/fhir/{referral.task}", headers=practice_headers).json()["status"]
        == "accepted"
    )
    # new scores are withheld from the start
    later = swemwbs(
        referral.patient, accepted["focus"]["reference"], [4] * 7, "2026-03-01T10:00:00Z"
    )
    assert client.post("/fhir/QuestionnaireResponse", json=later, headers=broker).status_code == 201
    assert client.get(url, headers=practice_headers).json()["entry"] == []

    change_consent(client, practice_headers, referral, provision=consent["provision"])
    assert len(client.get(url, headers=practice_headers).json()["entry"]) == 2


def test_a_new_consent_replaces_the_old_one(
    client: TestClient,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    referral: Referral,
    accepted: dict[str, Any],
) -> None:
    consent = client.get(f"/fhir/{referral.consent}", headers=practice_headers).json()
    replacement = {k: v for k, v in consent.items() if k not in ("id", "meta")}
    replacement["dateTime"] = "2030-01-01T00:00:00Z"
    replacement["provision"] = {"type": "deny"}
    response = client.post(
        "/fhir/Consent", json=replacement, headers={**practice_headers, **FHIR_JSON}
    )
    assert response.status_code == 201, response.text
    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert task["status"] == "cancelled"
    assert (
        client.get(f"/fhir/{referral.patient}", headers=bearer(client, timebank_a)).status_code
        == 404
    )


def test_a_time_bank_that_declined_earlier_loses_access_too(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    first = route_now(session_factory, settings, referral.task_id)
    headers_a = {**bearer(client, timebank_a), **FHIR_JSON}
    child = client.get(f"/fhir/Task/{first}", headers=headers_a).json()
    declined = {**child, "status": "rejected", "statusReason": {"text": "Full"}}
    assert client.put(f"/fhir/Task/{first}", json=declined, headers=headers_a).status_code == 200
    assert (
        client.get(f"/fhir/{referral.patient}", headers=headers_a).status_code == 404
    )  # its part ended with the decline (tests/routing/test_routing_access_ends.py)

    change_consent(client, practice_headers, referral, status="inactive")

    assert client.get(f"/fhir/{referral.patient}", headers=headers_a).status_code == 404
    assert client.get(f"/fhir/{child['focus']['reference']}", headers=headers_a).status_code == 404


def test_withdrawn_before_routing_means_never_routed(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    change_consent(client, practice_headers, referral, status="inactive")

    assert (
        route_now(session_factory, settings, referral.task_id) is None
    )  # the routing job runs anyway

    assert (
        client.get(f"/fhir/Task?part-of={referral.task}", headers=practice_headers).json()["entry"]
        == []
    )
    inbox = client.get(
        f"/fhir/Task?owner=Organization/{timebank_a.org_id}", headers=bearer(client, timebank_a)
    )
    assert inbox.json()["entry"] == []
    assert (
        client.get(f"/fhir/{referral.patient}", headers=bearer(client, timebank_a)).status_code
        == 404
    )


def test_routing_checks_consent_again_before_it_shares(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    # A Consent withdrawn behind the API's back (say, restored from a backup): routing still refuses.
    from sqlalchemy import text

    from referral_service.consent.rules import Purpose
    from referral_service.consent.service import decide
    from referral_service.routing.service import NO_CONSENT, system_context

    consent_id = referral.consent.split("/")[1]
    with session_factory() as session, session.begin():
        session.execute(
            text("DELETE FROM search_index WHERE resource_id = :id AND name = 'status'"),
            {"id": consent_id},
        )
    with session_factory() as session:
        assert not decide(
            system_context(session, settings), practice.org_id, referral.patient, Purpose.REFERRAL
        ).permitted

    assert route_now(session_factory, settings, referral.task_id) is None

    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert (task["status"], task["statusReason"]["text"]) == ("cancelled", NO_CONSENT)
    assert (
        client.get(f"/fhir/{referral.patient}", headers=bearer(client, timebank_a)).status_code
        == 404
    )
