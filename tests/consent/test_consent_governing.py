"""Which Consent governs (issue 7 item 7): the newest one, in force or withdrawn. Withdrawing it
must not hand the decision back to an older Consent that is still `active`."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.consent.rules import Purpose, consent_time
from referral_service.consent.service import decide, governing_consent
from referral_service.routing.service import system_context
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.referrals import Referral
from tests.fixtures.routing import route_now
from tests.fixtures.systems import TestSystem, bearer

# What the time bank reads on its cancelled Task (referrals/enforcement.py says it once).
WITHDRAWN = "The patient's consent to share this referral was withdrawn"


def newer_consent(
    client: TestClient, headers: dict[str, str], referral: Referral, when: str
) -> dict[str, Any]:
    """The referral's Consent given again later: a second Consent, also active."""
    old = client.get(f"/fhir/{referral.consent}", headers=headers).json()
    body = {k: v for k, v in old.items() if k not in ("id", "meta")} | {"dateTime": when}
    response = client.post("/fhir/Consent", json=body, headers={**headers, **FHIR_JSON})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_withdrawing_the_newest_consent_does_not_revive_an_older_one(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    child_id = route_now(session_factory, settings, referral.task_id)
    broker = bearer(client, timebank_a)
    newer = newer_consent(client, practice_headers, referral, "2030-01-01T00:00:00Z")
    # the older Consent is still active: only the newer one is withdrawn
    assert client.get(f"/fhir/{referral.consent}", headers=practice_headers).json()["status"] == (
        "active"
    )
    assert client.get(f"/fhir/{referral.patient}", headers=broker).status_code == 200

    withdrawn = {**newer, "status": "inactive"}
    response = client.put(
        f"/fhir/Consent/{newer['id']}", json=withdrawn, headers={**practice_headers, **FHIR_JSON}
    )
    assert response.status_code == 200, response.text

    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert (task["status"], task["statusReason"]["text"]) == ("cancelled", WITHDRAWN)
    told = client.get(f"/fhir/Task/{child_id}", headers=broker).json()
    assert (told["status"], told["statusReason"]["text"]) == ("cancelled", WITHDRAWN)
    assert client.get(f"/fhir/{referral.patient}", headers=broker).status_code == 404
    with session_factory() as session:
        decision = decide(
            system_context(session, settings), practice.org_id, referral.patient, Purpose.REFERRAL
        )
    assert (decision.permitted, decision.consent_id) == (False, newer["id"])
    assert decision.reason == "the current Consent was withdrawn"


def test_a_consent_dated_before_the_withdrawal_does_not_override_it(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    newer = newer_consent(client, practice_headers, referral, "2030-01-01T00:00:00Z")
    response = client.put(
        f"/fhir/Consent/{newer['id']}",
        json={**newer, "status": "inactive"},
        headers={**practice_headers, **FHIR_JSON},
    )
    assert response.status_code == 200, response.text

    # a new referral whose Consent is older than the withdrawal is refused ...
    again = referral_bundle(practice.org_id, referral_id="REF-0002")
    refused = client.post("/fhir", json=again, headers={**practice_headers, **FHIR_JSON})
    assert refused.status_code == 422, refused.text
    assert "Consent" in refused.json()["issue"][0]["diagnostics"]
    # ... one given after it is accepted
    for entry in again["entry"]:
        if entry["resource"]["resourceType"] == "Consent":
            entry["resource"]["dateTime"] = "2030-02-01T00:00:00Z"
    accepted = client.post("/fhir", json=again, headers={**practice_headers, **FHIR_JSON})
    assert accepted.status_code == 200, accepted.text


def consent(status: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": status,
        "patient": {"reference": "Patient/p1"},
        "dateTime": when,
        "provision": {"type": "permit"},
    }


@pytest.mark.parametrize(
    ("newer_status", "governs"),
    [
        ("inactive", "Consent/new"),  # withdrawn: it governs, and permits nothing
        ("active", "Consent/new"),
        ("entered-in-error", "Consent/old"),  # a mistake replaces nothing
        ("draft", "Consent/old"),
        ("proposed", "Consent/old"),
        ("rejected", "Consent/old"),
    ],
)
def test_which_consent_governs(
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    newer_status: str,
    governs: str,
) -> None:
    pending = {
        "Consent/old": consent("active", "2024-05-01T10:00:00Z"),
        "Consent/new": consent(newer_status, "2025-05-01T10:00:00Z"),
    }
    with session_factory() as session:
        ctx = system_context(session, settings)
        found, _ = governing_consent(ctx, practice.org_id, "Patient/p1", pending)
    assert f"Consent/{found}" == governs


def test_consents_are_ordered_by_instant_not_by_text() -> None:
    # 10:15 at +01:00 is 09:15 UTC: earlier than 09:30 UTC, though it sorts later as text
    summer = consent_time({"dateTime": "2024-05-01T10:15:00+01:00"})
    utc = consent_time({"dateTime": "2024-05-01T09:30:00Z"})
    assert summer < utc
    assert consent_time({}) < consent_time({"dateTime": "1900"})
