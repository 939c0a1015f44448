"""A nested `deny` that names an actor (issue 7 item 8): "not this time bank". Deny wins: the
referral never reaches that time bank, and one already with it is taken back."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.consent.rules import Purpose, permits
from referral_service.referrals.lifecycle import RECIPIENT_DENIED, TAKEN_UP_BY_DENIED
from tests.fixtures.fhir import FHIR_JSON, PLACEHOLDER_PRACTICE
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem, bearer

CONSENT: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "consent.json").read_text()
)
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def not_to(org_id: str, **extra: Any) -> dict[str, Any]:
    """A nested provision: deny, with this organisation as the recipient."""
    return {
        "type": "deny",
        "actor": [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                        }
                    ]
                },
                "reference": {"reference": f"Organization/{org_id}"},
            }
        ],
        **extra,
    }


def with_nested(consent: dict[str, Any], *provisions: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(consent)
    changed["provision"]["provision"] = [*changed["provision"]["provision"], *provisions]
    return changed


# --- the rule ----------------------------------------------------------------------------------


def test_a_deny_naming_an_actor_denies_that_recipient_only() -> None:
    consent = with_nested(CONSENT, not_to("tb-1"))
    assert not permits(consent, Purpose.REFERRAL, "Organization/tb-1")
    assert permits(consent, Purpose.REFERRAL, "Organization/tb-2")
    assert permits(consent, Purpose.REFERRAL)  # the referral may still go somewhere
    # it sits under the referral provision: share-back (to the practice) is not what it is about
    assert permits(consent, Purpose.SHARE_BACK, f"Organization/{PLACEHOLDER_PRACTICE}")


def test_a_deny_naming_an_actor_and_a_purpose() -> None:
    coc = [{"system": ACT_REASON, "code": "COC"}]
    consent = with_nested(CONSENT, not_to("gp-1", purpose=coc))
    assert not permits(consent, Purpose.SHARE_BACK, "Organization/gp-1")
    assert permits(consent, Purpose.REFERRAL, "Organization/gp-1")


def test_a_deny_naming_no_flow_covers_its_parents_flows() -> None:
    consent = with_nested(CONSENT, {"type": "deny"})
    assert not permits(consent, Purpose.REFERRAL)
    assert not permits(consent, Purpose.REFERRAL, "Organization/tb-2")


def test_a_permit_for_one_actor_permits_no_other() -> None:
    only_tb1 = copy.deepcopy(CONSENT)
    only_tb1["provision"]["actor"] = not_to("tb-1")["actor"]
    assert permits(only_tb1, Purpose.REFERRAL, "Organization/tb-1")
    assert not permits(only_tb1, Purpose.REFERRAL, "Organization/tb-2")


# --- routing -----------------------------------------------------------------------------------


@pytest.fixture
def best(session_factory: sessionmaker[Session]) -> TestSystem:
    """The better fit, with more spare capacity: routing picks it unless consent says no."""
    return add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 5)


@pytest.fixture
def other(session_factory: sessionmaker[Session]) -> TestSystem:
    return add_timebank(session_factory, "Lewisham Time Bank", ["SE6"], ["befriending"], 1)


def refer_denying(
    client: TestClient, headers: dict[str, str], practice: TestSystem, denied: TestSystem
) -> Referral:
    referral = make_referral(client, headers, practice.org_id)
    consent = client.get(f"/fhir/{referral.consent}", headers=headers).json()
    denying = with_nested(consent, not_to(denied.org_id))
    response = client.put(
        f"/fhir/{referral.consent}", json=denying, headers={**headers, **FHIR_JSON}
    )
    assert response.status_code == 200, response.text
    return referral


def owner_of(client: TestClient, headers: dict[str, str], task_id: str) -> str:
    task = client.get(f"/fhir/Task/{task_id}", headers=headers).json()
    return str(task["owner"]["reference"])


def test_routing_passes_over_a_denied_time_bank(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    best: TestSystem,
    other: TestSystem,
) -> None:
    referral = refer_denying(client, practice_headers, practice, best)

    child_id = route_now(session_factory, settings, referral.task_id)

    assert child_id is not None
    assert owner_of(client, practice_headers, child_id) == f"Organization/{other.org_id}"
    assert client.get(f"/fhir/{referral.patient}", headers=bearer(client, best)).status_code == (
        404
    )
    assert client.get("/fhir/Task", headers=bearer(client, best)).json()["entry"] == []


def test_no_permitted_time_bank_means_rejected_with_the_reason(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    best: TestSystem,
) -> None:
    referral = refer_denying(client, practice_headers, practice, best)

    assert route_now(session_factory, settings, referral.task_id) is None

    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert task["status"] == "rejected"
    assert "Consent does not permit sharing it with 1 of them" in task["statusReason"]["text"]


def deny_later(
    client: TestClient, headers: dict[str, str], referral: Referral, denied: TestSystem
) -> None:
    """The practice records a new Consent that no longer lets `denied` have the referral."""
    old = client.get(f"/fhir/{referral.consent}", headers=headers).json()
    new = with_nested(
        {k: v for k, v in old.items() if k not in ("id", "meta")}, not_to(denied.org_id)
    )
    new["dateTime"] = "2030-01-01T00:00:00Z"
    response = client.post("/fhir/Consent", json=new, headers={**headers, **FHIR_JSON})
    assert response.status_code == 201, response.text


def test_a_new_deny_takes_a_waiting_referral_to_the_next_time_bank(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    best: TestSystem,
    other: TestSystem,
) -> None:
    referral = make_referral(client, practice_headers, practice.org_id)
    first = route_now(session_factory, settings, referral.task_id)
    assert first is not None
    broker = bearer(client, best)
    filler = client.get(f"/fhir/Task/{first}", headers=broker).json()["focus"]["reference"]

    deny_later(client, practice_headers, referral, best)

    told = client.get(f"/fhir/Task/{first}", headers=broker).json()
    assert (told["status"], told["statusReason"]["text"]) == ("cancelled", RECIPIENT_DENIED)
    assert client.get(f"/fhir/{referral.patient}", headers=broker).status_code == 404
    assert client.get(f"/fhir/{filler}", headers=broker).status_code == 404
    second = route_now(session_factory, settings, referral.task_id)  # the job it enqueued
    assert second is not None
    assert owner_of(client, practice_headers, second) == f"Organization/{other.org_id}"
    assert client.get(f"/fhir/{referral.patient}", headers=bearer(client, other)).status_code == (
        200
    )


def test_a_new_deny_stops_a_referral_the_time_bank_had_taken_up(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    best: TestSystem,
) -> None:
    referral = make_referral(client, practice_headers, practice.org_id)
    child_id = route_now(session_factory, settings, referral.task_id)
    headers = {**bearer(client, best), **FHIR_JSON}
    child = client.get(f"/fhir/Task/{child_id}", headers=headers).json()
    taken = client.put(
        f"/fhir/Task/{child_id}", json={**child, "status": "accepted"}, headers=headers
    )
    assert taken.status_code == 200, taken.text

    deny_later(client, practice_headers, referral, best)

    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert (task["status"], task["statusReason"]["text"]) == ("cancelled", TAKEN_UP_BY_DENIED)
    sr = client.get(f"/fhir/{referral.service_request}", headers=practice_headers).json()
    assert sr["status"] == "revoked"
    told = client.get(f"/fhir/Task/{child_id}", headers=headers).json()
    assert (told["status"], told["statusReason"]["text"]) == ("cancelled", RECIPIENT_DENIED)
    assert client.get(f"/fhir/{referral.patient}", headers=headers).status_code == 404
