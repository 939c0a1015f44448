"""Enrolling a referred person: the rules about the child Task, and the enrolment Observation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.ledger.models import Member
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import Routed, enrol, ledger_url, route


def test_enrolment_makes_a_referred_member_and_an_enrolment_observation(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    practice_headers: dict[str, str],
    routed_referral: Routed,
) -> None:
    response = enrol(client, timebank_headers, timebank, routed_referral.child_task_id)

    assert response.status_code == 201, response.text
    body = response.json()
    member = body["member"]
    assert member["referred"] is True
    assert member["referral_task"] == f"Task/{routed_referral.child_task_id}"
    assert member["enrolled_at"] is not None
    observation_ref = body["observation"]
    for headers in (practice_headers, timebank_headers):  # the GP's and the broker's
        found = client.get(f"/fhir/{observation_ref}", headers=headers)
        assert found.status_code == 200, found.text
    observation = client.get(f"/fhir/{observation_ref}", headers=practice_headers).json()
    assert observation["status"] == "final"
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == "enrolled"
    assert observation["basedOn"] == [{"reference": routed_referral.referral.service_request}]
    assert observation["subject"] == {"reference": routed_referral.referral.patient}
    assert observation["performer"] == [{"reference": f"Organization/{timebank.org_id}"}]
    statement = client.get(
        ledger_url(timebank, f"/members/{member['id']}"), headers=timebank_headers
    ).json()
    assert statement["indicators"] == {"reciprocity": None, "first_gift_days": None}


def test_a_task_in_progress_can_be_enrolled(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    routed = route(
        client,
        session_factory,
        settings,
        practice,
        practice_headers,
        timebank.org_id,
        status="in-progress",
    )
    assert enrol(client, timebank_headers, timebank, routed.child_task_id).status_code == 201


def test_the_same_task_is_enrolled_once(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed_referral: Routed,
    session_factory: sessionmaker[Session],
) -> None:
    assert (
        enrol(client, timebank_headers, timebank, routed_referral.child_task_id).status_code == 201
    )

    again = enrol(client, timebank_headers, timebank, routed_referral.child_task_id, "Gee")

    assert again.status_code == 409
    assert again.json()["issue"][0]["code"] == "business-rule"
    assert member_count(session_factory) == 1


@pytest.mark.parametrize("status", ["requested", "rejected", "completed", "cancelled"])
def test_only_accepted_or_in_progress_tasks_can_be_enrolled(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    status: str,
) -> None:
    routed = route(
        client,
        session_factory,
        settings,
        practice,
        practice_headers,
        timebank.org_id,
        status=status,
    )

    response = enrol(client, timebank_headers, timebank, routed.child_task_id)

    assert response.status_code == 409, response.text
    assert_refused_without_trace(response, client, practice_headers, routed, session_factory)


def test_a_task_owned_by_another_time_bank_cannot_be_enrolled(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    other_timebank: TestSystem,
) -> None:
    routed = route(
        client,
        session_factory,
        settings,
        practice,
        practice_headers,
        timebank.org_id,
        owner_org_id=other_timebank.org_id,
    )

    response = enrol(client, timebank_headers, timebank, routed.child_task_id)

    assert response.status_code == 409, response.text
    assert "not assigned to this time bank" in response.json()["issue"][0]["diagnostics"]
    assert_refused_without_trace(response, client, practice_headers, routed, session_factory)


def test_a_task_the_time_bank_cannot_read_is_not_found(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    other_timebank: TestSystem,
    other_timebank_headers: dict[str, str],
    routed_referral: Routed,
    session_factory: sessionmaker[Session],
) -> None:
    # Routed to `timebank`; the other time bank must not even learn that it exists.
    elsewhere = enrol(client, other_timebank_headers, other_timebank, routed_referral.child_task_id)
    referral_task = enrol(client, timebank_headers, timebank, routed_referral.referral.task_id)
    unknown = enrol(client, timebank_headers, timebank, "no-such-task")

    assert (elsewhere.status_code, referral_task.status_code, unknown.status_code) == (
        404,
        404,
        404,
    )
    assert member_count(session_factory) == 0


def test_enrolment_alias_is_checked_before_anything_is_written(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed_referral: Routed,
    session_factory: sessionmaker[Session],
) -> None:
    response = enrol(client, timebank_headers, timebank, routed_referral.child_task_id, " ")
    assert response.status_code == 422
    assert member_count(session_factory) == 0


def member_count(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Member)) or 0


def assert_refused_without_trace(
    response: Any,
    client: TestClient,
    practice_headers: dict[str, str],
    routed: Routed,
    session_factory: sessionmaker[Session],
) -> None:
    assert response.json()["issue"][0]["code"] == "business-rule"
    assert member_count(session_factory) == 0
    found = client.get(
        "/fhir/Observation",
        params={"based-on": routed.referral.service_request},
        headers=practice_headers,
    ).json()
    assert found.get("entry", []) == []
